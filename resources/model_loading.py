"""Shared plumbing for the model backends (GroundingDINO, SAM2, EdgeTAM).

- device choice (`device: auto | cpu | cuda`) and the compute precision that goes with it;
- weight sources: a local folder in Hugging Face layout, a hub id (optionally
  `org/name@revision`), or a single checkpoint file (Meta's original SAM2 `.pt`, or
  `.safetensors`); `check_model_source` validates one before any stage runs;
- weight identities for lineage (hub id + commit, or sha256 of the weight files, with the
  hashes cached on disk by (path, size, mtime) so multi-GB files are hashed once);
- a process-wide cache so each model is loaded once per (kind, weights, device).

Nothing here imports torch or transformers at module import time: the embedded backends
and the CLI must keep working on machines without the `models` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from matte_assets.errors import BackendError

T = TypeVar("T")

# Human names used in error messages, keyed by the `models:` key of the show file.
MODEL_NAMES = {
    "grounding_dino": "GroundingDINO",
    "sam2": "SAM2",
    "edgetam": "EdgeTAM",
    "sam3": "SAM 3",
}

# Single-file checkpoints (SAM2 only); files left out of a folder's identity hash.
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
_IDENTITY_SKIP_SUFFIXES = (".md", ".lock", ".gitattributes")

# What to fetch for a hub id: configs, safetensors weights, tokenizer files. Meta's
# original `.pt` files often sit in the same repositories and would double the download.
_HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]

# `org/name` or `org/name@revision`; anything else is treated as a filesystem path.
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")

# Both GroundingDINO and SAM2 normalise with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_name(kind: str) -> str:
    return MODEL_NAMES.get(kind, kind)


# ---------------------------------------------------------------------------------------
# Devices and precision


def resolve_device(device: str | None) -> str:
    """`auto` -> `cuda` when a CUDA device is visible, else `cpu`. `cuda`/`cuda:N` without
    CUDA is an error rather than a silent fallback (results and speed would differ)."""
    import torch

    spec = (device or "auto").strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "cuda" or re.fullmatch(r"cuda:\d+", spec):
        if not torch.cuda.is_available():
            raise BackendError(
                f"device: {device} was requested but torch {torch.__version__} sees no CUDA device; "
                "use `device: auto` or `device: cpu`"
            )
        return spec
    raise BackendError(f"device: {device!r} is not one of auto, cpu, cuda")


def compute_dtype_name(device: str) -> str:
    """bf16 autocast on GPU, float32 on CPU (CPU bf16 is slow and changes results)."""
    return "bfloat16" if device.startswith("cuda") else "float32"


def autocast(device: str) -> contextlib.AbstractContextManager:
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------
# Weight sources


@dataclass(frozen=True)
class ModelSource:
    """A resolved `models:` entry.

    kind: the `models:` key (grounding_dino, sam2, edgetam); spec: what the user wrote;
    form: "folder" | "hub" | "checkpoint"; path: the local folder or file to load
    (for a hub id, the snapshot folder in the local cache, or None until downloaded);
    repo_id/revision: the hub id and the requested revision (commit once resolved)."""

    kind: str
    spec: str
    form: str
    path: Path | None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def name(self) -> str:
        return model_name(self.kind)

    def cache_key(self) -> str:
        """Distinguishes weights within one process (the model cache key)."""
        if self.form == "hub":
            return f"hub:{self.repo_id}@{self.revision or 'main'}:{self.path}"
        # Size and mtime too: weights replaced in place (a long-lived `dagster dev`
        # process) must be reloaded, not served stale from the cache.
        files = identity_files(self.path) if self.form == "folder" else [self.path]
        stamps = ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        return f"{self.form}:{self.path}:{stamps}"

    def weights_identity(self) -> dict[str, str]:
        """Identity of the weights for lineage and fingerprints. Paths are left out on
        purpose: the same weights in another folder must give the same fingerprint."""
        if self.form == "hub":
            commit = self.revision
            if self.path is not None and re.fullmatch(r"[0-9a-f]{40}", self.path.name):
                commit = self.path.name  # snapshot folders are named by commit hash
            return {"weights": f"hf:{self.repo_id}@{commit or 'main'}", "weights_format": "hf-hub"}
        assert self.path is not None
        if self.form == "folder":
            return {"weights": "sha256:" + folder_sha256(self.path), "weights_format": "hf-folder"}
        fmt = "safetensors" if self.path.suffix == ".safetensors" else "original-pt"
        return {"weights": "sha256:" + file_sha256(self.path), "weights_format": fmt}


def _looks_like_path(spec: str) -> bool:
    if spec.startswith(("/", "./", "../", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", spec):
        return True
    if spec.lower().endswith(_CHECKPOINT_SUFFIXES):
        return True
    return not _HUB_ID_RE.match(spec)


def _hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def _provide_hint(kind: str, spec: str) -> str:
    return (
        f"download it on a connected machine with `hf download {spec.split('@')[0]}` "
        f"(it lands in the Hugging Face cache, HF_HOME / HF_HUB_CACHE, which you can copy here), "
        f"or point `models: {{{kind}: ...}}` at a local folder in Hugging Face format"
        + (" or at Meta's original .pt checkpoint" if kind == "sam2" else "")
    )


def _check_folder(kind: str, spec: str, folder: Path) -> None:
    name = model_name(kind)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise BackendError(f"{name} weights folder {folder} (models: {kind}) is not readable")
    if not (folder / "config.json").is_file():
        raise BackendError(
            f"{name} weights folder {folder} (models: {kind}: {spec}) has no config.json; "
            "expected a Hugging Face model folder (config.json + model.safetensors)"
        )
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")]
    if not weights:
        raise BackendError(
            f"{name} weights folder {folder} (models: {kind}: {spec}) has no weight files "
            "(model.safetensors or pytorch_model.bin)"
        )
    for p in [folder / "config.json", *weights]:
        if not os.access(p, os.R_OK):
            raise BackendError(f"{name} weight file {p} (models: {kind}) is not readable")


def _check_file(kind: str, spec: str, path: Path) -> None:
    name = model_name(kind)
    if kind != "sam2":
        raise BackendError(
            f"{name} weights {path} (models: {kind}) are a single file; only SAM2 accepts "
            "Meta's original .pt checkpoint: give a Hugging Face model folder or hub id instead"
        )
    if path.suffix.lower() not in _CHECKPOINT_SUFFIXES:
        raise BackendError(
            f"{name} weights {path} (models: {kind}) must be a folder, a hub id, or a "
            f"checkpoint file ending in {', '.join(_CHECKPOINT_SUFFIXES)}"
        )
    if not os.access(path, os.R_OK):
        raise BackendError(f"{name} checkpoint {path} (models: {kind}) is not readable")
    if path.stat().st_size == 0:
        raise BackendError(f"{name} checkpoint {path} (models: {kind}) is empty")


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local snapshot folder of a hub id, or None when it is not fully cached."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, local_files_only=True, allow_patterns=_HUB_ALLOW_PATTERNS
            )
        )
    except Exception:
        return None
    if not (folder / "config.json").is_file():
        return None
    if not any(p.suffix in (".safetensors", ".bin") for p in folder.iterdir()):
        return None
    return folder


def resolve_model_source(kind: str, source: str, *, download: bool = False) -> ModelSource:
    """Turn a `models:` entry into a ModelSource, checking it exists and is readable.

    A hub id resolves to its snapshot in the local Hugging Face cache. When it is not
    cached: offline (HF_HUB_OFFLINE / unreachable hub) fails fast naming the weights;
    online it is downloaded when `download` is true (the loaders), and only probed
    otherwise (`check_model_source`, which must stay cheap)."""
    name = model_name(kind)
    spec = (source or "").strip()
    if not spec:
        raise BackendError(
            f"{name} needs weights: set `models: {{{kind}: <folder, hub id"
            + (" or original .pt" if kind == "sam2" else "")
            + ">}` in the show file"
        )
    path = Path(spec).expanduser()
    if path.exists() or _looks_like_path(spec):
        if not path.exists():
            raise BackendError(f"{name} weights not found: {path} (models: {kind}: {spec}) does not exist")
        path = path.resolve()
        if path.is_dir():
            _check_folder(kind, spec, path)
            return ModelSource(kind, spec, "folder", path)
        _check_file(kind, spec, path)
        return ModelSource(kind, spec, "checkpoint", path)

    repo_id, _, revision = spec.partition("@")
    revision = revision or None
    snapshot = _cached_snapshot(repo_id, revision)
    if snapshot is not None:
        return ModelSource(kind, spec, "hub", snapshot, repo_id, revision)
    # `org/name` could also have been meant as a relative folder: say both.
    what = f"{name} weights '{spec}' (models: {kind}) not found: no such local path, and the hub id is"
    if _hub_offline():
        raise BackendError(
            f"{what} not in the local Hugging Face cache while the hub is offline "
            f"(HF_HUB_OFFLINE is set): {_provide_hint(kind, spec)}"
        )
    # Not cached and not declared offline: ask the hub once, with a short timeout, so an
    # air-gapped machine fails in seconds instead of hanging in a download.
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=10)
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise BackendError(f"{what} not on the Hugging Face hub ({type(exc).__name__})") from None
    except Exception as exc:  # network failure of any kind
        raise BackendError(
            f"{what} not in the local Hugging Face cache and the hub cannot be reached "
            f"({type(exc).__name__}): {_provide_hint(kind, spec)}"
        ) from None
    if not download:
        return ModelSource(kind, spec, "hub", None, repo_id, revision)
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_ALLOW_PATTERNS))
    except Exception as exc:
        raise BackendError(f"{name} weights '{spec}' could not be downloaded: {exc}") from None
    _check_folder(kind, spec, folder)
    return ModelSource(kind, spec, "hub", folder, repo_id, revision)


def check_model_source(kind: str, source: str) -> None:
    """Fail fast, before any stage runs, when `models: {kind: source}` cannot be loaded:
    a missing or unreadable folder/file, a folder that is not a model folder, or a hub id
    that is not in the local cache while the hub is unreachable. Cheap: no weights are
    read or hashed and nothing is downloaded."""
    if kind not in MODEL_NAMES:
        raise BackendError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_NAMES)}")
    if kind == "edgetam":
        from resources.sam2 import require_edgetam

        require_edgetam(source)
    resolve_model_source(kind, source, download=False)


# ---------------------------------------------------------------------------------------
# Hashing weights (cached by path, size and mtime)

_hash_lock = threading.Lock()
_hash_memo: dict[str, str] = {}


def _hash_cache_file() -> Path:
    base = os.environ.get("MATTE_CACHE_DIR")
    if base:
        return Path(base) / "weight-hashes.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "matte-pipeline" / "weight-hashes.json"


def _load_hash_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store_hash(key: str, digest: str) -> None:
    """Best effort: a read-only home only costs a re-hash next run."""
    path = _hash_cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load_hash_cache(path)
        data[key] = digest
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".weight-hashes.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def file_sha256(path: Path) -> str:
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
        cached = _load_hash_cache(_hash_cache_file()).get(key)
        if cached:
            _hash_memo[key] = cached
            return cached
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        digest = h.hexdigest()
        _hash_memo[key] = digest
        _store_hash(key, digest)
        return digest


def identity_files(folder: Path) -> list[Path]:
    """The files that define a model folder's behaviour (weights, configs, vocabularies)."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_IDENTITY_SKIP_SUFFIXES)
    )


def folder_sha256(folder: Path) -> str:
    h = hashlib.sha256()
    for p in identity_files(folder):
        h.update(f"{p.name}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# Process-wide model cache

_model_lock = threading.Lock()
_models: dict[tuple[str, str, str], Any] = {}


def cached_model(kind: str, source: ModelSource, device: str, load: Callable[[], T]) -> T:
    """Load once per (kind, weights, device) and process; later calls get the same object.
    `kind` distinguishes roles sharing weights (sam2 segmenter vs sam2 tracker)."""
    key = (kind, source.cache_key(), device)
    with _model_lock:
        if key in _models:
            return _models[key]
        model = load()
        _models[key] = model
        return model


def clear_model_cache() -> None:
    """Drop every cached model (tests; freeing GPU memory between shows)."""
    with _model_lock:
        _models.clear()


def library_versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading progress bars and info chatter during a load; the CLI
    prints one line per stage and a model load should not scroll it away."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def from_pretrained_strict(model_cls, src: ModelSource, **kwargs):
    """`model_cls.from_pretrained` on a local folder (hub ids are resolved to their cached
    snapshot first), in float32 (autocast provides bf16 on GPU), refusing weights that
    leave parameters randomly initialised: a wrong folder must fail, not run."""
    import torch

    try:
        with quiet_transformers():
            model, info = model_cls.from_pretrained(
                str(src.path), local_files_only=True, dtype=torch.float32, output_loading_info=True, **kwargs
            )
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(
            f"{src.name} weights {src.spec} cannot be loaded as {model_cls.__name__}: {type(exc).__name__}: {exc}"
        ) from None
    missing = sorted(info.get("missing_keys") or [])
    mismatched = [str(m) for m in (info.get("mismatched_keys") or [])]
    if missing or mismatched:
        what = ", ".join((missing or mismatched)[:5])
        more = " ..." if len(missing or mismatched) > 5 else ""
        raise BackendError(
            f"{src.name} weights {src.spec} do not fit {model_cls.__name__} "
            f"({'missing' if missing else 'mismatched'}: {what}{more})"
        )
    return model.eval()


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {path}: {exc}") from None
