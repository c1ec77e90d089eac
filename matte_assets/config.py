"""The files a user writes (spec §4): `matte.yaml` and `shows/<SHOW>.yaml`.

Both are parsed into frozen pydantic models that forbid unknown keys, so a typo'd key
or a bad value fails with the file and the dotted key at fault. A shot's settings are
the show-wide defaults deep-merged with the shot entry's overrides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
# The stage settings are declared once, in a module the algorithms import too.
from .settings import FilterSettings, TrackSettings, _Strict  # noqa: F401  (re-exported)

PROJECT_FILE = "matte.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_NAME = 64
# identity_iou when the show file does not set it. The paper's 0.9 assumes SAM2's
# masks; the embedded flow tracker's re-segmented masks agree with fresh GrabCut masks
# less tightly (IoU 0.85-0.9 for the same object on the demo), so at 0.9 it would start
# duplicate objects that the filter then has to clean up.
IDENTITY_IOU_DEFAULTS = {"sam2": 0.9, "edgetam": 0.9, "flow": 0.8, "sam3": 0.9}
COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")


class PlateSettings(_Strict):
    # The pattern is required per shot, not show-wide; see ShotSettings.
    path: str | None = None
    max_side: int = Field(1024, ge=16, le=16384)
    frames: tuple[int, int] | None = None  # inclusive range; default: every frame on disk
    # OCIO colourspace of the files; None: scene_linear role for float pixels, sRGB
    # texture for integer pixels (docs/colour.md).
    colorspace: str | None = None
    layer: str | None = None  # EXR layer/part holding the picture (e.g. "beauty")


class DetectSettings(_Strict):
    box_threshold: float = Field(0.35, ge=0.0, le=1.0)
    text_threshold: float = Field(0.25, ge=0.0, le=1.0)


class DeliverSettings(_Strict):
    compression: Literal[COMPRESSIONS] = "zip"  # type: ignore[valid-type]
    # Layer edges: `hard` = the plate-resolution mask upscaled; `soft` = refined at full
    # resolution by the plate (guided filter in a band of `band` full-res pixels; None: auto).
    edges: Literal["hard", "soft"] = "hard"
    band: int | None = Field(None, ge=1, le=256)
    cryptomatte: bool = False  # also write CryptoObject00.. channels (float32)


class ColourSettings(_Strict):
    """OCIO config and the display/view that make the models' picture (docs/colour.md).
    `config`: a path or `ocio://` URI; None: `$OCIO`, else OCIO's built-in CG config."""

    config: str | None = None
    display: str | None = None  # None: the config's default display
    view: str | None = None  # None: the config's default view (scene-referred plates)


class CheckSettings(_Strict):
    """Asset checks on the delivered mattes (matte_assets/stages/checks.py); not an input of any
    stage, so changing them reruns nothing."""

    min_mask_quality: float = Field(0.5, ge=0.0, le=1.0)  # mean segmenter quality of the kept masks


class Backends(_Strict):
    detector: Literal["opencv", "grounding_dino", "sam3", "none"] = "opencv"  # none: roto keyframes only
    segmenter: Literal["grabcut", "sam2", "sam3"] = "grabcut"
    tracker: Literal["flow", "sam2", "edgetam", "sam3"] = "flow"

    @model_validator(mode="before")
    @classmethod
    def _sam3_pairs_with_its_masks(cls, data: Any) -> Any:
        """`detector: sam3` segments as it detects: unless a segmenter is named, its masks
        are the frame masks (`segmenter: sam3`) instead of a second segmentation pass."""
        if isinstance(data, dict) and data.get("detector") == "sam3" and "segmenter" not in data:
            data = {**data, "segmenter": "sam3"}
        return data


class Models(_Strict):
    """Weights per model: a local folder (Hugging Face layout), a hub id, or for SAM2
    Meta's original `.pt` checkpoint."""

    grounding_dino: str | None = None
    sam2: str | None = None
    edgetam: str | None = None
    sam3: str | None = None  # one folder / hub id (facebook/sam3) serves detector, segmenter, tracker


class ShotSettings(_Strict):
    """Everything one shot runs with: show defaults merged with the shot's overrides."""

    prompt: str = "person"
    backends: Backends = Backends()
    models: Models = Models()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    plate: PlateSettings = PlateSettings()
    detect: DetectSettings = DetectSettings()
    track: TrackSettings = TrackSettings()
    filter: FilterSettings = FilterSettings()
    deliver: DeliverSettings = DeliverSettings()
    colour: ColourSettings = ColourSettings()
    checks: CheckSettings = CheckSettings()

    @model_validator(mode="before")
    @classmethod
    def _tracker_default_identity_iou(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        track = data.get("track", {})
        backends = data.get("backends", {})
        if isinstance(track, dict) and "identity_iou" not in track and isinstance(backends, dict):
            tracker = backends.get("tracker", "flow")
            if tracker in IDENTITY_IOU_DEFAULTS:
                data = {**data, "track": {**track, "identity_iou": IDENTITY_IOU_DEFAULTS[tracker]}}
        return data

    @field_validator("prompt")
    @classmethod
    def _prompt_has_labels(cls, value: str) -> str:
        if not prompt_labels(value):
            raise ValueError("prompt has no labels (expected e.g. 'person, car')")
        return value

    @property
    def labels(self) -> list[str]:
        return prompt_labels(self.prompt)


def prompt_labels(prompt: str) -> list[str]:
    """'person, car.' -> ['person', 'car']: labels separated by commas or periods,
    lower-cased, whitespace collapsed, duplicates removed in order."""
    labels: list[str] = []
    for part in re.split(r"[,.]", prompt):
        label = " ".join(part.lower().split())
        if label and label not in labels:
            labels.append(label)
    return labels


class ProjectFile(_Strict):
    store: str = "store"
    deliveries: str = "deliveries"
    shows: str = "shows"
    colour: ColourSettings = ColourSettings()  # project-wide; a show file's `colour` wins


def validate_name(kind: str, name: str, where: str = "") -> str:
    """Show and shot names become folder names and the `SHOW__SHOT` partition key."""
    if len(name) > MAX_NAME:  # names become folders, partition keys and EXR names
        raise ConfigError(f"{where}bad {kind} name {name[:20]!r}...: {len(name)} characters, at most {MAX_NAME}")
    if not NAME_RE.match(name) or "__" in name:
        raise ConfigError(
            f"{where}bad {kind} name {name!r}: use letters, digits, '_' and '-' only "
            "(no double underscore, it separates SHOW__SHOT)"
        )
    return name


def partition_key(show: str, shot: str) -> str:
    return f"{show}__{shot}"


def split_shot_ref(ref: str) -> tuple[str, str]:
    """'SHOW/SHOT' (CLI) or 'SHOW__SHOT' (partition key) -> (show, shot)."""
    sep = "/" if "/" in ref else "__"
    parts = ref.split(sep)
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"bad shot reference {ref!r}: expected SHOW/SHOT")
    return validate_name("show", parts[0]), validate_name("shot", parts[1])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _explain(path: Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    """First validation problem as 'file: key.path: message'."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{path}: unknown key {key!r}")
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict) else ""
    return ConfigError(f"{path}: {key}: {err['msg']}{shown}")


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ShowFile:
    """One `shows/<SHOW>.yaml`: show-wide defaults plus a `shots:` mapping."""

    def __init__(self, path: Path, show: str):
        self.path = path
        self.show = validate_name("show", show, f"{path}: ")
        raw = _read_yaml(path) if path.exists() else {}
        shots = raw.pop("shots", None) or {}
        if not isinstance(shots, dict):
            raise ConfigError(f"{path}: shots: expected a mapping of shot name -> settings")
        if isinstance(raw.get("plate"), str):
            raise ConfigError(f"{path}: plate: a plate pattern belongs to a shot entry, not the show defaults")
        try:
            ShotSettings.model_validate(raw)  # validate defaults on their own, so errors point at them
        except ValidationError as exc:
            raise _explain(path, exc) from None
        self.defaults: dict[str, Any] = raw
        self.shot_entries: dict[str, dict[str, Any]] = {}
        for name, entry in shots.items():
            validate_name("shot", str(name), f"{path}: shots: ")
            if isinstance(entry, str):  # `sh010: /plates/sh010.####.exr`: the plate pattern alone
                entry = {"plate": entry}
            elif entry is not None and not isinstance(entry, Mapping):
                raise ConfigError(
                    f"{path}: shots.{name}: expected a mapping of settings or a plate pattern, got {type(entry).__name__} {entry!r}"
                )
            entry = dict(entry or {})
            if isinstance(entry.get("plate"), str):
                entry["plate"] = {"path": entry["plate"]}
            self.shot_entries[str(name)] = entry
        for name in self.shot_entries:
            self.shot(name)  # fail on load, not halfway through a run

    @property
    def shots(self) -> list[str]:
        return sorted(self.shot_entries)

    def shot(self, name: str) -> ShotSettings:
        if name not in self.shot_entries:
            known = ", ".join(self.shots) or "none"
            raise ConfigError(f"{self.path}: no shot {name!r} (shots: {known})")
        merged = _deep_merge(self.defaults, self.shot_entries[name])
        try:
            settings = ShotSettings.model_validate(merged)
        except ValidationError as exc:
            raise _explain(self.path, exc, prefix=f"shots.{name}") from None
        if not settings.plate.path:
            raise ConfigError(f"{self.path}: shots.{name}.plate: no plate pattern given")
        return settings


class Project:
    """A project folder: `matte.yaml`, the show files, the store and deliveries."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.file = self.root / PROJECT_FILE
        if not self.file.exists():
            raise ConfigError(f"{self.file}: not a matte project (run `matte init {self.root}`)")
        try:
            self.config = ProjectFile.model_validate(_read_yaml(self.file))
        except ValidationError as exc:
            raise _explain(self.file, exc) from None

    def _resolve(self, location: str) -> str:
        if "://" in location:
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else self.root / path)

    @property
    def store_url(self) -> str:
        return self._resolve(self.config.store)

    @property
    def deliveries(self) -> Path:
        return Path(self._resolve(self.config.deliveries))

    @property
    def shows_dir(self) -> Path:
        return Path(self._resolve(self.config.shows))

    @property
    def dagster_home(self) -> Path:
        # A studio-wide DAGSTER_HOME (shared instance, spec §9) wins over the project's own.
        return Path(os.environ.get("DAGSTER_HOME") or self.root / ".dagster")

    def show_path(self, show: str) -> Path:
        return self.shows_dir / f"{validate_name('show', show)}.yaml"

    def show(self, show: str) -> ShowFile:
        path = self.show_path(show)
        if not path.exists():
            raise ConfigError(f"{path}: no such show file")
        return ShowFile(path, show)

    def shows(self) -> list[str]:
        if not self.shows_dir.is_dir():
            return []
        return sorted(p.stem for p in self.shows_dir.glob("*.yaml"))

    def shot(self, show: str, shot: str) -> ShotSettings:
        settings = self.show(show).shot(validate_name("shot", shot))
        pattern = Path(settings.plate.path).expanduser()  # type: ignore[arg-type]
        if not pattern.is_absolute():  # plate paths are relative to the project root
            settings = settings.model_copy(
                update={"plate": settings.plate.model_copy(update={"path": str(self.root / pattern)})}
            )
        # A model source is a folder/file relative to the project when one exists there;
        # otherwise it stays as written (an absolute path or a hub id like org/name).
        models = {}
        for key, source in settings.models.model_dump().items():
            if source and not Path(source).expanduser().is_absolute() and (self.root / source).exists():
                models[key] = str(self.root / source)
        if models:
            settings = settings.model_copy(update={"models": settings.models.model_copy(update=models)})
        return self._with_colour(settings)

    def _with_colour(self, settings: ShotSettings) -> ShotSettings:
        """matte.yaml's `colour` fills what the show file left unset; a config path is
        relative to the project root."""
        merged = {**self.config.colour.model_dump(exclude_none=True), **settings.colour.model_dump(exclude_none=True)}
        config = merged.get("config")
        if config and "://" not in config and not Path(config).expanduser().is_absolute():
            merged["config"] = str(self.root / config)
        return settings.model_copy(update={"colour": ColourSettings(**merged)})

    def all_shots(self) -> list[tuple[str, str]]:
        return [(show, shot) for show in self.shows() for shot in self.show(show).shots]


def find_project_root(explicit: str | None) -> Path:
    """--project DIR, else $MATTE_PROJECT, else the current folder."""
    return Path(explicit or os.environ.get("MATTE_PROJECT") or os.getcwd())


def init_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    target = root / PROJECT_FILE
    if target.exists():
        raise ConfigError(f"{target}: already exists; not overwriting")
    target.write_text(
        "# Matte pipeline project (see README: 'Files you write').\n"
        "store: store            # Zarr root for stage results: a path or any fsspec URL\n"
        "deliveries: deliveries  # EXR mattes land in <deliveries>/<SHOW>/<SHOT>/vNNN/\n"
        "shows: shows            # one <SHOW>.yaml per show\n"
    )
    (root / "shows").mkdir(exist_ok=True)
    return target


def add_shot(project: Project, show: str, shot: str, plate: str, prompt: str | None) -> Path:
    """Write (or update) a shot entry in the show file, keeping the file's other keys.
    The result is validated before the file is replaced, so a bad entry changes nothing."""
    validate_name("show", show)
    validate_name("shot", shot)
    path = project.show_path(show)
    raw = _read_yaml(path) if path.exists() else {}
    shots = raw.setdefault("shots", {}) or {}
    if not isinstance(shots, dict):
        raise ConfigError(f"{path}: shots: expected a mapping of shot name -> settings")
    raw["shots"] = shots
    existing = shots.get(shot)
    entry = dict(existing) if isinstance(existing, Mapping) else {}  # a pattern-only entry is replaced
    entry["plate"] = plate
    if prompt is not None:
        entry["prompt"] = prompt
    shots[shot] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        ShowFile(tmp, show).shot(shot)
    except ConfigError as exc:
        tmp.unlink()
        raise ConfigError(str(exc).replace(str(tmp), str(path))) from None
    os.replace(tmp, path)
    return path
