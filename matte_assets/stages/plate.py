"""`plate`: the shot's frames, display-referred uint8 RGB, longest side <= max_side.

Frames are read with OpenImageIO, downscaled (area average, in the file's own encoding:
scene-linear for EXR), then turned into a display-referred picture by the OCIO view
transform of the plate's colourspace (see media/ocio_colour.py, docs/colour.md).
Anamorphic plates are desqueezed (the working plate has square pixels). The original
resolution, data/display windows, pixel aspect ratio, chromaticities, colour identity,
frame numbers and per-file hashes are kept as attributes: deliveries are written back
with that geometry, and lineage names the exact files a matte came from."""


from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg
from dagster import AssetExecutionContext

from resources.project import ProjectResource

from ..errors import PlateError
from ..farm.tags import stage_execution
from ..shots.lineage import CODE_VERSIONS, plate_files_version, stage_settings
from ..media.ocio_colour import display_transform, plate_colour
from ..media.scale import fit_within, resize_rgb
from ..media.sequence import read_image, resolve_pattern
from ..shots.paths import project_relative
from ..partitions import shots
from ..shots.plate_files import cache_file, hash_plate_files
from .sources import PLATE_FILES_KEY, settings_key
from .stage_data import create_plate_arrays
from .stage_run import StageResult, StageRun, progress


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSIONS["plate"],
    deps=[PLATE_FILES_KEY, settings_key("plate")],
    io_manager_key="zarr_io_manager",
    group_name="matte",
    kinds={"zarr"},
    **stage_execution("plate"),  # farm: GPU pool / Celery queue (matte_assets.farm.tags)
)
def plate(context: AssetExecutionContext, project: ProjectResource) -> dg.Output[StageResult]:
    """Frames downscaled so the longest side <= max_side (aspect kept)."""
    run = StageRun(context, "plate", project.shot(context.partition_key), project.store())
    settings = run.settings
    files = hash_plate_files(settings, cache=cache_file(project.project()))
    staged, record = run.begin(
        stage_settings(settings, "plate"), {"files": plate_files_version([(f, h) for f, _, h in files])}
    )

    layer = settings.plate.layer
    first = read_image(files[0][1], layer)
    dw = first.data_window
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    aspect = first.pixel_aspect_ratio
    # Square working pixels: the models see an anamorphic plate desqueezed.
    out_w, out_h = fit_within(max(1, round(width * aspect)), height, settings.plate.max_side)
    colour = display_transform(plate_colour(settings), first.linear, first.chromaticities)
    frames = create_plate_arrays(staged.group, len(files), out_w, out_h)
    nonfinite: dict[str, int] = {}
    # Decode the next frame while this one is downscaled, transformed and stored
    # (OpenImageIO releases the GIL); one frame ahead keeps memory at two frames.
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: Future | None = None
        for index, (frame, path, _) in enumerate(progress(files, "plate")):
            image = first if index == 0 else ahead.result()  # type: ignore[union-attr]
            ahead = pool.submit(read_image, files[index + 1][1], layer) if index + 1 < len(files) else None
            if image.linear != first.linear:
                raise PlateError(
                    f"mixed pixel types: {path} is {image.bit_depth}, {files[0][1]} is {first.bit_depth}"
                )
            if (image.data_window, image.display_window) != (first.data_window, first.display_window):
                raise PlateError(
                    f"mixed resolutions: {path} has data window {image.data_window} / display window "
                    f"{image.display_window}, but {files[0][1]} has {first.data_window} / {first.display_window}"
                )
            if image.nonfinite:
                nonfinite[str(frame)] = image.nonfinite
                context.log.warning(f"{path}: {image.nonfinite} NaN/inf values replaced by 0 (frame {frame})")
            # Downscale first: the colour transform then runs on working-size pixels only.
            frames[index] = colour.apply(resize_rgb(image.pixels, (out_w, out_h)))

    staged.group.attrs.update(
        {
            "frame_numbers": [f for f, _, _ in files],
            "files": [project_relative(project.project().root, p) for _, p, _ in files],
            "sha256": [h for _, _, h in files],
            "pattern": project_relative(project.project().root, settings.plate.path),
            "padding": resolve_pattern(settings.plate.path).padding,
            "original": {
                "width": width,
                "height": height,
                "data_window": list(first.data_window),
                "display_window": list(first.display_window),
                "bit_depth": first.bit_depth,
                "pixel_aspect_ratio": aspect,
            },
            "size": [out_w, out_h],
            # Carried to the delivered EXR headers (pixelAspectRatio, chromaticities).
            "pixel_aspect_ratio": aspect,
            "chromaticities": list(first.chromaticities) if first.chromaticities else None,
            "layer": first.layer,
            # Which colourspace/view made the model input, and the config's identity.
            "colour": {**plate_colour(settings).identity(), **colour.describe()},
            "nonfinite": nonfinite,
        }
    )
    return run.output(
        staged,
        record,
        {
            "frames": len(files),
            "first_frame": files[0][0],
            "last_frame": files[-1][0],
            "original_size": f"{width}x{height}",
            "plate_size": f"{out_w}x{out_h}",
            "frames_with_nonfinite": len(nonfinite),
        },
    )
