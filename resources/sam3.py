"""SAM 3 model backends ("Segment Anything with Concepts", Meta 2025) through transformers:

- `detector: sam3` — `Sam3Model`: a text prompt gives every matching instance's box, score
  and mask in one forward pass per frame and label (the vision backbone runs once per
  frame, the DETR heads once per label). Score = sigmoid(query logit) x sigmoid(presence
  logit), as SAM 3's own post-processing computes it; boxes and masks are kept when the
  score exceeds `detect.box_threshold` (`text_threshold` does not apply: SAM 3 scores
  whole phrases, not tokens). Each detection carries its mask, stored with the detections.
- `segmenter: sam3` — takes the detector's masks as they are (no second pass; the
  quality is the detection score). Detections without a stored mask (another detector)
  and artist clicks are segmented from box/click prompts by `Sam3TrackerModel` (SAM 3's
  backbone with the SAM2-style prompt decoder), through the SAM2 segmenter code.
- `tracker: sam3` — `Sam3TrackerVideoModel` in our windows with mask prompts; its
  inference session has SAM2's API, so the SAM2 video driver (`resources.sam2`) runs it.

Weights: one folder in Hugging Face layout or a hub id (`facebook/sam3`, model_type
`sam3_video`: detector + tracker in one file) serves all three roles; folders holding only
the image model (`sam3`) or only the tracker (`sam3_tracker_video`) serve their role.
The text tokenizer (CLIP BPE) is loaded from the same folder with transformers'
tokenizer classes. Images are prepared on tensors here (the processor classes need
torchvision): resized to the model's square input, scaled to [0, 1], normalised with the
mean/std saved with the weights (SAM 3: 0.5 / 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matte_assets.errors import BackendError
from resources.backends import Detection, Detector, PointPrompt, Segmenter, Tracker
from resources.model_loading import (
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
from resources.sam2 import (
    Sam2Segmenter,
    VideoTracker,
    _check_frames,
    _upsample_logits,
    sam_pixels,
)

# Bump when preprocessing/post-processing here changes results: it is part of identity().
IMPL_VERSION = "1"

# SAM 3's image processor: 1008 px square, mean = std = 0.5 (read from the folder when saved).
SAM3_MEAN = (0.5, 0.5, 0.5)
SAM3_STD = (0.5, 0.5, 0.5)
TEXT_LENGTH = 32  # Sam3Processor pads every phrase to 32 tokens

DETECTOR_TYPES = ("sam3_video", "sam3", "sam3_lite_text")
TRACKER_TYPES = ("sam3_video", "sam3_tracker_video")


def _model_type(folder: Path) -> str:
    return str(read_json(folder / "config.json").get("model_type", ""))


def _normalisation(folder: Path | None) -> tuple[tuple, tuple]:
    if folder is not None:
        for name in ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json"):
            p = folder / name
            if p.is_file():
                cfg = read_json(p)
                cfg = cfg.get("image_processor", cfg)
                if "image_mean" in cfg and "image_std" in cfg:
                    return tuple(float(v) for v in cfg["image_mean"]), tuple(float(v) for v in cfg["image_std"])
    return SAM3_MEAN, SAM3_STD


def _video_config(src: ModelSource):
    from transformers import Sam3VideoConfig

    with quiet_transformers():
        return Sam3VideoConfig.from_pretrained(str(src.path), local_files_only=True)


def _wrong_type(src: ModelSource, role: str, model_type: str, accepted: Sequence[str]) -> BackendError:
    return BackendError(
        f"SAM 3 weights {src.spec} are a {model_type or 'unknown'} model; the SAM 3 {role} needs "
        f"model_type {' or '.join(accepted)} (facebook/sam3 holds all of them)"
    )


# ---------------------------------------------------------------------------------------
# Loading


def _load_detector_model(src: ModelSource):
    from transformers import Sam3LiteTextModel, Sam3Model

    model_type = _model_type(src.path)
    if model_type == "sam3_video":
        # The video checkpoint holds the image model under detector_model.*; its config is
        # given explicitly so transformers does not warn about the model type.
        return from_pretrained_strict(Sam3Model, src, config=_video_config(src).detector_config)
    if model_type == "sam3":
        return from_pretrained_strict(Sam3Model, src)
    if model_type == "sam3_lite_text":
        return from_pretrained_strict(Sam3LiteTextModel, src)
    raise _wrong_type(src, "detector", model_type, DETECTOR_TYPES)


def _load_tokenizer(src: ModelSource):
    from transformers import AutoTokenizer

    folder = src.path
    # Without its files transformers would build an empty CLIP tokenizer and run anyway.
    if not (folder / "tokenizer.json").is_file() and not (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    ):
        raise BackendError(
            f"SAM 3 weights {src.spec} ({folder}) have no text tokenizer: expected tokenizer.json, "
            "or vocab.json + merges.txt, beside config.json (as in facebook/sam3)"
        )
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(src.path), local_files_only=True)
    except Exception as exc:
        raise BackendError(
            f"SAM 3 weights {src.spec} ({src.path}) have no usable text tokenizer "
            f"(tokenizer.json, or vocab.json + merges.txt): {type(exc).__name__}: {exc}"
        ) from None


def _load_video_tracker(src: ModelSource):
    from transformers import Sam3TrackerVideoModel

    model_type = _model_type(src.path)
    if model_type == "sam3_video":
        return from_pretrained_strict(Sam3TrackerVideoModel, src, config=_video_config(src).tracker_config)
    if model_type == "sam3_tracker_video":
        return from_pretrained_strict(Sam3TrackerVideoModel, src)
    raise _wrong_type(src, "tracker", model_type, TRACKER_TYPES)


def _load_image_tracker(src: ModelSource, video_model):
    """Sam3TrackerModel (box/click prompts on one image) sharing the video tracker's
    tensors: its parameters are a subset of Sam3TrackerVideoModel's (transformers 5.24's
    key renaming misses some of them when loading the image class from a sam3_video file)."""
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    video = video_model.config
    config = Sam3TrackerConfig(
        vision_config=video.vision_config.to_dict(),
        prompt_encoder_config=video.prompt_encoder_config.to_dict(),
        mask_decoder_config=video.mask_decoder_config.to_dict(),
    )
    with quiet_transformers():
        model = Sam3TrackerModel(config)
    state = video_model.state_dict()
    missing = [k for k in model.state_dict() if k not in state]
    if missing:
        raise BackendError(
            f"SAM 3 weights {src.spec} do not fit Sam3TrackerModel (missing: {', '.join(missing[:5])})"
        )
    model.load_state_dict({k: state[k] for k in model.state_dict()}, strict=True, assign=True)
    return model.eval()


def _identity(role: str, model_class: str, src: ModelSource | None, device: str, extra: dict | None = None):
    ident = {
        "backend": "sam3",
        "role": role,
        "model_class": model_class,
        "device": device.split(":")[0],
        "dtype": compute_dtype_name(device),
        "impl": IMPL_VERSION,
        **library_versions(),
    }
    ident.update(src.weights_identity() if src is not None else {"weights": "in-memory"})
    ident.update(extra or {})
    return {k: str(v) for k, v in ident.items()}


# ---------------------------------------------------------------------------------------
# Detector


class Sam3Detector(Detector):
    """Text-prompted detection and segmentation, batched over frames of one shape."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: str,
        source: ModelSource | None = None,
        mean: tuple = SAM3_MEAN,
        std: tuple = SAM3_STD,
        batch_size: int | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.source = source
        self.mean, self.std = tuple(mean), tuple(std)
        self.size = int(model.config.vision_config.image_size)
        # 1008-px ViT-L activations: 4 frames fit a 24 GB GPU in bf16; CPU gains nothing.
        self.batch_size = batch_size or (4 if device.startswith("cuda") else 1)
        text_cfg = model.config.text_config
        self.text_length = min(TEXT_LENGTH, int(getattr(text_cfg, "max_position_embeddings", TEXT_LENGTH)))
        self._prompts: dict[str, tuple[Any, Any]] = {}
        self._identity: dict[str, str] | None = None

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = _identity(
                "detector", type(self.model).__name__, self.source, self.device, {"image_size": self.size}
            )
        return dict(self._identity)

    def supported_labels(self) -> frozenset[str] | None:
        return None  # open vocabulary: any noun phrase

    def detect(
        self,
        frames: Sequence[np.ndarray],
        labels: Sequence[str],
        box_threshold: float,
        text_threshold: float,
    ) -> list[list[Detection]]:
        names = _clean_labels(labels)
        results: list[list[tuple[float, int, Detection]]] = [[] for _ in frames]
        by_shape: dict[tuple, list[int]] = {}
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"SAM 3: frame {i} is {frame.dtype} {frame.shape}, expected uint8 (H, W, 3)")
            by_shape.setdefault(frame.shape, []).append(i)
        for shape, indices in by_shape.items():
            for s in range(0, len(indices), self.batch_size):
                idx = indices[s : s + self.batch_size]
                batch = np.stack([np.asarray(frames[i]) for i in idx])
                for order, name in enumerate(names):
                    for j, dets in enumerate(self._detect_label(batch, name, box_threshold)):
                        results[idx[j]].extend((d.score, order, d) for d in dets)
        # Descending score; ties by label order then query order (stable sort): deterministic.
        return [[d for _, _, d in sorted(r, key=lambda t: (-t[0], t[1]))] for r in results]

    def _detect_label(self, frames: np.ndarray, name: str, box_threshold: float) -> list[list[Detection]]:
        import torch

        height, width = frames.shape[1:3]
        input_ids, attention_mask = self._prompt(name)
        batch = len(frames)
        with torch.inference_mode():
            pixels = sam_pixels(frames, self.size, self.mean, self.std, self.device)
            with autocast(self.device):
                out = self.model(
                    pixel_values=pixels,
                    input_ids=input_ids.expand(batch, -1),
                    attention_mask=attention_mask.expand(batch, -1),
                )
            scores = out.pred_logits.float().sigmoid()
            if out.presence_logits is not None:
                scores = scores * out.presence_logits.float().sigmoid()  # (B, Q) * (B, 1)
            scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=scores.device)
            boxes = torch.minimum((out.pred_boxes.float() * scale).clamp(min=0), scale)  # xyxy, normalised
            found: list[list[Detection]] = []
            for b in range(batch):
                score, box = scores[b].cpu().numpy(), boxes[b].cpu().numpy()
                keep = (score > box_threshold) & (box[:, 2] - box[:, 0] >= 1) & (box[:, 3] - box[:, 1] >= 1)
                queries = np.nonzero(keep)[0]
                queries = queries[np.lexsort((queries, -score[queries]))]
                masks = (
                    _upsample_logits(out.pred_masks[b, torch.from_numpy(queries).to(scores.device)], height, width)
                    if len(queries)
                    else np.zeros((0, height, width), bool)
                )
                found.append(
                    [
                        Detection(label=name, score=float(score[q]), box=tuple(float(v) for v in box[q]), mask=masks[k])
                        for k, q in enumerate(queries)
                    ]
                )
        return found

    def _prompt(self, name: str):
        import torch

        if name not in self._prompts:
            tok = self.tokenizer(name, padding="max_length", max_length=self.text_length, truncation=False)
            ids = list(tok["input_ids"])
            if len(ids) > self.text_length:
                raise BackendError(
                    f"SAM 3 prompt label {name!r} is {len(ids)} tokens; the model takes at most "
                    f"{self.text_length}: use a shorter phrase"
                )
            self._prompts[name] = (
                torch.tensor([ids], dtype=torch.long, device=self.device),
                torch.tensor([list(tok["attention_mask"])], dtype=torch.long, device=self.device),
            )
        return self._prompts[name]


def _clean_labels(labels: Sequence[str] | str) -> list[str]:
    if isinstance(labels, str):
        labels = labels.replace(".", ",").split(",")
    names: list[str] = []
    for label in labels:
        name = " ".join(str(label).lower().split())
        if name and name not in names:
            names.append(name)
    if not names:
        raise BackendError("SAM 3 needs at least one prompt label (e.g. prompt: person, car)")
    return names


# ---------------------------------------------------------------------------------------
# Segmenter


class Sam3Segmenter(Segmenter):
    """`segmenter: sam3`. The masks of `detector: sam3` are used as they are (frame_masks
    copies them); `segment` (detections of another detector, artist clicks) prompts
    Sam3TrackerModel with boxes/clicks, loaded on first use only."""

    reuses_detector_masks = True

    def __init__(self, source: ModelSource | None, device: str, *, model=None):
        self.source = source
        self.device = device
        self._model = model
        self._segmenter: Sam2Segmenter | None = None
        self._identity: dict[str, str] | None = None

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = _identity(
                "segmenter",
                "Sam3TrackerModel",
                self.source,
                self.device,
                {"masks": "detector masks as stored; box/click prompts otherwise"},
            )
        return dict(self._identity)

    def _box_segmenter(self) -> Sam2Segmenter:
        if self._segmenter is None:
            src, dev = self.source, self.device
            model = self._model
            if model is None:
                video = cached_model("sam3-video-tracker", src, dev, lambda: _load_video_tracker(src).to(dev))
                model = cached_model("sam3-image-tracker", src, dev, lambda: _load_image_tracker(src, video))
            mean, std = _normalisation(src.path if src is not None else None)
            self._segmenter = Sam2Segmenter(model, device=dev, source=src, mean=mean, std=std, backend="sam3")
        return self._segmenter

    def segment(
        self,
        frame: np.ndarray,
        boxes: np.ndarray,
        points: Sequence[Sequence[PointPrompt]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        frame = np.asarray(frame)
        _check_frames(frame[None], "SAM 3 segmenter")
        if len(np.asarray(boxes).reshape(-1, 4)) == 0:
            h, w = frame.shape[:2]
            return np.zeros((0, h, w), bool), np.zeros((0,), np.float32)
        return self._box_segmenter().segment(frame, boxes, points)


# ---------------------------------------------------------------------------------------
# Factories (the names the registry wires to `backends:`)


def load_sam3_detector(source: str, device: str = "auto", *, batch_size: int | None = None) -> Detector:
    """`detector: sam3` with `models: {sam3: <folder | hub id>}` (e.g. facebook/sam3)."""
    dev = resolve_device(device)
    src = resolve_model_source("sam3", source, download=True)

    def load():
        model = _load_detector_model(src)
        return model.to(dev), _load_tokenizer(src)

    model, tokenizer = cached_model("sam3-detector", src, dev, load)
    mean, std = _normalisation(src.path)
    return Sam3Detector(model, tokenizer, device=dev, source=src, mean=mean, std=std, batch_size=batch_size)


def load_sam3_segmenter(source: str, device: str = "auto") -> Segmenter:
    """`segmenter: sam3`: the model itself loads only when a box must be segmented (the
    detector's masks need no model); the folder is checked now."""
    dev = resolve_device(device)
    src = resolve_model_source("sam3", source, download=True)
    model_type = _model_type(src.path)
    # An image-model-only folder (sam3) still serves the detector's stored masks; only box
    # prompts need the tracker's decoder, and say so when asked.
    accepted = (*TRACKER_TYPES, "sam3", "sam3_lite_text")
    if model_type not in accepted:
        raise _wrong_type(src, "segmenter", model_type, accepted)
    return Sam3Segmenter(src, dev)


def load_sam3_tracker(source: str, device: str = "auto") -> Tracker:
    """`tracker: sam3` with `models: {sam3: <folder | hub id>}`."""
    from transformers import Sam3TrackerVideoInferenceSession

    dev = resolve_device(device)
    src = resolve_model_source("sam3", source, download=True)
    model = cached_model("sam3-video-tracker", src, dev, lambda: _load_video_tracker(src).to(dev))
    mean, std = _normalisation(src.path)
    return VideoTracker(
        model, Sam3TrackerVideoInferenceSession, backend="sam3", device=dev, source=src, mean=mean, std=std
    )
