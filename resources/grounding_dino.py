"""GroundingDINO open-vocabulary detector (`detector: grounding_dino`) through
`transformers.GroundingDinoForObjectDetection`.

Prompt: the labels ("person, car" arrives as ["person", "car"]) are joined GroundingDINO's
way, `person. car.`, tokenised piece by piece so each label's token span is known exactly.
Every box gets one label: the label whose tokens score highest for that query. A box is
kept when that score exceeds `box_threshold` (GroundingDINO's box confidence restricted to
the label tokens) and `text_threshold` (the label's tokens must be recognised).

Images are prepared on tensors the way GroundingDINO's image processor does (shortest edge
800, longest 1333, bilinear, ImageNet normalisation, sizes read from the folder's
`preprocessor_config.json` when present); frames are run in batches; boxes come back in
plate pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matte_assets.errors import BackendError
from resources.backends import Detection, Detector
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

IMPL_VERSION = "1"



def resized_shape(height: int, width: int, shortest: int, longest: int | None) -> tuple[int, int]:
    """Output (h, w) of GroundingDINO's resize: shortest edge -> `shortest`, unless the
    longest edge would pass `longest` (transformers' get_size_with_aspect_ratio)."""
    size, raw = shortest, None
    if longest is not None:
        lo, hi = float(min(height, width)), float(max(height, width))
        if hi / lo * size > longest:
            raw = longest * lo / hi
            size = int(round(raw))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return (int(raw * height / width) if raw is not None else int(size * height / width)), size
    return size, (int(raw * width / height) if raw is not None else int(size * width / height))


def _preprocessing(folder: Path | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        cfg = read_json(folder / "preprocessor_config.json")
    size = cfg.get("size") or {}
    shortest = int(size.get("shortest_edge", 800))
    longest = size.get("longest_edge", cfg.get("max_size", 1333))
    return {
        "shortest_edge": shortest,
        "longest_edge": int(longest) if longest is not None else None,
        "mean": tuple(float(v) for v in cfg.get("image_mean", IMAGENET_MEAN)),
        "std": tuple(float(v) for v in cfg.get("image_std", IMAGENET_STD)),
    }


class GroundingDinoDetector(Detector):
    def __init__(
        self,
        model,
        tokenizer,
        *,
        device: str,
        source: ModelSource | None = None,
        shortest_edge: int = 800,
        longest_edge: int | None = 1333,
        mean: tuple = IMAGENET_MEAN,
        std: tuple = IMAGENET_STD,
        batch_size: int | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.source = source
        self.shortest_edge, self.longest_edge = shortest_edge, longest_edge
        self.mean, self.std = tuple(mean), tuple(std)
        # Batches bound memory: 4 frames at 800x1333 fit a 16 GB GPU with the base model.
        self.batch_size = batch_size or (4 if device.startswith("cuda") else 2)
        cfg = model.config
        self.max_tokens = min(int(cfg.max_text_len), int(cfg.text_config.max_position_embeddings))
        self._prompts: dict[tuple[str, ...], tuple[Any, list[tuple[int, int]]]] = {}
        self._identity: dict[str, str] | None = None

    # -- Detector interface --------------------------------------------------------------

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            ident = {
                "backend": "grounding_dino",
                "role": "detector",
                "model_class": type(self.model).__name__,
                "device": self.device.split(":")[0],
                "dtype": compute_dtype_name(self.device),
                "impl": IMPL_VERSION,
                "image_size": f"{self.shortest_edge}/{self.longest_edge}",
                **library_versions(),
            }
            ident.update(self.source.weights_identity() if self.source else {"weights": "in-memory"})
            self._identity = {k: str(v) for k, v in ident.items()}
        return dict(self._identity)

    def supported_labels(self) -> frozenset[str] | None:
        return None  # open vocabulary

    def detect(
        self,
        frames: Sequence[np.ndarray],
        labels: Sequence[str],
        box_threshold: float,
        text_threshold: float,
    ) -> list[list[Detection]]:
        import torch

        names = _clean_labels(labels)
        input_ids, spans = self._prompt(names)
        results: list[list[Detection]] = [[] for _ in frames]
        # Frames of one plate share a size; grouping keeps mixed sizes correct anyway.
        by_shape: dict[tuple, list[int]] = {}
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"GroundingDINO: frame {i} is {frame.dtype} {frame.shape}, expected uint8 (H, W, 3)")
            by_shape.setdefault(frame.shape, []).append(i)
        for shape, indices in by_shape.items():
            height, width = shape[:2]
            for s in range(0, len(indices), self.batch_size):
                idx = indices[s : s + self.batch_size]
                with torch.inference_mode():
                    pixels = self._pixels(np.stack([np.asarray(frames[i]) for i in idx]))
                    batch = len(idx)
                    ids = input_ids.expand(batch, -1)
                    with autocast(self.device):
                        out = self.model(
                            pixel_values=pixels,
                            input_ids=ids,
                            attention_mask=torch.ones_like(ids),
                            token_type_ids=torch.zeros_like(ids),
                            pixel_mask=torch.ones(
                                (batch, *pixels.shape[-2:]), dtype=torch.long, device=self.device
                            ),
                        )
                    probs = out.logits.float().sigmoid()  # (B, queries, max_text_len)
                    per_label = torch.stack([probs[..., a:b].amax(-1) for a, b in spans], dim=-1)
                    score, label = per_label.max(-1)  # (B, queries)
                    boxes = _to_plate_boxes(out.pred_boxes.float(), width, height)
                    score, label, boxes = score.cpu().numpy(), label.cpu().numpy(), boxes.cpu().numpy()
                for j, i in enumerate(idx):
                    results[i] = _select(score[j], label[j], boxes[j], names, box_threshold, text_threshold)
        return results

    # -- helpers ---------------------------------------------------------------------------

    def _prompt(self, names: list[str]):
        """input_ids of `name1. name2. ...` with [CLS]/[SEP], and each name's token span."""
        import torch

        key = tuple(names)
        if key not in self._prompts:
            tok = self.tokenizer
            dot = tok.convert_tokens_to_ids(".")
            ids: list[int] = [tok.cls_token_id]
            spans: list[tuple[int, int]] = []
            for name in names:
                pieces = tok(name.lower(), add_special_tokens=False)["input_ids"]
                if not pieces:
                    raise BackendError(f"GroundingDINO cannot use the prompt label {name!r}: it has no text tokens")
                spans.append((len(ids), len(ids) + len(pieces)))
                ids += list(pieces) + [dot]
            ids.append(tok.sep_token_id)
            if len(ids) > self.max_tokens:
                raise BackendError(
                    f"GroundingDINO prompt {'. '.join(names)!r} is {len(ids)} tokens; the model takes at "
                    f"most {self.max_tokens}: use fewer or shorter labels"
                )
            self._prompts[key] = (torch.tensor([ids], dtype=torch.long, device=self.device), spans)
        return self._prompts[key]

    def _pixels(self, frames: np.ndarray):
        import torch
        import torch.nn.functional as F

        height, width = frames.shape[1:3]
        out_h, out_w = resized_shape(height, width, self.shortest_edge, self.longest_edge)
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if (out_h, out_w) != (height, width):
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std


def _clean_labels(labels: Sequence[str] | str) -> list[str]:
    if isinstance(labels, str):
        labels = labels.replace(".", ",").split(",")
    names: list[str] = []
    for label in labels:
        # "." separates labels in GroundingDINO prompts: keep it out of a label.
        name = " ".join(str(label).replace(".", " ").split())
        if name and name.lower() not in (n.lower() for n in names):
            names.append(name)
    if not names:
        raise BackendError("GroundingDINO needs at least one prompt label (e.g. prompt: person, car)")
    return names


def _to_plate_boxes(cxcywh, width: int, height: int):
    """Normalised (cx, cy, w, h) -> x0, y0, x1, y1 in plate pixels, clipped to the plate.
    Frames are never padded here, so normalised coordinates map straight to the plate."""
    import torch

    cx, cy, w, h = cxcywh.unbind(-1)
    boxes = torch.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], -1)
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return torch.minimum(boxes.clamp(min=0), limit)


def _select(score, label, boxes, names, box_threshold: float, text_threshold: float) -> list[Detection]:
    keep = (score > box_threshold) & (score > text_threshold)
    keep &= (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)  # no empty boxes
    queries = np.nonzero(keep)[0]
    # Descending score; ties by query index so the order is deterministic.
    order = queries[np.lexsort((queries, -score[queries]))]
    return [
        Detection(label=names[int(label[q])], score=float(score[q]), box=tuple(float(v) for v in boxes[q]))
        for q in order
    ]


def _load(src: ModelSource):
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection

    model_type = str(read_json(src.path / "config.json").get("model_type", ""))
    if model_type != "grounding-dino":
        raise BackendError(
            f"GroundingDINO weights {src.spec} are a {model_type or 'unknown'} model, not grounding-dino"
        )
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(src.path), local_files_only=True)
    except Exception as exc:
        raise BackendError(
            f"GroundingDINO weights {src.spec} have no usable tokenizer (vocab.txt / tokenizer.json): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return from_pretrained_strict(GroundingDinoForObjectDetection, src), tokenizer


def load_grounding_dino(source: str, device: str = "auto", *, batch_size: int | None = None) -> Detector:
    """`detector: grounding_dino` with `models: {grounding_dino: <folder | hub id>}`
    (e.g. IDEA-Research/grounding-dino-base). The model loads once per process and device."""
    dev = resolve_device(device)
    src = resolve_model_source("grounding_dino", source, download=True)

    def load():
        model, tokenizer = _load(src)
        return model.to(dev), tokenizer

    model, tokenizer = cached_model("grounding_dino", src, dev, load)
    prep = _preprocessing(src.path)
    return GroundingDinoDetector(
        model,
        tokenizer,
        device=dev,
        source=src,
        shortest_edge=prep["shortest_edge"],
        longest_edge=prep["longest_edge"],
        mean=prep["mean"],
        std=prep["std"],
        batch_size=batch_size,
    )
