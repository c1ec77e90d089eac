"""Benchmark the model backends at full size with random weights (no downloads).

Runs the real architectures, configs built in code to match the published checkpoints:
GroundingDINO-base / -tiny (Swin-B / Swin-T + BERT-base), SAM2.1 hiera-large / base+ /
small / tiny, EdgeTAM (RepViT-M1, needs timm) and SAM 3 (facebook/sam3: ViT-L/14 at 1008 px +
CLIP text encoder; detection and masks in one pass, and its video tracker), on a synthetic 1024-px plate of N
frames, through the same backend classes the pipeline uses (preprocessing, batching, bf16
autocast on GPU, windowed tracking sessions). Prints seconds per frame per stage and the
peak GPU memory of each stage.

    python benchmarks/models.py                          # GPU: base + large, 100 frames
    python benchmarks/models.py --detector all --sam2 all --tracker all
    python benchmarks/models.py --tiny --frames 20       # tiny configs on CPU (a smoke run)

Random weights give random boxes and masks; the work per frame is what a real run does
for `--objects` objects (top-scoring boxes are kept whatever their score). Tracking runs
windows of `--window` frames re-prompted every `--prompt-step` frames with the
segmentation masks (the forward pass of the pipeline's tracking driver; its backward pass
for late objects adds at most a similar amount again).

SAM 3's "detection" row includes its masks (no segmentation stage); its tracking row
tracks those masks. Peak GPU memory of a tracking row is the peak of one window (each
window's session is closed before the next opens).

Reference (the paper's pipeline on an RTX A4000, 100 frames, ~600 s): detection 0.7 s,
segmentation 3.5 s, tracking 2.5 s per frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: `resources`, `tests` importable
    sys.path.insert(0, str(ROOT))

REFERENCE_A4000 = {"detection": 0.7, "segmentation": 3.5, "tracking": 2.5}
LABELS = ["person", "car"]


# ---------------------------------------------------------------------------------------
# Architectures


def grounding_dino_config(variant: str):
    """IDEA-Research/grounding-dino-{tiny,base}: Swin-T/B backbone, BERT-base text encoder,
    6+6 deformable layers, 900 queries (GroundingDinoConfig's defaults are the tiny model)."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if variant == "tiny":
        swin = SwinConfig(
            image_size=224, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
            out_indices=[2, 3, 4],
        )
    elif variant == "base":
        swin = SwinConfig(
            image_size=384, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12,
            out_indices=[2, 3, 4],
        )
    else:
        raise ValueError(variant)
    return GroundingDinoConfig(backbone_config=swin, text_config=BertConfig())


def edgetam_config():
    """EdgeTAM as published (yonigozlan/EdgeTAM-hf): RepViT-M1 from timm, 2-layer memory
    attention, perceiver resampler. The architecture is named explicitly: transformers'
    default misspells the key and would build a ResNet-50."""
    from transformers import EdgeTamVideoConfig, EdgeTamVisionConfig, TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    return EdgeTamVideoConfig(vision_config=EdgeTamVisionConfig(backbone_config=backbone))


def sam3_config():
    """facebook/sam3 as published: Sam3VideoConfig's defaults (ViT-L/14 at 1008 px, 32
    layers; CLIP text encoder 24 x 1024; DETR 6 + 6 layers, 200 queries; SAM2-style tracker)."""
    from transformers import Sam3VideoConfig

    return Sam3VideoConfig()


def bert_tokenizer(folder: Path):
    """A BERT-base-sized vocabulary holding the prompt words, with [CLS]/[SEP]/"." at the ids
    GroundingDINO expects (the real vocabulary cannot be downloaded here)."""
    from transformers import BertTokenizer

    from tests.model_fixtures import tiny_vocab

    vocab = tiny_vocab(words=[w.lower() for w in LABELS], size=30522 - len(LABELS))
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(path), do_lower_case=True), len(vocab)


def build(model_cls, config, device: str):
    import torch

    torch.manual_seed(0)
    with torch.device(device):  # initialise in place: no CPU copy of a large model
        model = model_cls(config)
    return model.eval()


# ---------------------------------------------------------------------------------------
# Backends


def make_detector(variant: str, device: str, tiny: bool, tmp: Path, batch_size: int | None):
    from transformers import BertTokenizer, GroundingDinoForObjectDetection

    from resources.grounding_dino import GroundingDinoDetector

    if tiny:
        from tests.model_fixtures import tiny_grounding_dino_config, tiny_vocab

        vocab = tiny_vocab()
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
        tokenizer = BertTokenizer(str(tmp / "vocab.txt"), do_lower_case=True)
        model = build(GroundingDinoForObjectDetection, tiny_grounding_dino_config(len(vocab)), device)
        size = dict(shortest_edge=48, longest_edge=80)
        name = "grounding-dino (tiny test config)"
    else:
        tokenizer, vocab_size = bert_tokenizer(tmp)
        config = grounding_dino_config(variant)
        config.text_config.vocab_size = vocab_size
        model = build(GroundingDinoForObjectDetection, config, device)
        size = dict(shortest_edge=800, longest_edge=1333)
        name = f"grounding-dino-{variant}"
    detector = GroundingDinoDetector(model, tokenizer, device=device, batch_size=batch_size, **size)
    return name, detector, model


def make_sam2(variant: str, device: str, tiny: bool):
    from transformers import Sam2Model, Sam2VideoInferenceSession, Sam2VideoModel

    from resources.sam2 import Sam2Segmenter, VideoTracker
    from resources.sam2_checkpoint import image_config_from_video, preset_config

    if tiny:
        from tests.model_fixtures import tiny_sam2_video_config

        config, name = tiny_sam2_video_config(), "sam2 (tiny test config)"
    else:
        config, name = preset_config(variant, sam2_1=True), f"sam2.1-hiera-{variant.replace('_', '-')}"
    image_model = build(Sam2Model, image_config_from_video(config), device)
    video_model = build(Sam2VideoModel, config, device)
    segmenter = Sam2Segmenter(image_model, device=device)
    tracker = VideoTracker(video_model, Sam2VideoInferenceSession, backend="sam2", device=device)
    return name, segmenter, tracker, (image_model, video_model)


def make_edgetam(device: str, tiny: bool, tmp: Path):
    from transformers import EdgeTamVideoInferenceSession

    from resources.sam2 import VideoTracker, _edgetam_model_class, require_edgetam

    require_edgetam()
    if tiny:
        from tests.model_fixtures import write_tiny_edgetam

        folder = write_tiny_edgetam(tmp / "edgetam")
        model = _edgetam_model_class().from_pretrained(str(folder)).to(device).eval()
        name = "edgetam (tiny test config)"
    else:
        model, name = build(_edgetam_model_class(), edgetam_config(), device), "edgetam"
    return name, VideoTracker(model, EdgeTamVideoInferenceSession, backend="edgetam", device=device), model


def make_sam3(device: str, tiny: bool):
    """The SAM 3 detector (Sam3Model) and tracker (Sam3TrackerVideoModel) as the pipeline
    runs them: two models, each with its own copy of the ViT (as `detector: sam3` and
    `tracker: sam3` load them from one checkpoint). The tokenizer is the tests' tiny CLIP
    BPE: prompt ids only have to exist in the full 49408-word embedding."""
    from transformers import Sam3Model, Sam3TrackerVideoInferenceSession, Sam3TrackerVideoModel

    from resources.sam2 import VideoTracker
    from resources.sam3 import Sam3Detector
    from tests.model_fixtures import tiny_clip_tokenizer, tiny_sam3_video_config

    tokenizer = tiny_clip_tokenizer(tuple(LABELS))
    if tiny:
        config, name = tiny_sam3_video_config(len(tokenizer)), "sam3 (tiny test config)"
    else:
        config, name = sam3_config(), "sam3"
    detector_model = build(Sam3Model, config.detector_config, device)
    tracker_model = build(Sam3TrackerVideoModel, config.tracker_config, device)
    detector = Sam3Detector(detector_model, tokenizer, device=device)
    tracker = VideoTracker(tracker_model, Sam3TrackerVideoInferenceSession, backend="sam3", device=device)
    return name, detector, tracker, (detector_model, tracker_model)


# ---------------------------------------------------------------------------------------
# The plate and the stages


def synthetic_plate(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured background with a few textured shapes moving across it (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = (
        96 + 40 * np.sin(xx[..., None] / 23.0 + np.array([0, 1, 2])) * np.cos(yy[..., None] / 17.0)
        + rng.normal(0, 6, (height, width, 3))
    )
    shapes = [
        (rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height, rng.uniform(-4, 4), rng.uniform(-3, 3),
         rng.uniform(0.06, 0.15) * height, rng.integers(0, 255, 3))
        for _ in range(5)
    ]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for t in range(n):
        f = background.copy()
        for x, y, vx, vy, r, colour in shapes:
            inside = (xx - (x + vx * t)) ** 2 + (yy - (y + vy * t)) ** 2 < r * r
            f[inside] = colour + 20 * np.sin(xx[inside, None] / 3.0)
        frames[t] = np.clip(f, 0, 255)
    return frames


class Stage:
    """Wall time (GPU synchronised) and peak GPU memory of one stage."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_gib = torch.cuda.max_memory_allocated() / 2**30
        else:
            self.peak_gib = float("nan")
        self.seconds = time.perf_counter() - self.t0


def fallback_boxes(k: int, height: int, width: int) -> np.ndarray:
    """Fixed boxes to top up frames where random weights leave fewer than k boxes."""
    rng = np.random.default_rng(1)
    x0 = rng.uniform(0, 0.7, k) * width
    y0 = rng.uniform(0, 0.7, k) * height
    return np.stack([x0, y0, x0 + 0.25 * width, y0 + 0.25 * height], 1).astype(np.float32)


def run_detection(detector, frames, k):
    results = detector.detect(list(frames), LABELS, 0.0, 0.0)
    height, width = frames.shape[1:3]
    boxes = []
    for dets in results:
        b = np.array([d.box for d in dets[:k]], dtype=np.float32).reshape(-1, 4)
        if len(b) < k:
            b = np.concatenate([b, fallback_boxes(k, height, width)[: k - len(b)]])
        boxes.append(b)
    return boxes


def run_sam3_detection(detector, frames, k, keep_every: int):
    """Boxes and masks in one pass; the top k masks of prompt frames are kept for tracking
    (topped up with box masks where random weights leave fewer)."""
    height, width = frames.shape[1:3]
    kept = {}
    for t, frame in enumerate(frames):
        dets = detector.detect([frame], LABELS, 0.0, 0.0)[0][:k]
        if t % keep_every == 0 or t == len(frames) - 1:
            masks = [d.mask for d in dets]
            for x0, y0, x1, y1 in fallback_boxes(k, height, width)[: k - len(masks)]:
                m = np.zeros((height, width), bool)
                m[int(y0) : int(y1), int(x0) : int(x1)] = True
                masks.append(m)
            kept[t] = np.stack(masks)
    return kept


def run_segmentation(segmenter, frames, boxes, keep_every: int):
    kept = {}
    for t, frame in enumerate(frames):
        masks, _ = segmenter.segment(frame, boxes[t])
        if t % keep_every == 0 or t == len(frames) - 1:
            kept[t] = masks  # only prompt frames are needed later: memory stays bounded
    return kept


def run_tracking(tracker, frames, masks, window: int, step: int):
    """Windows overlapping by their seed frame, re-prompted at global frames % step == 0
    with the segmentation masks, the way the pipeline's driver calls a TrackerSession."""
    n = len(frames)
    seeds = dict(enumerate(masks[0]))
    start = 0
    while True:
        stop = min(start + window, n)
        session = tracker.open_session(frames[start:stop])
        for obj, m in seeds.items():
            session.add_mask(0, obj, m)
        local_last = stop - 1 - start
        prompts = [g - start for g in range(start + 1, stop - 1) if g % step == 0 and g in masks]
        pos, last = 0, {}
        for p in prompts + [local_last]:
            out = session.propagate(pos, p + 1)
            pos, last = p + 1, out[p]
            if p in prompts:
                for obj, m in enumerate(masks[start + p]):
                    session.add_mask(p, obj, m)
        session.close()
        seeds = {obj: m for obj, m in last.items() if m.any()} or dict(enumerate(masks[0]))
        if stop >= n:
            return
        start = stop - 1


# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024, help="longest side of the 16:9 plate")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="tiny test configs on CPU")
    ap.add_argument("--detector", default="base", choices=["base", "tiny", "all", "none"])
    ap.add_argument("--sam2", default="large", choices=["large", "base_plus", "small", "tiny", "all", "none"])
    ap.add_argument("--tracker", default="sam2", choices=["sam2", "edgetam", "all", "none"])
    ap.add_argument("--sam3", default="sam3", choices=["sam3", "none"], help="SAM 3 detection + tracking")
    ap.add_argument("--objects", type=int, default=5, help="objects segmented and tracked per frame")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--prompt-step", type=int, default=5)
    ap.add_argument("--det-batch", type=int, default=None, help="GroundingDINO frames per batch")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch
    import transformers

    from matte_assets.errors import BackendError
    from resources.model_loading import resolve_device

    device = "cpu" if args.tiny else resolve_device(args.device)
    if args.tiny:
        detectors, sam2s = ["tiny"], ["tiny"]
    else:
        detectors = {"all": ["base", "tiny"], "none": []}.get(args.detector, [args.detector])
        sam2s = {"all": ["large", "base_plus", "small", "tiny"], "none": []}.get(args.sam2, [args.sam2])
    trackers = {"all": ["sam2", "edgetam"], "none": []}.get(args.tracker, [args.tracker])
    width, height = args.size, round(args.size * 9 / 16)
    gpu = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(
        f"device {device} ({gpu}), torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{'bf16 autocast' if device.startswith('cuda') else 'float32'}"
    )
    print(f"plate {args.frames} frames of {width}x{height}, {args.objects} objects, window {args.window}, "
          f"prompt step {args.prompt_step}{', tiny configs' if args.tiny else ''}")
    frames = synthetic_plate(args.frames, height, width)
    rows: list[dict] = []

    def report(stage: str, name: str, params: float, st: Stage) -> None:
        row = {"stage": stage, "model": name, "params_m": round(params, 1), "s_per_frame": st.seconds / len(frames),
               "total_s": st.seconds, "peak_gpu_gib": st.peak_gib}
        rows.append(row)
        print(f"  {stage:<13} {name:<34} {row['s_per_frame']:8.3f} s/frame {st.seconds:9.1f} s "
              f"peak {'-' if st.peak_gib != st.peak_gib else f'{st.peak_gib:6.2f} GiB'}", flush=True)

    def n_params(*models) -> float:
        return sum(p.numel() for m in models for p in m.parameters()) / 1e6

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        boxes = None
        for variant in detectors:
            name, detector, model = make_detector(variant, device, args.tiny, tmp, args.det_batch)
            detector.detect(list(frames[:2]), LABELS, 0.0, 0.0)  # warm-up (kernels, allocator), untimed
            with Stage(device) as st:
                boxes = run_detection(detector, frames, args.objects)
            report("detection", name, n_params(model), st)
            del detector, model
            torch.cuda.empty_cache() if device.startswith("cuda") else None
        if boxes is None:
            boxes = [fallback_boxes(args.objects, height, width)] * len(frames)
        masks = None
        for variant in sam2s:
            name, segmenter, tracker, models = make_sam2(variant, device, args.tiny)
            warm = {t: segmenter.segment(frames[t], boxes[t])[0] for t in range(min(2, len(frames)))}  # untimed
            run_tracking(tracker, frames[:2], warm, 2, 1)
            with Stage(device) as st:
                masks = run_segmentation(segmenter, frames, boxes, args.prompt_step)
            report("segmentation", name, n_params(models[0]), st)
            if "sam2" in trackers:
                with Stage(device) as st:
                    run_tracking(tracker, frames, masks, args.window, args.prompt_step)
                report("tracking", name, n_params(models[1]), st)
            del segmenter, tracker, models
            torch.cuda.empty_cache() if device.startswith("cuda") else None
        if "edgetam" in trackers:
            if masks is None:
                masks = {t: np.stack([np.zeros((height, width), bool)] * args.objects) for t in range(len(frames))}
            try:
                name, tracker, model = make_edgetam(device, args.tiny, tmp)
            except BackendError as exc:
                print(f"  tracking      edgetam skipped: {exc}")
            else:
                run_tracking(tracker, frames[:2], {0: masks[0], 1: masks[0]}, 2, 1)  # warm-up, untimed
                with Stage(device) as st:
                    run_tracking(tracker, frames, masks, args.window, args.prompt_step)
                report("tracking", name, n_params(model), st)
        if args.sam3 == "sam3":
            name, detector, tracker, models = make_sam3(device, args.tiny)
            warm = run_sam3_detection(detector, frames[:2], args.objects, 1)  # warm-up, untimed
            run_tracking(tracker, frames[:2], warm, 2, 1)
            with Stage(device) as st:
                sam3_masks = run_sam3_detection(detector, frames, args.objects, args.prompt_step)
            report("detection", f"{name} (+ masks)", n_params(models[0]), st)
            with Stage(device) as st:
                run_tracking(tracker, frames, sam3_masks, args.window, args.prompt_step)
            report("tracking", name, n_params(models[1]), st)
            del detector, tracker, models
            torch.cuda.empty_cache() if device.startswith("cuda") else None

    per_stage: dict[str, float] = {}
    for row in rows:  # the first model listed for each stage makes the "pipeline" total
        per_stage.setdefault(row["stage"], row["s_per_frame"])
    total = sum(per_stage.values())
    print(f"  pipeline      {' + '.join(per_stage):<34} {total:8.3f} s/frame {total * len(frames):9.1f} s")
    ref = sum(REFERENCE_A4000.values())
    print(f"  reference (RTX A4000): detection {REFERENCE_A4000['detection']}, segmentation "
          f"{REFERENCE_A4000['segmentation']}, tracking {REFERENCE_A4000['tracking']} s/frame "
          f"= {ref:.1f} s/frame (~{ref * 100:.0f} s per 100 frames)")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "gpu": gpu, "frames": len(frames), "width": width,
                                         "height": height, "tiny": args.tiny, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
