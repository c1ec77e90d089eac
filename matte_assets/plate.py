"""`plate`: the shot's frames, display-referred uint8 RGB, longest side <= max_side.

Scene-linear EXRs go through the sRGB transfer function; 8/16-bit images are already
display-referred. The original resolution, data/display windows, frame numbers and
per-file hashes are kept as attributes: deliveries are written back at that
resolution, and lineage names the exact files a matte came from."""


import dagster as dg
from dagster import AssetExecutionContext

from resources.project import ProjectResource

from .errors import PlateError
from .farm.tags import stage_execution
from .lineage import CODE_VERSIONS, plate_files_version, stage_settings
from .media.colour import COLOUR_HANDLING, to_display_uint8
from .media.scale import fit_within, resize_rgb
from .media.sequence import read_image, resolve_pattern
from .paths import project_relative
from .partitions import shots
from .plate_files import hash_plate_files
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
    files = hash_plate_files(settings)
    staged, record = run.begin(
        stage_settings(settings, "plate"), {"files": plate_files_version([(f, h) for f, _, h in files])}
    )

    first = read_image(files[0][1])
    dw = first.data_window
    width, height = dw[2] - dw[0] + 1, dw[3] - dw[1] + 1
    out_w, out_h = fit_within(width, height, settings.plate.max_side)
    frames = create_plate_arrays(staged.group, len(files), out_w, out_h)
    nonfinite: dict[str, int] = {}
    for index, (frame, path, _) in enumerate(progress(files, "plate")):
        image = first if index == 0 else read_image(path)
        if (image.data_window, image.display_window) != (first.data_window, first.display_window):
            raise PlateError(
                f"mixed resolutions: {path} has data window {image.data_window} / display window "
                f"{image.display_window}, but {files[0][1]} has {first.data_window} / {first.display_window}"
            )
        if image.nonfinite:
            nonfinite[str(frame)] = image.nonfinite
            context.log.warning(f"{path}: {image.nonfinite} NaN/inf values replaced by 0 (frame {frame})")
        frames[index] = resize_rgb(to_display_uint8(image.pixels, image.linear), (out_w, out_h))

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
            },
            "size": [out_w, out_h],
            "colour": COLOUR_HANDLING if first.linear else "display-referred input, unchanged",
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
