"""SAM2 model backends: the box-prompted image segmenter (`segmenter: sam2`), the SAM2 video
tracker (`tracker: sam2`) and the EdgeTAM video tracker (`tracker: edgetam`).

All three run transformers model classes directly (`Sam2Model`, `Sam2VideoModel`,
`EdgeTamVideoModel`); the transformers *processor* classes are not used because they need
torchvision. Their few steps are written here on plain tensors:
- frames: uint8 RGB (H, W, 3) -> resized to the model's square input (aspect not kept, as
  SAM2 does), scaled to [0, 1], normalised with the ImageNet mean/std;
- prompts: plate-pixel boxes/clicks scaled by (S / W, S / H); masks resized to S x S;
- outputs: low-resolution mask logits upsampled bilinearly to plate size, thresholded at 0.

Weights come from a Hugging Face folder, a hub id, or Meta's original `.pt`
(`resources.sam2_checkpoint`); models are loaded once per process and kind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matte_assets.errors import BackendError
from resources.backends import PointPrompt, Segmenter, Tracker, TrackerSession
from resources.model_loading import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelSource,
    autocast,
    cached_model,
    compute_dtype_name,
    from_pretrained_strict,
    library_versions,
    quiet_transformers,
    read_json,
    resolve_device,
    resolve_model_source,
)

# Bump when preprocessing/post-processing here changes results: it is part of identity().
IMPL_VERSION = "1"


EDGETAM_INSTALL_HINT = (
    "EdgeTAM (tracker: edgetam) needs the optional packages timm and torchvision (timm imports "
    "torchvision): install them with pip install 'matte-pipeline[edgetam]' (torchvision must "
    "match your torch version), or use `tracker: sam2`"
)


# ---------------------------------------------------------------------------------------
# Frame preprocessing, shared by segmenter and trackers through a small content-keyed cache


_PIXEL_CACHE_SIZE = 24  # about one tracking window plus its seed frame at 1024 px
_pixel_cache: OrderedDict[tuple, Any] = OrderedDict()
_pixel_lock = threading.Lock()


def _frame_digest(frame: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).hexdigest()


def _check_frames(frames: np.ndarray, what: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 RGB frames of shape (H, W, 3), got {frames.dtype} {frames.shape}")


def sam_pixels(frames: np.ndarray, size: int, mean: tuple, std: tuple, device: str):
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32 on `device`, as SAM2's processors
    prepare them. Frames seen recently (same content, size and normalisation) are reused,
    so the segmenter and the tracker, and overlapping tracking windows, pay once."""
    import torch
    import torch.nn.functional as F

    frames = np.asarray(frames)
    _check_frames(frames, "SAM2")
    keys = [(_frame_digest(f), f.shape, size, mean, std, device) for f in frames]
    out: list[Any] = [None] * len(frames)
    with _pixel_lock:
        for i, key in enumerate(keys):
            if key in _pixel_cache:
                _pixel_cache.move_to_end(key)
                out[i] = _pixel_cache[key]
    todo = [i for i in range(len(frames)) if out[i] is None]
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    for start in range(0, len(todo), 8):  # bounded batches: 8 frames of float32 at 1024 px
        idx = todo[start : start + 8]
        x = torch.from_numpy(np.stack([frames[i] for i in idx])).to(device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - mean_t) / std_t
        for j, i in enumerate(idx):
            out[i] = x[j]
    with _pixel_lock:
        for i in todo:
            _pixel_cache[keys[i]] = out[i]
            _pixel_cache.move_to_end(keys[i])
        while len(_pixel_cache) > _PIXEL_CACHE_SIZE:
            _pixel_cache.popitem(last=False)
    return torch.stack(out)


def clear_pixel_cache() -> None:
    with _pixel_lock:
        _pixel_cache.clear()


def _normalisation(folder: Path | None) -> tuple[tuple, tuple]:
    """Mean/std from the processor configs saved with the weights, else ImageNet's."""
    if folder is not None:
        for name in ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json"):
            p = folder / name
            if p.is_file():
                cfg = read_json(p)
                cfg = cfg.get("image_processor", cfg)
                if "image_mean" in cfg and "image_std" in cfg:
                    return tuple(float(v) for v in cfg["image_mean"]), tuple(float(v) for v in cfg["image_std"])
    return IMAGENET_MEAN, IMAGENET_STD


def _upsample_logits(logits, height: int, width: int) -> np.ndarray:
    """(N, h, w) mask logits -> (N, H, W) bool at plate size (bilinear, threshold 0),
    in chunks so 1024-px masks for many objects stay within a few hundred MB."""
    import torch.nn.functional as F

    out = np.zeros((logits.shape[0], height, width), dtype=bool)
    for s in range(0, logits.shape[0], 16):
        up = F.interpolate(logits[s : s + 16, None].float(), size=(height, width), mode="bilinear", align_corners=False)
        out[s : s + 16] = (up[:, 0] > 0).cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------
# Loading weights


def _model_type(folder: Path) -> str:
    return str(read_json(folder / "config.json").get("model_type", ""))


def _load_sam2(src: ModelSource, role: str):
    """Sam2Model (role "image") or Sam2VideoModel (role "video") from any SAM2 source."""
    from transformers import Sam2Model, Sam2VideoConfig, Sam2VideoModel

    from resources import sam2_checkpoint as ckpt

    if src.form == "checkpoint":
        with quiet_transformers():
            config, state = ckpt.load_converted(src.path)
            if role == "image":
                return ckpt.build_model(Sam2Model, ckpt.image_config_from_video(config), state, src.path)
            return ckpt.build_model(Sam2VideoModel, config, state, src.path)
    model_type = _model_type(src.path)
    if role == "image":
        if model_type == "sam2":
            return from_pretrained_strict(Sam2Model, src)
        if model_type == "sam2_video":
            # Video checkpoints contain the image model; build its config explicitly so
            # transformers does not warn about the model type, and skip the memory modules.
            with quiet_transformers():
                video_config = Sam2VideoConfig.from_pretrained(str(src.path), local_files_only=True)
            return from_pretrained_strict(Sam2Model, src, config=ckpt.image_config_from_video(video_config))
    elif model_type == "sam2_video":
        return from_pretrained_strict(Sam2VideoModel, src)
    elif model_type == "sam2":
        raise BackendError(
            f"SAM2 weights {src.spec} hold only the image model (model_type sam2); the SAM2 tracker "
            "needs the video model (model_type sam2_video, as in facebook/sam2.1-hiera-* or Meta's .pt)"
        )
    raise BackendError(f"SAM2 weights {src.spec} are a {model_type or 'unknown'} model, not SAM2")


def _identity(backend: str, role: str, model, src: ModelSource, device: str, extra: dict | None = None) -> dict:
    ident = {
        "backend": backend,
        "role": role,
        # The transformers class (our EdgeTAM subclass only patches a shape).
        "model_class": next(c.__name__ for c in type(model).__mro__ if c.__module__.startswith("transformers.")),
        "device": device.split(":")[0],
        "dtype": compute_dtype_name(device),
        "impl": IMPL_VERSION,
        **library_versions(),
    }
    ident.update(src.weights_identity() if src is not None else {"weights": "in-memory"})
    ident.update(extra or {})
    return {k: str(v) for k, v in ident.items()}


# ---------------------------------------------------------------------------------------
# Segmenter


class Sam2Segmenter(Segmenter):
    """Box (+ optional clicks) prompted SAM2 on single frames. The image embedding is
    computed once per frame and every box of the frame is decoded in one call; the quality
    score is the mask decoder's predicted IoU."""

    def __init__(
        self,
        model,
        *,
        device: str,
        source: ModelSource | None = None,
        mean: tuple = IMAGENET_MEAN,
        std: tuple = IMAGENET_STD,
        max_boxes_per_call: int = 64,
        backend: str = "sam2",
    ):
        self.model = model
        self.backend = backend  # "sam3": the same decoder API on SAM 3's tracker image model
        self.device = device
        self.source = source
        self.mean, self.std = tuple(mean), tuple(std)
        self.size = int(model.config.prompt_encoder_config.image_size)
        self.max_boxes_per_call = max_boxes_per_call
        self._identity: dict[str, str] | None = None

    def identity(self) -> dict[str, str]:
        if self._identity is None:  # lazily: hashing large weights is paid only when asked
            self._identity = _identity(self.backend, "segmenter", self.model, self.source, self.device)
        return dict(self._identity)

    def segment(
        self,
        frame: np.ndarray,
        boxes: np.ndarray,
        points: Sequence[Sequence[PointPrompt]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        frame = np.asarray(frame)
        _check_frames(frame[None], "SAM2 segmenter")
        height, width = frame.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        masks = np.zeros((n, height, width), dtype=bool)
        quality = np.zeros((n,), dtype=np.float32)
        if n == 0:
            return masks, quality
        if points is not None and len(points) != n:
            raise ValueError(f"SAM2 segmenter: {len(points)} click lists for {n} boxes")
        sx, sy = self.size / width, self.size / height
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        # Boxes with clicks are decoded apart: padding click slots would change the others.
        plain = [i for i in range(n) if not points or not points[i]]
        clicked = [i for i in range(n) if points and points[i]]
        with torch.inference_mode(), autocast(self.device):
            pixels = sam_pixels(frame[None], self.size, self.mean, self.std, self.device)
            embeddings = self.model.get_image_embeddings(pixels)
            for group in (plain, clicked):
                for s in range(0, len(group), self.max_boxes_per_call):
                    idx = group[s : s + self.max_boxes_per_call]
                    kwargs: dict[str, Any] = {
                        "input_boxes": torch.from_numpy(boxes[idx] * scale)[None].to(self.device)
                    }
                    if group is clicked:
                        kwargs.update(self._clicks([points[i] for i in idx], sx, sy))
                    out = self.model(image_embeddings=embeddings, multimask_output=False, **kwargs)
                    logits = out.pred_masks[0, :, 0]  # (boxes, h, w)
                    masks[idx] = _upsample_logits(logits, height, width)
                    quality[idx] = out.iou_scores[0, :, 0].float().clamp(0, 1).cpu().numpy()
        return masks, quality

    def _clicks(self, clicks: list[Sequence[PointPrompt]], sx: float, sy: float) -> dict[str, Any]:
        import torch

        most = max(len(c) for c in clicks)
        coords = np.zeros((1, len(clicks), most, 2), dtype=np.float32)
        labels = np.full((1, len(clicks), most), -10, dtype=np.int64)  # -10: padding slot
        for j, box_clicks in enumerate(clicks):
            for k, p in enumerate(box_clicks):
                coords[0, j, k] = (p.x * sx, p.y * sy)
                labels[0, j, k] = 1 if p.positive else 0
        return {
            "input_points": torch.from_numpy(coords).to(self.device),
            "input_labels": torch.from_numpy(labels).to(self.device),
        }


# ---------------------------------------------------------------------------------------
# Video trackers (SAM2 and EdgeTAM share the session logic)


class VideoTracker(Tracker):
    """A transformers SAM2-family video model driven through its inference session."""

    def __init__(
        self,
        model,
        session_cls,
        *,
        backend: str,
        device: str,
        source: ModelSource | None = None,
        mean: tuple = IMAGENET_MEAN,
        std: tuple = IMAGENET_STD,
    ):
        self.model = model
        self.session_cls = session_cls
        self.backend = backend
        self.device = device
        self.source = source
        self.mean, self.std = tuple(mean), tuple(std)
        self.size = int(model.config.image_size)
        self._identity: dict[str, str] | None = None

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = _identity(self.backend, "tracker", self.model, self.source, self.device)
        return dict(self._identity)

    def open_session(self, frames: np.ndarray) -> TrackerSession:
        return VideoTrackerSession(self, frames)


class VideoTrackerSession(TrackerSession):
    """One window. Frames are preprocessed once; the model's session keeps per-object
    memories for this window only, so memory is bounded by the window length.

    Prompts: mask prompts only, at frame 0 before any propagation or at the last frame the
    previous `propagate` returned. Prompted objects are sent together (the model marks
    objects with new inputs per call), and at its prompt frame an object's returned mask is
    the prompt itself. A re-prompt on an already tracked frame enters the memory as SAM2
    corrections do (a non-conditioning memory frame), as in Meta's video predictor."""

    def __init__(self, tracker: VideoTracker, frames: np.ndarray):
        import torch

        frames = np.asarray(frames)
        _check_frames(frames, f"{tracker.backend} tracker")
        if len(frames) == 0:
            raise ValueError(f"{tracker.backend} tracker: a session needs at least one frame")
        self.tracker = tracker
        self.num_frames = len(frames)
        self.height, self.width = frames.shape[1:3]
        device = tracker.device
        with torch.inference_mode():
            pixels = sam_pixels(frames, tracker.size, tracker.mean, tracker.std, device)
            self._session = tracker.session_cls(
                video=pixels,
                video_height=self.height,
                video_width=self.width,
                inference_device=device,
                inference_state_device=device,
                video_storage_device=device,
                dtype=torch.float32,
                max_vision_features_cache_size=1,
            )
        self._done = 0  # frames 0.._done-1 have been run through the model
        self._returned: int | None = None  # last frame index returned by propagate
        self._pending: dict[int, np.ndarray] = {}
        self._pending_frame: int | None = None
        self._last: dict[int, np.ndarray] = {}  # results of frame _done-1

    def add_mask(self, frame_index: int, object_id: int, mask: np.ndarray) -> None:
        if self._session is None:
            raise RuntimeError("tracker session is closed")
        allowed = 0 if self._returned is None else self._returned
        if frame_index != allowed:
            raise ValueError(
                f"add_mask at frame {frame_index}: prompts are accepted only at frame 0 before the first "
                f"propagate, or at the last frame the previous propagate returned ({allowed})"
            )
        mask = np.asarray(mask).astype(bool, copy=False)
        if mask.shape != (self.height, self.width):
            raise ValueError(f"add_mask: mask shape {mask.shape} != frame shape {(self.height, self.width)}")
        self._pending[int(object_id)] = mask.copy()
        self._pending_frame = frame_index

    def propagate(self, start: int, stop: int) -> dict[int, dict[int, np.ndarray]]:
        import torch

        if self._session is None:
            raise RuntimeError("tracker session is closed")
        if not 0 <= start <= stop <= self.num_frames:
            raise ValueError(f"propagate({start}, {stop}) outside the window of {self.num_frames} frames")
        if start == stop:
            return {}
        if start < max(self._done - 1, 0):
            raise ValueError(
                f"propagate({start}, {stop}): frames up to {self._done - 1} were already tracked; "
                "sessions only go forward (open a new session to track again)"
            )
        results: dict[int, dict[int, np.ndarray]] = {}
        with torch.inference_mode(), autocast(self.tracker.device):
            if self._pending:
                frame = self._pending_frame
                prompts, self._pending = self._pending, {}
                self._last = self._run(frame, prompts)
                self._done = max(self._done, frame + 1)
                if start <= frame < stop:
                    results[frame] = self._last
            elif start == self._done - 1:
                results[start] = self._last
            for frame in range(self._done, stop):
                self._last = self._run(frame, None)
                self._done = frame + 1
                if frame >= start:
                    results[frame] = self._last
        self._returned = stop - 1
        return dict(sorted(results.items()))

    def _run(self, frame: int, prompts: dict[int, np.ndarray] | None) -> dict[int, np.ndarray]:
        import torch
        import torch.nn.functional as F

        session, size = self._session, self.tracker.size
        if prompts:
            for object_id, mask in sorted(prompts.items()):
                obj_idx = session.obj_id_to_idx(object_id)
                m = torch.from_numpy(mask).to(self.tracker.device, torch.float32)[None, None]
                if m.shape[-2:] != (size, size):
                    m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                    m = (m >= 0.5).float()
                session.add_mask_inputs(obj_idx, frame, m)
                session.remove_point_inputs(obj_idx, frame)
            # The model treats exactly these ids as newly prompted on this call.
            session.obj_with_new_inputs = sorted(prompts)
        if session.get_obj_num() == 0:
            return {}
        out = self.tracker.model(inference_session=session, frame_idx=frame)
        ids = list(out.object_ids)
        logits = out.pred_masks.reshape(len(ids), *out.pred_masks.shape[-2:])
        masks = _upsample_logits(logits, self.height, self.width)
        result = {int(obj): masks[i] for i, obj in enumerate(ids)}
        for object_id, mask in (prompts or {}).items():
            result[object_id] = mask  # contract: the prompt frame returns the prompt
        return dict(sorted(result.items()))

    def close(self) -> None:
        if self._session is not None:
            self._session.reset_inference_session()
            self._session.processed_frames = None
            self._session = None
        self._last = {}
        self._pending = {}


# ---------------------------------------------------------------------------------------
# Factories (the names the pipeline wires to `backends:`)


def load_sam2_segmenter(source: str, device: str = "auto") -> Segmenter:
    """`segmenter: sam2` with `models: {sam2: <folder | hub id | original .pt>}`."""
    dev = resolve_device(device)
    src = resolve_model_source("sam2", source, download=True)
    model = cached_model("sam2-image", src, dev, lambda: _load_sam2(src, "image").to(dev))
    mean, std = _normalisation(src.path if src.form != "checkpoint" else None)
    return Sam2Segmenter(model, device=dev, source=src, mean=mean, std=std)


def load_sam2_tracker(source: str, device: str = "auto") -> Tracker:
    """`tracker: sam2` with `models: {sam2: <folder | hub id | original .pt>}`."""
    from transformers import Sam2VideoInferenceSession

    dev = resolve_device(device)
    src = resolve_model_source("sam2", source, download=True)
    model = cached_model("sam2-video", src, dev, lambda: _load_sam2(src, "video").to(dev))
    mean, std = _normalisation(src.path if src.form != "checkpoint" else None)
    return VideoTracker(model, Sam2VideoInferenceSession, backend="sam2", device=dev, source=src, mean=mean, std=std)


def edgetam_available() -> bool:
    """Cheap check (no import): timm and the torchvision it imports are installed."""
    return importlib.util.find_spec("timm") is not None and importlib.util.find_spec("torchvision") is not None


def require_edgetam(source: str | None = None) -> None:
    """Raise the install hint unless timm imports (it imports torchvision at import time).
    Only called on the EdgeTAM path, so a broken timm never affects SAM2 or GroundingDINO."""
    where = f" (models: edgetam: {source})" if source else ""
    if not edgetam_available():
        raise BackendError(EDGETAM_INSTALL_HINT + where)
    try:
        import timm  # noqa: F401
    except Exception as exc:  # ImportError, or torchvision/torch version clashes
        raise BackendError(f"{EDGETAM_INSTALL_HINT}{where}; importing timm failed: {type(exc).__name__}: {exc}") from None


def _edgetam_model_class():
    from transformers import EdgeTamVideoModel

    class PatchedEdgeTamVideoModel(EdgeTamVideoModel):
        """transformers 5.x gives a mask-prompted object score logits of shape (B, 1) but
        tracked objects (B, 1, 1), so a frame that mixes a new mask prompt with tracked
        objects fails to concatenate them. Give mask prompts SAM2's (B, 1, 1); a no-op
        once transformers agrees with itself."""

        def _use_mask_as_output(self, *args, **kwargs):
            out = super()._use_mask_as_output(*args, **kwargs)
            if out.object_score_logits is not None and out.object_score_logits.dim() == 2:
                out.object_score_logits = out.object_score_logits.unsqueeze(-1)
            return out

    return PatchedEdgeTamVideoModel


def load_edgetam_tracker(source: str, device: str = "auto") -> Tracker:
    """`tracker: edgetam` with `models: {edgetam: <folder | hub id>}` (e.g. yonigozlan/EdgeTAM-hf)."""
    require_edgetam(source)
    from transformers import EdgeTamVideoInferenceSession

    dev = resolve_device(device)
    src = resolve_model_source("edgetam", source, download=True)
    model_type = _model_type(src.path)
    if model_type != "edgetam_video":
        raise BackendError(f"EdgeTAM weights {src.spec} are a {model_type or 'unknown'} model, not edgetam_video")
    model = cached_model("edgetam-video", src, dev, lambda: from_pretrained_strict(_edgetam_model_class(), src).to(dev))
    mean, std = _normalisation(src.path)
    return VideoTracker(
        model, EdgeTamVideoInferenceSession, backend="edgetam", device=dev, source=src, mean=mean, std=std
    )
