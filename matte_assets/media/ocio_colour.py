"""Plate colour through OpenColorIO: the models see a display-referred picture made
by a real view transform (tone-mapped, so scene-linear values 1, 4 and 16 stay
distinct), not clipped scene-linear values.

- The config is `colour.config` (show file, else `matte.yaml`), else `$OCIO`, else
  OCIO's built-in ACES CG config (`ocio://cg-config-latest`).
- The plate's colourspace is `plate.colorspace`; by default float/half pixels are the
  config's `scene_linear` role and integer pixels (PNG, JPEG, 8/16-bit TIFF, DPX) are
  sRGB-encoded (`sRGB - Texture`, else the `texture_paint`/`color_picking` role).
- Scene-referred inputs (encoding scene-linear, log, or unknown) go through the display
  and view (`colour.display`/`colour.view`, default: the config's defaults, e.g.
  `sRGB - Display` / `ACES 2.0 - SDR 100 nits (Rec.709)`). Display-referred inputs
  (encoding `sdr-video`, such as an sRGB PNG) are already a picture: they use the
  display's view that shows them unchanged (e.g. `Un-tone-mapped`) when there is one.

Speed: frames are downscaled first (area average of the encoded values — scene-linear
for EXR, so light is averaged correctly) and the transform runs at working resolution
through a 65^3 3D LUT baked from the exact OCIO processor behind a log2 shaper (for
linear inputs), applied by OCIO's own CPU LUT code. The ACES 2.0 output transform run
directly costs ~0.5 s per 1024x540 frame; the LUT costs a few ms and stays within
1/255 of it on the test colours.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PyOpenColorIO as ocio

from matte_assets.errors import ConfigError

DEFAULT_CONFIG = "ocio://cg-config-latest"
OCIO_ENV = "OCIO"
SRGB_TEXTURE_NAMES = ("sRGB - Texture", "srgb_tx", "sRGB")
LUT_SIZE = 65
# Log2 shaper range for linear inputs: 2^-12 (~0.00024, black on any display) to
# 2^7 = 128 (far above any SDR view's white): 19 stops over 64 LUT intervals.
SHAPER_LO, SHAPER_HI = -12.0, 7.0
DISPLAY_REFERRED_ENCODINGS = ("sdr-video", "hdr-video")
# Linear colourspaces an EXR's `chromaticities` attribute can name (R, G, B, white xy),
# with the names (incl. aliases) a config may use for them.
KNOWN_PRIMARIES: tuple[tuple[tuple[float, ...], tuple[str, ...]], ...] = (
    ((0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290), ("Linear Rec.709 (sRGB)", "lin_rec709", "lin_srgb")),
    ((0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), ("ACEScg", "lin_ap1")),
    ((0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767), ("ACES2065-1", "lin_ap0")),
    ((0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290), ("Linear P3-D65", "lin_p3d65")),
    ((0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290), ("Linear Rec.2020", "lin_rec2020")),
)
REC709_CHROMATICITIES = KNOWN_PRIMARIES[0][0]


@dataclass(frozen=True)
class ConfigChoice:
    """Where the OCIO config comes from: `source` is a path or an `ocio://` URI,
    `origin` says which setting named it (for error messages)."""

    source: str
    origin: str


def choose_config(setting: str | None, setting_origin: str = "colour.config") -> ConfigChoice:
    if setting:
        return ConfigChoice(setting, setting_origin)
    env = os.environ.get(OCIO_ENV)
    if env:
        return ConfigChoice(env, f"${OCIO_ENV}")
    return ConfigChoice(DEFAULT_CONFIG, "built-in default")


@functools.lru_cache(maxsize=8)
def _load_config(source: str, mtime_ns: int) -> ocio.Config:
    return ocio.Config.CreateFromFile(source)


def load_config(choice: ConfigChoice) -> ocio.Config:
    """The OCIO config, cached per process (and per file modification time)."""
    source = choice.source
    mtime = 0
    if not source.startswith("ocio://"):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"{choice.origin}: OCIO config {path} not found")
        source, mtime = str(path), path.stat().st_mtime_ns
    try:
        return _load_config(source, mtime)
    except Exception as exc:  # PyOpenColorIO.Exception: bad YAML, unknown built-in name, ...
        raise ConfigError(f"{choice.origin}: cannot load OCIO config {source}: {' '.join(str(exc).split())}") from None


def _names(config: ocio.Config) -> list[str]:
    names = list(config.getColorSpaceNames())
    for name in list(names):
        names.extend(config.getColorSpace(name).getAliases())
    return names


def unknown_colourspace(config: ocio.Config, choice: ConfigChoice, name: str, key: str) -> ConfigError:
    names = _names(config)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    lowered = {n.lower(): n for n in names}
    close += [lowered[w] for w in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.4)]
    close = list(dict.fromkeys(close))[:3]
    hint = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(list(config.getColorSpaceNames())[:4])}"
    extra = ""
    if choice.source != "ocio://studio-config-latest":
        # Camera log spaces (ARRI LogC4, S-Log3, ...) live in the built-in studio config.
        try:
            if _load_config("ocio://studio-config-latest", 0).getColorSpace(name) is not None:
                extra = "; it is in ocio://studio-config-latest (set colour.config)"
        except Exception:
            pass
    return ConfigError(
        f"{key}: unknown colourspace {name!r} in OCIO config {config.getName() or choice.source} ({hint}){extra}"
    )


def _space_for_chromaticities(config: ocio.Config, chroma: tuple[float, ...] | None) -> str | None:
    """The config's linear colourspace with the primaries/white an EXR header states."""
    if not chroma or len(chroma) != 8:
        return None
    for primaries, names in KNOWN_PRIMARIES:
        if np.allclose(chroma, primaries, atol=2e-3):
            for name in names:
                cs = config.getColorSpace(name)
                if cs is not None:
                    return cs.getName()
    return None


def _default_integer_space(config: ocio.Config) -> str | None:
    for name in SRGB_TEXTURE_NAMES:
        cs = config.getColorSpace(name)
        if cs is not None:
            return cs.getName()
    for role in ("texture_paint", "color_picking"):
        if config.hasRole(role):
            return config.getRoleColorSpace(role)
    return None


@dataclass(frozen=True)
class ColourSpec:
    """What the plate stage needs to know to turn plate pixels into model input; its
    `identity()` enters the plate's data version and every delivered EXR header."""

    choice: ConfigChoice
    config_name: str
    config_cache_id: str
    colorspace_setting: str | None  # None: chosen per pixel type
    float_space: str
    integer_space: str
    display: str
    view: str | None  # None: the config's default for the display
    config: ocio.Config = field(compare=False, repr=False)

    def identity(self) -> dict[str, Any]:
        return {
            "ocio": ocio.GetVersion(),
            "config": self.config_name,
            "config_cache_id": self.config_cache_id,
            "colorspace": self.colorspace_setting
            or {"float": f"EXR chromaticities, else {self.float_space}", "integer": self.integer_space},
            "display": self.display,
            "view": self.view or "(default)",
            "method": f"area downscale, then {LUT_SIZE}^3 LUT baked from the OCIO processor",
        }

    def colourspace_for(self, float_pixels: bool, chromaticities: tuple[float, ...] | None = None) -> str:
        if self.colorspace_setting:
            return self.colorspace_setting
        if not float_pixels:
            return self.integer_space
        return _space_for_chromaticities(self.config, chromaticities) or self.float_space


def colour_spec(colorspace: str | None, config_setting: str | None, display: str | None = None,
                view: str | None = None, config_origin: str = "colour.config") -> ColourSpec:
    """Resolve and check the colour settings (raising ConfigError naming the key)."""
    choice = choose_config(config_setting, config_origin)
    config = load_config(choice)
    if colorspace:
        cs = config.getColorSpace(colorspace)
        if cs is None:
            raise unknown_colourspace(config, choice, colorspace, "plate.colorspace")
        colorspace = cs.getName()
    float_space = config.getRoleColorSpace("scene_linear") if config.hasRole("scene_linear") else ""
    integer_space = _default_integer_space(config) or ""
    if not colorspace and not (float_space and integer_space):
        raise ConfigError(
            f"plate.colorspace: OCIO config {config.getName() or choice.source} has no scene_linear role or sRGB "
            "texture colourspace to default to; set plate.colorspace"
        )
    displays = list(config.getDisplays())
    display = display or config.getDefaultDisplay()
    if display not in displays:
        close = difflib.get_close_matches(display, displays, n=3, cutoff=0.3)
        raise ConfigError(f"colour.display: unknown display {display!r} (displays: {', '.join(close or displays)})")
    if view is not None and view not in list(config.getViews(display)):
        views = list(config.getViews(display))
        raise ConfigError(f"colour.view: display {display!r} has no view {view!r} (views: {', '.join(views)})")
    return ColourSpec(
        choice=choice,
        config_name=config.getName() or choice.source,
        config_cache_id=config.getCacheID(),
        colorspace_setting=colorspace or None,
        float_space=float_space,
        integer_space=integer_space,
        display=display,
        view=view,
        config=config,
    )


def apply_cpu(cpu: Any, pixels: np.ndarray) -> None:
    """Apply an OCIO CPU processor in place to a C-contiguous float32 (h, w, 3) array.
    Through a PackedImageDesc: `applyRGB` on a numpy array copies element by element
    and is ~60x slower."""
    h, w = pixels.shape[0], pixels.shape[1]
    cpu.apply(ocio.PackedImageDesc(pixels, w, h, 3))


_PROBE = np.array([[[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [0.8, 0.2, 0.1], [0.1, 0.3, 0.6]]], np.float32)


def _unchanged_view(config: ocio.Config, colorspace: str, display: str) -> str | None:
    """A view of `display` under which the (display-referred) colourspace is shown
    unchanged, probed numerically so it works for any config's view names."""
    for view in config.getViews(display):
        try:
            cpu = config.getProcessor(colorspace, display, view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor()
        except Exception:
            continue
        probe = _PROBE.copy()
        apply_cpu(cpu, probe)
        if np.allclose(probe, _PROBE, atol=1e-4):
            return view
    return None


@dataclass(frozen=True)
class DisplayTransform:
    """The transform of one plate colourspace to model input, ready to apply."""

    colorspace: str
    display: str
    view: str
    encoding: str
    linear: bool
    identity_transform: bool
    cpu: Any = field(compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        return {"colorspace": self.colorspace, "display": self.display, "view": self.view, "encoding": self.encoding}

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 plate-colourspace pixels (already at working size) ->
        display-referred uint8."""
        work = np.ascontiguousarray(pixels, dtype=np.float32).copy()
        if not self.identity_transform:
            apply_cpu(self.cpu, work)
        np.clip(work, 0.0, 1.0, out=work)
        return np.rint(work * 255.0).astype(np.uint8)


def _shaper(linear: bool) -> tuple[list[Any], Any]:
    """OCIO transforms mapping the colourspace's values into the LUT's [0, 1] domain,
    and the numpy inverse (domain -> values) used to bake the LUT."""
    if not linear:
        return [], lambda d: d
    lo, hi = SHAPER_LO, SHAPER_HI
    span = hi - lo
    clamp = ocio.RangeTransform()
    clamp.setStyle(ocio.RANGE_CLAMP)
    clamp.setMinInValue(2.0 ** lo)
    clamp.setMinOutValue(2.0 ** lo)
    log = ocio.LogAffineTransform()
    log.setBase(2.0)
    log.setLogSideSlopeValue([1.0 / span] * 3)
    log.setLogSideOffsetValue([-lo / span] * 3)
    return [clamp, log], lambda d: np.exp2(d * span + lo).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _display_transform(spec: ColourSpec, colorspace: str) -> DisplayTransform:
    config = spec.config
    encoding = config.getColorSpace(colorspace).getEncoding() or ""
    view = spec.view
    unchanged = None
    if encoding in DISPLAY_REFERRED_ENCODINGS:
        unchanged = _unchanged_view(config, colorspace, spec.display)
    view = view or unchanged or config.getDefaultView(spec.display, colorspace) or config.getDefaultView(spec.display)
    exact = config.getProcessor(colorspace, spec.display, view, ocio.TRANSFORM_DIR_FORWARD)
    linear = bool(config.isColorSpaceLinear(colorspace, ocio.REFERENCE_SPACE_SCENE))
    if exact.isNoOp() or view == unchanged:
        # Shown unchanged (e.g. an sRGB PNG on an sRGB display): skip the arithmetic, so
        # such plates reach the models bit for bit as before.
        return DisplayTransform(colorspace, spec.display, view, encoding, linear, True, None)
    shaper, inverse = _shaper(linear)
    axis = np.linspace(0.0, 1.0, LUT_SIZE, dtype=np.float32)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")  # OCIO's layout: blue fastest
    grid = np.ascontiguousarray(inverse(np.stack([r, g, b], axis=-1).reshape(1, -1, 3)))
    apply_cpu(exact.getDefaultCPUProcessor(), grid)
    lut = ocio.Lut3DTransform(gridSize=LUT_SIZE)
    lut.setData(np.ascontiguousarray(grid.reshape(-1), dtype=np.float32))
    lut.setInterpolation(ocio.INTERP_TETRAHEDRAL)
    group = ocio.GroupTransform([*shaper, lut])
    cpu = config.getProcessor(group).getOptimizedCPUProcessor(ocio.OPTIMIZATION_DEFAULT)
    return DisplayTransform(colorspace, spec.display, view, encoding, linear, False, cpu)


def plate_colour(settings: Any) -> ColourSpec:
    """The ColourSpec of a shot's settings (`plate.colorspace`, `colour.*`)."""
    colour = settings.colour
    return colour_spec(settings.plate.colorspace, colour.config, colour.display, colour.view)


def display_transform(spec: ColourSpec, float_pixels: bool,
                      chromaticities: tuple[float, ...] | None = None) -> DisplayTransform:
    """The transform for a plate whose first frame has these pixel type/chromaticities."""
    return _display_transform(spec, spec.colourspace_for(float_pixels, chromaticities))


def exact_display(spec: ColourSpec, colorspace: str, pixels: np.ndarray, view: str | None = None) -> np.ndarray:
    """OCIO's own processor (no LUT), for checking the baked one."""
    view = view or _display_transform(spec, colorspace).view
    out = np.ascontiguousarray(pixels, dtype=np.float32).copy()
    apply_cpu(spec.config.getProcessor(colorspace, spec.display, view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor(), out)
    return out


__all__ = [
    "ColourSpec", "ConfigChoice", "DEFAULT_CONFIG", "DisplayTransform", "colour_spec", "display_transform",
    "exact_display", "load_config", "plate_colour",
]
