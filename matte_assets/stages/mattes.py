"""`mattes`: EXR deliveries at the plate's original resolution and data window (spec §6).

One file per plate frame in a new `vNNN` folder, channels `<layer>.A` per kept layer
plus `A` (their union), half float. Everything is written into a hidden staging
folder that is renamed into place at the end, so a delivered name never carries a
half-written file and an existing version is never touched. If the pixels are
identical to an existing version, that version is reused instead of adding a copy.
The asset's value is the manifest (paths, hashes, version).

Optional (deliver.*): soft edges refined by the full-resolution plate (`edges: soft`,
algorithms/soft_alpha.py), Cryptomatte channels (`cryptomatte: true`,
media/cryptomatte.py). Names stay stable across versions (layer_names.py), and every
version carries a Nuke script that loads it (media/nuke.py). See docs/delivery.md."""


import copy
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from dagster import AssetExecutionContext

from resources.project import ProjectResource

from .. import __version__
from ..algorithms.soft_alpha import auto_band, guide_image, refine_alpha
from ..config import split_shot_ref
from .layer_names import assign_names, load_registry
from ..media import cryptomatte
from ..farm.tags import stage_execution
from ..shots.lineage import CODE_VERSIONS, digest, stage_settings
from ..media.delivery import (
    ContentDigest,
    VersionWriter,
    find_version_with_digest,
    list_versions,
    read_manifest,
)
from ..media.exr import write_exr
from ..media.nuke import write_nuke_script
from ..media.scale import upscale_mask
from ..media.sequence import hash_file, read_image
from ..partitions import shots
from ..shots.paths import from_project, project_relative
from .pictures import find_pictures, picture_stem, write_pictures
from .sources import settings_key
from ..shots.provenance import header_attributes
from .stage_data import LayersData, PlateData, frame_blocks
from .stage_run import StageResult, StageRun, progress

def matte_channels(
    masks: np.ndarray, names: list[str], size: tuple[int, int], *, guide: np.ndarray | None = None, band: int = 0
) -> dict[str, np.ndarray]:
    """Plate-resolution layer masks (L, h, w) -> full-resolution half-float channels
    (half once here: the content digest and the EXR writer share the same arrays).
    With a `guide` (the full-resolution plate frame, see `guide_image`), each layer's
    edge is refined by it within `band` pixels (soft alpha)."""
    channels: dict[str, np.ndarray] = {}
    union = np.zeros((size[1], size[0]), np.float32)
    for name, mask in zip(names, masks):
        full = upscale_mask(mask, size)
        if guide is not None:
            full = refine_alpha(full, guide, band)
        channels[f"{name}.A"] = full.astype(np.float16)
        np.maximum(union, full, out=union)
    channels["A"] = union.astype(np.float16)
    return channels


def crypto_channels(channels: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """CryptoObject00.. (float32) from the delivered layer alphas: a decoder gets back
    exactly `<layer>.A` (as half, widened to float)."""
    shape = channels["A"].shape
    return cryptomatte.encode([channels[f"{n}.A"].astype(np.float32) for n in names], names, shape)


def frame_guide(plate_file: str, size: tuple[int, int]) -> np.ndarray:
    """The full-resolution plate frame as a guide for soft edges (read at delivery time
    with the plate stage's own reader, so formats and data windows agree)."""
    image = read_image(plate_file)
    pixels = image.pixels
    if (pixels.shape[1], pixels.shape[0]) != tuple(size):
        from ..errors import PlateError

        raise PlateError(f"{plate_file}: is {pixels.shape[1]}x{pixels.shape[0]}, the plate was {size[0]}x{size[1]} when staged")
    return guide_image(pixels, getattr(image, "linear", True))


def _write_version(context, run, plate, filtered_layers, shot_dir, show, shot, names, ids, record, content_key, registry, root=None):
    """Stage every frame's EXR in a hidden folder, then publish it as the next version
    (or discard it when its pixels equal an existing version's)."""
    attrs = plate.attrs
    original = attrs["original"]
    full_size = (int(original["width"]), int(original["height"]))
    lineage = record["lineage"]
    pixels = ContentDigest()
    files: list[dict[str, Any]] = []
    with VersionWriter(shot_dir, shot) as writer:
        common = {
            "show": show,
            "shot": shot,
            "version": f"v{writer.version:03d}",
            "run_id": context.run_id,
            "created": record["created"],
            "software": f"matte-pipeline {__version__}",
            "data_versions": {stage: entry["data_version"] for stage, entry in lineage.items()},
            # The exact stored results these files were made from: `matte gc` keeps them.
            "store_versions": {stage: entry.get("version") for stage, entry in lineage.items()},
            "corrections": [c for entry in lineage.values() for c in entry.get("corrections", [])],
            "settings": {stage: entry["settings"] for stage, entry in lineage.items()},
            "models": {
                stage: entry["settings"].get("backend")
                for stage, entry in lineage.items()
                if isinstance(entry["settings"], dict) and "backend" in entry["settings"]
            },
            "layers": dict(zip(names, filtered_layers.table["members"])),
            "layer_ids": dict(zip(names, ids)),
            "plate_pattern": attrs["pattern"],
            # The plate's colourspace, view and OCIO config identity (plate versions before
            # the OCIO reader have none).
            **({"plate_colour": attrs["colour"]} if isinstance(attrs.get("colour"), dict) else {}),
        }
        deliver = run.settings.deliver
        band = deliver.band or auto_band(full_size, plate.size)
        crypto_attrs = cryptomatte.header_attributes(names) if deliver.cryptomatte else {}

        def write(index: int, frame: int, channels: dict[str, np.ndarray]) -> dict[str, Any]:
            path = writer.path_for(frame, attrs["padding"])
            types = {}
            if deliver.cryptomatte:
                crypto = crypto_channels(channels, names)
                types = dict.fromkeys(crypto, "float")  # the spec's ids are float32 bit patterns
                channels = {**channels, **crypto}
            write_exr(
                path,
                channels,
                data_window=tuple(original["data_window"]),
                display_window=tuple(original["display_window"]),
                compression=deliver.compression,
                attributes={**header_attributes(common, frame, attrs["files"][index], attrs["sha256"][index]), **crypto_attrs},
                channel_types=types,
                pixel_aspect_ratio=attrs.get("pixel_aspect_ratio"),
                chromaticities=attrs.get("chromaticities"),
            )
            return {"frame": frame, "name": path.name, "sha256": hash_file(path)}

        # EXR encoding (zlib, in C++) overlaps with reading and upscaling the next frame;
        # at most a couple of frames are in flight, so memory stays per frame.
        pending: deque[Future] = deque()
        frame_numbers = plate.frame_numbers
        with ThreadPoolExecutor(max_workers=1) as pool:
            for index, masks in progress(_frames_in_blocks(filtered_layers, ids), "mattes", total=len(frame_numbers)):
                frame = frame_numbers[index]
                # Plate files are stored relative to the project root (paths.py).
                guide = frame_guide(str(from_project(root, attrs["files"][index])) if root else attrs["files"][index], full_size) if deliver.edges == "soft" else None
                channels = matte_channels(masks, names, full_size, guide=guide, band=band)
                pixels.update(frame, channels)
                pending.append(pool.submit(write, index, frame, channels))
                while len(pending) > 2:
                    files.append(pending.popleft().result())
            files.extend(f.result() for f in pending)

        # The delivered content is the pixels *as encoded*: a compression change is new files.
        content = digest({"pixels": pixels.hexdigest(), "deliver": run.settings.deliver.model_dump()}, length=64)
        existing = find_version_with_digest(shot_dir, content)
        if existing is not None and _damaged(shot_dir / f"v{existing:03d}"):
            existing = None  # its files are gone or altered: deliver anew
        if existing is not None:
            writer.abort()  # identical pixels already delivered: reuse that version
            folder = shot_dir / f"v{existing:03d}"
            return existing, folder, read_manifest(folder)["files"], content, True
        channels_list = delivered_channels(names, deliver.cryptomatte)
        # Contact sheet, preview and Nuke script travel with the version (written before the rename).
        write_pictures(writer.staging_dir, picture_stem(shot, writer.version), plate, named_layers(filtered_layers, names),
                       title=f"{show}/{shot} v{writer.version:03d}")
        write_nuke_script(
            writer.staging_dir / f"{picture_stem(shot, writer.version)}.nk",
            sequence=nuke_sequence(writer.path_for(0, attrs["padding"]).name, attrs["padding"]),
            first=plate.frame_numbers[0],
            last=plate.frame_numbers[-1],
            display_window=tuple(original["display_window"]),
            pixel_aspect=pixel_aspect({**original, **attrs}),
            layers=names,
            format_name=f"{shot}_matte",
        )
        folder = writer.commit(content, {
            "files": files, "channels": channels_list, "content_key": content_key,
            "name_registry": {str(k): v for k, v in sorted(registry.items())}, **common,
        })
        return writer.version, folder, files, content, False


def delivered_channels(names: list[str], with_cryptomatte: bool) -> list[str]:
    channels = [f"{n}.A" for n in names] + ["A"]
    return channels + (cryptomatte.channel_names(len(names)) if with_cryptomatte else [])


def nuke_sequence(frame_file: str, padding: int | None) -> str:
    """'sh010_matte_v001.0000.exr' -> 'sh010_matte_v001.%04d.exr' (padding as delivered)."""
    padding = 4 if padding is None else padding
    return frame_file.rsplit(".", 2)[0] + (f".%0{padding}d.exr" if padding > 0 else ".%d.exr")


def pixel_aspect(original: dict[str, Any]) -> float:
    """The plate's pixel aspect ratio when the plate stage recorded one (else square)."""
    for key in ("pixel_aspect", "pixel_aspect_ratio", "pixelAspectRatio"):
        if original.get(key):
            return float(original[key])
    return 1.0


def named_layers(layers: LayersData, names: list[str]) -> LayersData:
    """The filtered layers seen under their delivered names (contact sheet, preview)."""
    view = copy.copy(layers)
    view.table = {**layers.table, "name": list(names)}
    return view


def _frames_in_blocks(layers: LayersData, ids: list[int]):
    """(frame index, (L, h, w) masks) read in blocks of frames: one zarr call per layer
    and block instead of one per layer and frame."""
    width, height = layers.size
    for start, stop in frame_blocks(layers.n_frames, len(ids), height, width):
        block = layers.masks_block(start, stop, ids)
        for b in range(stop - start):
            yield start + b, block[:, b]


def _damaged(folder: Path) -> bool:
    from ..shots.verify import version_folder_problems

    return bool(version_folder_problems(folder))


def find_version_with_key(shot_dir: Path, key: str) -> int | None:
    """A delivered version made from exactly the same content (see `content_key`)."""
    from ..shots.verify import version_folder_problems

    for version in sorted(list_versions(shot_dir), reverse=True):
        try:
            if read_manifest(shot_dir / f"v{version:03d}").get("content_key") == key:
                if version_folder_problems(shot_dir / f"v{version:03d}"):
                    continue  # files gone: not a delivery to point at
                return version
        except Exception:  # an unreadable manifest is simply not a match
            continue
    return None


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["mattes"],
    deps=[settings_key("mattes")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"openexr"},
    **stage_execution("mattes"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def mattes(
    context: AssetExecutionContext, plate: PlateData, filtered_layers: LayersData, project: ProjectResource
) -> dg.Output[StageResult]:
    """EXR mattes in <deliveries>/<SHOW>/<SHOT>/vNNN/, one per plate frame."""
    run = StageRun(context, "mattes", project.shot(context.partition_key), project.store())
    show, shot = split_shot_ref(context.partition_key)
    staged, record = run.begin(
        stage_settings(run.settings, "mattes"),
        {"plate": plate.record["data_version"], "filtered_layers": filtered_layers.record["data_version"]},
        plate.record,
        filtered_layers.record,
    )
    attrs = plate.attrs
    original = attrs["original"]
    full_size = (int(original["width"]), int(original["height"]))
    ids = filtered_layers.layer_ids
    shot_dir = project.project().deliveries / show / shot
    # Delivered names: a tracked layer keeps the name it was first delivered under.
    names, registry = assign_names(
        load_registry(shot_dir), ids, [str(x) for x in filtered_layers.table["label"]], [int(x) for x in filtered_layers.table["first_frame"]]
    )
    if not names:
        context.log.warning(f"{show}/{shot}: no layers to deliver; the mattes hold only an empty union A")

    # What the files will contain, known before writing them: the filtered masks'
    # content, the plate (geometry, frame numbers), the delivery settings and this code.
    content_key = digest(
        {
            "filtered": filtered_layers.record.get("content_digest"),
            "names": names,
            "plate": plate.record["data_version"],
            "deliver": run.settings.deliver.model_dump(),
            "code": CODE_VERSIONS["mattes"],
        },
        length=64,
    )
    existing = find_version_with_key(shot_dir, content_key) if filtered_layers.record.get("content_digest") else None
    if existing is not None:  # same content already delivered: reuse it, write nothing
        folder = shot_dir / f"v{existing:03d}"
        stored = read_manifest(folder)
        version, reused, files, content = existing, True, stored["files"], stored["content_digest"]
    else:
        version, folder, files, content, reused = _write_version(
            context, run, plate, filtered_layers, shot_dir, show, shot, names, ids, record, content_key, registry,
            root=project.project().root,
        )

    root = project.project().root
    manifest = {  # paths relative to the project (a copied project points at its own files)
        "version": version,
        "folder": project_relative(root, folder),
        "files": [{**f, "path": project_relative(root, Path(folder) / f["name"])} for f in files],
        "channels": delivered_channels(names, run.settings.deliver.cryptomatte),
        "layer_ids": dict(zip(names, ids)),
        "content_digest": content,
        "reused_existing_version": reused,
    }
    staged.group.attrs["manifest"] = manifest
    return run.output(
        staged,
        record,
        {
            "version": f"v{version:03d}",
            "folder": dg.MetadataValue.path(str(folder)),
            "files": len(files),
            "layers": ", ".join(names) or "(none)",
            "reused_existing_version": reused,
            "resolution": f"{full_size[0]}x{full_size[1]}",
            **{name: dg.MetadataValue.path(str(path)) for name, path in find_pictures(Path(folder)).items()},
        },
    )
