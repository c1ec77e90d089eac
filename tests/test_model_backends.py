"""Model backends (GroundingDINO, SAM2, EdgeTAM) on tiny random models, loaded exactly the way
a user's `models:` folder, hub id or original `.pt` is loaded. No weights are downloaded."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from matte_assets.errors import BackendError  # noqa: E402
from resources import model_loading  # noqa: E402
from resources.backends import Detector, PointPrompt, Segmenter, Tracker  # noqa: E402
from resources.grounding_dino import load_grounding_dino, resized_shape  # noqa: E402
from resources.model_loading import check_model_source, resolve_device  # noqa: E402
from resources.sam2 import (  # noqa: E402
    clear_pixel_cache,
    load_edgetam_tracker,
    load_sam2_segmenter,
    load_sam2_tracker,
)
from tests.model_fixtures import (  # noqa: E402
    box_mask,
    hf_to_original_sam2,
    moving_frames,
    tiny_sam2_video_model,
    write_tiny_edgetam,
    write_tiny_grounding_dino,
    write_tiny_original_checkpoint,
    write_tiny_sam2,
)

H, W = 48, 80
BOXES = np.array([[6, 10, 22, 26], [50, 6, 66, 22], [30, 20, 60, 44]], dtype=np.float32)


@pytest.fixture(scope="module", autouse=True)
def _hash_cache_dir(tmp_path_factory):
    """Weight hashes go to a temp cache, never the user's ~/.cache."""
    old = os.environ.get("MATTE_CACHE_DIR")
    os.environ["MATTE_CACHE_DIR"] = str(tmp_path_factory.mktemp("matte-cache"))
    yield
    if old is None:
        os.environ.pop("MATTE_CACHE_DIR", None)
    else:
        os.environ["MATTE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "gd": write_tiny_grounding_dino(root / "grounding-dino-tiny"),
        "sam2": write_tiny_sam2(root / "sam2-tiny"),
        "sam2_image": write_tiny_sam2(root / "sam2-image-only", image_only=True),
    }


@pytest.fixture(scope="module")
def frames():
    return moving_frames(6, H, W)


def track(tracker, frames, masks):
    """The driver's call pattern: seed at 0, propagate to a prompt frame, re-prompt one
    object and start another there, continue from the next frame."""
    s = tracker.open_session(frames)
    s.add_mask(0, 1, masks[0])
    s.add_mask(0, 2, masks[1])
    first = s.propagate(0, 3)
    s.add_mask(2, 1, masks[1])  # re-prompt object 1 at frame 2
    s.add_mask(2, 7, masks[2])  # a new object starts at frame 2
    second = s.propagate(3, len(frames))
    s.close()
    return first, second


# ---------------------------------------------------------------------------------------
# Sources, devices, identities


def test_device_choice():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(BackendError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            resolve_device("cuda")


def test_check_model_source_fails_fast_naming_model_and_path(tmp_path, models, monkeypatch):
    check_model_source("grounding_dino", str(models["gd"]))
    check_model_source("sam2", str(models["sam2"]))
    missing = tmp_path / "no-such-folder"
    with pytest.raises(BackendError, match=f"GroundingDINO weights not found: {missing}"):
        check_model_source("grounding_dino", str(missing))
    with pytest.raises(BackendError, match=r"SAM2 .*sam2\.1_hiera_large\.pt"):
        check_model_source("sam2", str(tmp_path / "sam2.1_hiera_large.pt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match=r"SAM2 weights folder .*empty.* has no config\.json"):
        check_model_source("sam2", str(empty))
    (empty / "config.json").write_text("{}")
    with pytest.raises(BackendError, match="no weight files"):
        check_model_source("sam2", str(empty))
    with pytest.raises(BackendError, match="only SAM2 accepts"):
        check_model_source("grounding_dino", str(models["sam2"] / "model.safetensors"))
    # A hub id that is not cached, offline: fails at once, saying what to download.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(BackendError) as err:
        check_model_source("grounding_dino", "IDEA-Research/grounding-dino-base")
    message = str(err.value)
    assert "GroundingDINO" in message and "IDEA-Research/grounding-dino-base" in message
    assert "hf download IDEA-Research/grounding-dino-base" in message
    with pytest.raises(BackendError, match="unknown model kind"):
        check_model_source("yolo", "x")


def _fake_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = "a" * 40) -> None:
    """The layout huggingface_hub leaves after a download: refs/main -> snapshots/<commit>."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


def test_hub_id_from_local_cache_offline(tmp_path, models, monkeypatch):
    cache = tmp_path / "hf-cache"
    _fake_hub_cache(cache, "tiny-org/grounding-dino-tiny", models["gd"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    check_model_source("grounding_dino", "tiny-org/grounding-dino-tiny")
    detector = load_grounding_dino("tiny-org/grounding-dino-tiny", "cpu")
    ident = detector.identity()
    assert ident["weights"] == "hf:tiny-org/grounding-dino-tiny@" + "a" * 40
    # Same weights as the folder: same detections.
    frame = moving_frames(1, H, W)
    from_folder = load_grounding_dino(str(models["gd"]), "cpu")
    assert detector.detect(frame, ["car"], 0.2, 0.2) == from_folder.detect(frame, ["car"], 0.2, 0.2)


def test_weight_hash_cached_by_path_size_mtime(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x" * 1000)
    first = model_loading.file_sha256(f)
    stat = f.stat()
    model_loading._hash_memo.clear()  # a new process: only the on-disk cache remains
    f.write_bytes(b"y" * 1000)  # same size, mtime restored: the cached hash is trusted
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_loading.file_sha256(f) == first
    cache = json.loads(model_loading._hash_cache_file().read_text())
    assert any(k.startswith(str(f.resolve()) + "|1000|") for k in cache)
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: re-hashed
    assert model_loading.file_sha256(f) != first


# ---------------------------------------------------------------------------------------
# GroundingDINO


def test_grounding_dino_resize_rule():
    assert resized_shape(480, 640, 800, 1333) == (800, 1066)
    assert resized_shape(576, 1024, 800, 1333) == (750, 1333)  # long edge capped
    assert resized_shape(1024, 576, 800, 1333) == (1333, 750)


def test_grounding_dino_detects_labels_in_plate_pixels(models, frames):
    detector = load_grounding_dino(str(models["gd"]), "cpu")
    assert isinstance(detector, Detector) and detector.supported_labels() is None
    assert load_grounding_dino(str(models["gd"]), "cpu").model is detector.model  # loaded once
    labels = ["person", "car"]
    batch = detector.detect(list(frames[:3]), labels, 0.0, 0.0)
    assert len(batch) == 3
    for dets in batch:
        assert dets, "thresholds of 0 keep every non-empty box"
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            assert d.label in labels
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    # Frame mapping and batching: each frame's result does not depend on its batch
    # (up to float rounding of batched matmuls).
    for i in range(3):
        assert_close_detections(detector.detect([frames[i]], labels, 0.0, 0.0)[0], batch[i])
    # Deterministic.
    assert detector.detect(list(frames[:3]), labels, 0.0, 0.0) == batch
    # Thresholds only filter.
    strict = detector.detect(list(frames[:3]), labels, 0.6, 0.7)
    for loose, kept in zip(batch, strict):
        assert kept == [d for d in loose if d.score > 0.7]
    assert detector.detect([frames[0]], labels, 1.0, 0.0) == [[]]
    # One prompt string works the same as a list.
    assert_close_detections(detector.detect([frames[0]], "person, car", 0.0, 0.0)[0], batch[0])


def assert_close_detections(a, b, atol=1e-4):
    assert [d.label for d in a] == [d.label for d in b]
    np.testing.assert_allclose([d.score for d in a], [d.score for d in b], atol=atol)
    np.testing.assert_allclose([d.box for d in a], [d.box for d in b], atol=atol)


def test_grounding_dino_labels_and_boxes_match_raw_outputs(models, frames):
    """One label per box = the label whose tokens score highest; boxes are the model's
    normalised (cx, cy, w, h) scaled to the plate."""
    detector = load_grounding_dino(str(models["gd"]), "cpu")
    labels = ["person", "red car"]
    dets = detector.detect([frames[1]], labels, 0.0, 0.0)[0]
    ids, spans = detector._prompt(labels)
    tok = detector.tokenizer
    assert tok.convert_ids_to_tokens(ids[0].tolist()) == ["[CLS]", "person", ".", "red", "car", ".", "[SEP]"]
    assert spans == [(1, 2), (3, 5)]
    with torch.inference_mode():
        out = detector.model(pixel_values=detector._pixels(frames[1:2]), input_ids=ids)
    probs = out.logits[0].sigmoid()
    per_label = torch.stack([probs[:, a:b].max(-1).values for a, b in spans], -1)
    cx, cy, bw, bh = out.pred_boxes[0].unbind(-1)
    expected = {}
    for q in range(per_label.shape[0]):
        box = [
            max(0.0, float((cx[q] - bw[q] / 2) * W)),
            max(0.0, float((cy[q] - bh[q] / 2) * H)),
            min(float(W), float((cx[q] + bw[q] / 2) * W)),
            min(float(H), float((cy[q] + bh[q] / 2) * H)),
        ]
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
            expected[round(float(per_label[q].max()), 5)] = (labels[int(per_label[q].argmax())], box)
    assert len(dets) == len(expected)
    for d in dets:
        label, box = expected[round(d.score, 5)]
        assert d.label == label
        np.testing.assert_allclose(d.box, box, atol=1e-3)


def test_grounding_dino_rejects_empty_prompt(models):
    detector = load_grounding_dino(str(models["gd"]), "cpu")
    with pytest.raises(BackendError, match="at least one prompt label"):
        detector.detect([np.zeros((H, W, 3), np.uint8)], [" ", "."], 0.3, 0.3)


# ---------------------------------------------------------------------------------------
# SAM2 segmenter


def test_sam2_segmenter_boxes_masks_quality(models, frames):
    seg = load_sam2_segmenter(str(models["sam2"]), "cpu")
    assert isinstance(seg, Segmenter)
    masks, quality = seg.segment(frames[0], BOXES)
    assert masks.shape == (3, H, W) and masks.dtype == bool
    assert quality.shape == (3,) and quality.dtype == np.float32
    assert np.all((quality >= 0) & (quality <= 1))
    # Deterministic, and box order maps to mask order.
    again, q_again = seg.segment(frames[0], BOXES)
    assert np.array_equal(again, masks) and np.array_equal(q_again, quality)
    rev, q_rev = seg.segment(frames[0], BOXES[::-1].copy())
    assert np.mean(rev[::-1] != masks) < 0.01
    np.testing.assert_allclose(q_rev[::-1], quality, atol=1e-4)
    # No boxes: empty arrays of the right shapes.
    m0, q0 = seg.segment(frames[0], np.zeros((0, 4), np.float32))
    assert m0.shape == (0, H, W) and q0.shape == (0,)


def test_sam2_segmenter_clicks_refine_only_their_box(models, frames):
    seg = load_sam2_segmenter(str(models["sam2"]), "cpu")
    plain, q_plain = seg.segment(frames[0], BOXES)
    clicks = [[], [PointPrompt(58, 14), PointPrompt(40, 30, positive=False)], []]
    clicked, q_clicked = seg.segment(frames[0], BOXES, points=clicks)
    assert np.array_equal(clicked[[0, 2]], plain[[0, 2]])
    assert np.array_equal(q_clicked[[0, 2]], q_plain[[0, 2]])
    assert not np.array_equal(clicked[1], plain[1]) or q_clicked[1] != q_plain[1]
    with pytest.raises(ValueError, match="click lists"):
        seg.segment(frames[0], BOXES, points=[[]])


def test_sam2_image_only_folder_serves_segmenter_not_tracker(models, frames):
    seg = load_sam2_segmenter(str(models["sam2_image"]), "cpu")
    assert seg.segment(frames[0], BOXES)[0].shape == (3, H, W)
    with pytest.raises(BackendError, match="only the image model"):
        load_sam2_tracker(str(models["sam2_image"]), "cpu")
    with pytest.raises(BackendError, match="grounding-dino model, not SAM2"):
        load_sam2_segmenter(str(models["gd"]), "cpu")


# ---------------------------------------------------------------------------------------
# SAM2 video tracker


def test_sam2_tracker_session_contract(models, frames):
    tracker = load_sam2_tracker(str(models["sam2"]), "cpu")
    assert isinstance(tracker, Tracker)
    masks = [box_mask(H, W, b) for b in BOXES]
    first, second = track(tracker, frames, masks)
    assert list(first) == [0, 1, 2] and list(second) == [3, 4, 5]
    assert all(list(first[f]) == [1, 2] for f in first)  # object 7 starts at frame 2
    assert all(list(second[f]) == [1, 2, 7] for f in second)
    for result in (first, second):
        for objs in result.values():
            for m in objs.values():
                assert m.shape == (H, W) and m.dtype == bool
    # At its prompt frame an object's mask is the prompt.
    assert np.array_equal(first[0][1], masks[0]) and np.array_equal(first[0][2], masks[1])
    # Deterministic for the same inputs.
    again = track(tracker, frames, masks)
    for a, b in zip((first, second), again):
        assert a.keys() == b.keys()
        for f in a:
            assert all(np.array_equal(a[f][o], b[f][o]) for o in a[f])


def test_sam2_tracker_overlapping_ranges_and_errors(models, frames):
    tracker = load_sam2_tracker(str(models["sam2"]), "cpu")
    masks = [box_mask(H, W, b) for b in BOXES]
    _, reference = track(tracker, frames, masks)
    s = tracker.open_session(frames)
    with pytest.raises(ValueError, match="only at frame 0"):
        s.add_mask(1, 1, masks[0])
    s.add_mask(0, 1, masks[0])
    s.add_mask(0, 2, masks[1])
    s.propagate(0, 3)
    with pytest.raises(ValueError, match=r"previous propagate returned \(2\)"):
        s.add_mask(1, 1, masks[0])
    with pytest.raises(ValueError, match="mask shape"):
        s.add_mask(2, 1, masks[0][:10])
    s.add_mask(2, 1, masks[1])
    s.add_mask(2, 7, masks[2])
    # Starting at the prompt frame returns it too (the prompts there), then the same frames.
    out = s.propagate(2, 6)
    assert list(out) == [2, 3, 4, 5]
    assert np.array_equal(out[2][1], masks[1]) and np.array_equal(out[2][7], masks[2])
    for f in (3, 4, 5):
        assert all(np.array_equal(out[f][o], reference[f][o]) for o in (1, 2, 7))
    with pytest.raises(ValueError, match="only go forward"):
        s.propagate(1, 4)
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.propagate(5, 6)


def test_segmenter_and_tracker_share_preprocessed_frames(models, frames):
    from resources import sam2 as sam2_module

    clear_pixel_cache()
    seg = load_sam2_segmenter(str(models["sam2"]), "cpu")
    seg.segment(frames[0], BOXES[:1])
    assert len(sam2_module._pixel_cache) == 1
    session = load_sam2_tracker(str(models["sam2"]), "cpu").open_session(frames[:4])
    assert len(sam2_module._pixel_cache) == 4  # frame 0 reused, three new
    session.close()


def test_sam2_identity(models):
    seg = load_sam2_segmenter(str(models["sam2"]), "cpu")
    trk = load_sam2_tracker(str(models["sam2"]), "cpu")
    a, b = seg.identity(), trk.identity()
    assert a["weights"] == b["weights"] == "sha256:" + model_loading.folder_sha256(models["sam2"])
    assert (a["model_class"], b["model_class"]) == ("Sam2Model", "Sam2VideoModel")
    assert a["device"] == "cpu" and a["dtype"] == "float32"
    assert all(isinstance(v, str) for v in {**a, **b}.values())


# ---------------------------------------------------------------------------------------
# Meta's original SAM2 checkpoints


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_original_checkpoint_converts_to_identical_weights(tmp_path, models, frames, suffix):
    ckpt = tmp_path / f"tiny_sam2{suffix}"
    reference = write_tiny_original_checkpoint(ckpt)
    tracker = load_sam2_tracker(str(ckpt), "cpu")
    expected, loaded = reference.state_dict(), tracker.model.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    assert tracker.identity()["weights"] == "sha256:" + model_loading.file_sha256(ckpt)
    assert tracker.identity()["weights_format"] == ("original-pt" if suffix == ".pt" else "safetensors")
    # The segmenter takes its half of the same file, and matches the HF folder's results
    # (the folder holds the same seed's weights).
    seg_pt = load_sam2_segmenter(str(ckpt), "cpu")
    seg_dir = load_sam2_segmenter(str(models["sam2"]), "cpu")
    a, qa = seg_pt.segment(frames[0], BOXES)
    b, qb = seg_dir.segment(frames[0], BOXES)
    assert np.array_equal(a, b) and np.array_equal(qa, qb)


def test_original_checkpoint_rejects_mismatch_and_code(tmp_path):
    ckpt = tmp_path / "broken_sam2.pt"
    write_tiny_original_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["model"]
    del state["sam_mask_decoder.iou_token.weight"]
    torch.save({"model": state}, ckpt)
    with pytest.raises(BackendError, match=r"broken_sam2\.pt does not fit Sam2VideoModel: missing mask_decoder\.iou_token"):
        load_sam2_tracker(str(ckpt), "cpu")
    # Pickled objects other than tensors are refused (weights_only=True).
    evil = tmp_path / "evil_sam2.pt"
    torch.save({"model": {"x": object()}}, evil)
    with pytest.raises(BackendError, match="cannot be read"):
        load_sam2_tracker(str(evil), "cpu")


@pytest.mark.parametrize("preset", ["tiny", "small", "base_plus", "large"])
def test_original_key_mapping_covers_published_sizes(preset):
    """Full-size architectures on the meta device (no memory): every original tensor maps
    onto exactly the transformers tensors, and the size is recognised from the file name
    or, failing that, from the tensor shapes."""
    from transformers import Sam2VideoModel

    from resources.sam2_checkpoint import (
        convert_state_dict,
        detect_preset,
        preset_config,
    )

    with torch.device("meta"):
        model = Sam2VideoModel(preset_config(preset))
    hf = model.state_dict()
    original = hf_to_original_sam2(hf)
    converted = convert_state_dict(original)
    assert converted.keys() == hf.keys()
    assert all(converted[k].shape == hf[k].shape for k in hf)
    alias = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}[preset]
    assert detect_preset(Path(f"sam2.1_hiera_{preset}.pt"), original) == preset
    assert detect_preset(Path(f"sam2_hiera_{alias}.pt"), original) == preset
    assert detect_preset(Path("weights.pt"), original) == preset
    published = {"tiny": 38.9, "small": 46.0, "base_plus": 80.8, "large": 224.4}[preset]
    assert abs(sum(v.numel() for v in hf.values()) / 1e6 - published) < 0.2


def test_original_layout_names():
    """Spot-check the test's inverse mapping against names in Meta's checkpoints."""
    original = hf_to_original_sam2(tiny_sam2_video_model().state_dict())
    for key in [
        "image_encoder.trunk.pos_embed",
        "image_encoder.trunk.blocks.0.mlp.layers.1.weight",
        "image_encoder.neck.convs.3.conv.weight",
        "sam_prompt_encoder.point_embeddings.3.weight",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "sam_mask_decoder.output_upscaling.1.weight",
        "sam_mask_decoder.iou_prediction_head.layers.2.bias",
        "memory_attention.layers.0.cross_attn_image.out_proj.weight",
        "memory_encoder.mask_downsampler.encoder.12.weight",
        "memory_encoder.fuser.layers.0.gamma",
        "memory_encoder.out_proj.weight",
        "obj_ptr_proj.layers.2.weight",
        "obj_ptr_tpos_proj.weight",
        "maskmem_tpos_enc",
        "no_obj_embed_spatial",
    ]:
        assert key in original, key


# ---------------------------------------------------------------------------------------
# EdgeTAM (optional: timm, which imports torchvision)


def _timm_importable() -> bool:
    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import timm  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(_timm_importable(), reason="timm is installed: the install hint is not shown")
def test_edgetam_without_timm_says_what_to_install(models):
    with pytest.raises(BackendError, match=r"pip install 'matte-pipeline\[edgetam\]'"):
        load_edgetam_tracker(str(models["sam2"]), "cpu")
    with pytest.raises(BackendError, match=r"models: edgetam: .*sam2-tiny"):
        check_model_source("edgetam", str(models["sam2"]))


def test_edgetam_broken_timm_import_is_a_clear_error(monkeypatch, models):
    """timm present but failing to import (e.g. no or mismatched torchvision)."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in ("timm", "torchvision") else real_find_spec(name, *a),
    )
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(BackendError, match=r"pip install 'matte-pipeline\[edgetam\]'.*importing timm failed"):
        load_edgetam_tracker(str(models["sam2"]), "cpu")
    # SAM2 is unaffected by a broken timm.
    assert load_sam2_tracker(str(models["sam2"]), "cpu") is not None


@pytest.mark.skipif(
    not _timm_importable(),
    reason="timm cannot be imported in this process (no torchvision); tests/test_edgetam.py runs EdgeTAM in a subprocess",
)
def test_edgetam_tracker_runs(tmp_path, frames):
    folder = write_tiny_edgetam(tmp_path / "edgetam-tiny")
    tracker = load_edgetam_tracker(str(folder), "cpu")
    masks = [box_mask(H, W, b) for b in BOXES]
    first, second = track(tracker, frames, masks)
    assert list(first) == [0, 1, 2] and list(second) == [3, 4, 5]
    assert all(list(second[f]) == [1, 2, 7] for f in second)
    assert np.array_equal(first[0][1], masks[0])
    assert tracker.identity()["model_class"] == "EdgeTamVideoModel"
