"""SAM 3 backends (`detector: sam3`, `segmenter: sam3`, `tracker: sam3`) on a tiny randomly
initialised SAM 3 folder saved the way facebook/sam3 is (model_type sam3_video + CLIP
tokenizer), loaded through exactly the path a user's `models: {sam3: ...}` takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from io_managers.zarr_io_manager import open_stage
from io_managers.zarr_store import ZarrStore
from matte_assets.cli import main
from matte_assets.config import ConfigError, ShowFile
from matte_assets.errors import BackendError
from matte_assets.media.exr import read_exr
from matte_assets.tuning.synthetic import small_shot
from resources.backends import PointPrompt

from .conftest import SHOT, SHOW, make_project
from .model_fixtures import (
    moving_frames,
    tiny_clip_tokenizer,
    write_tiny_grounding_dino,
    write_tiny_sam3,
    write_tiny_sam3_lite_text,
)

KEY = f"{SHOW}__{SHOT}"
# Random weights score every query about alike (~0.25 = sigmoid(0) x sigmoid(0)): a
# threshold just under keeps a few objects per frame.
THRESHOLD = 0.24


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core machine torch's thread
    pool makes these tests 10-20x slower (measured: 260 s -> 30 s for the end-to-end run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sam3_folder(tmp_path_factory) -> Path:
    return write_tiny_sam3(tmp_path_factory.mktemp("models") / "sam3")


@pytest.fixture(scope="module")
def detector(sam3_folder):
    from resources.sam3 import load_sam3_detector

    return load_sam3_detector(str(sam3_folder), "cpu")


# ---------------------------------------------------------------------------------------
# Backends on their own


def test_tiny_clip_tokenizer_is_a_real_bpe() -> None:
    tok = tiny_clip_tokenizer()
    assert tok.tokenize("person moving") == ["person</w>", "moving</w>"]
    assert tok.tokenize("zebra") == ["z", "e", "b", "r", "a</w>"]  # unknown words fall back to bytes
    ids = tok("a red car", padding="max_length", max_length=32)["input_ids"]
    assert len(ids) == 32 and ids[0] == tok.bos_token_id and ids[4] == tok.eos_token_id


def test_detector_gives_boxes_masks_and_thresholded_scores(detector) -> None:
    frames = moving_frames(3)
    h, w = frames.shape[1:3]
    found = detector.detect(list(frames), ["person", "car"], THRESHOLD, 0.25)
    assert len(found) == 3 and any(found)
    for dets in found:
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            assert d.label in ("person", "car") and THRESHOLD < d.score <= 1
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert d.mask is not None and d.mask.shape == (h, w) and d.mask.dtype == bool
    # The threshold is applied to the scores, nothing else: raising it keeps a subset.
    top = max(d.score for dets in found for d in dets)
    stricter = detector.detect(list(frames), ["person", "car"], (THRESHOLD + top) / 2, 0.25)
    assert 0 < sum(map(len, stricter)) < sum(map(len, found))
    assert all(d.score > (THRESHOLD + top) / 2 for dets in stricter for d in dets)
    assert detector.detect(list(frames), ["person"], 0.99, 0.25) == [[], [], []]
    # Deterministic, and a frame's result does not depend on its batch.
    again = detector.detect([frames[1]], ["person", "car"], THRESHOLD, 0.25)[0]
    assert [(d.label, d.score, d.box) for d in again] == [(d.label, d.score, d.box) for d in found[1]]
    assert all((a.mask == b.mask).all() for a, b in zip(again, found[1]))


def test_detector_scores_are_query_times_presence(detector) -> None:
    """Score = sigmoid(query logit) x sigmoid(presence logit), as SAM 3's post-processing."""
    import torch

    from resources.sam2 import sam_pixels

    frame = moving_frames(1)[0]
    ids, mask = detector._prompt("car")
    with torch.inference_mode():
        pixels = sam_pixels(frame[None], detector.size, detector.mean, detector.std, "cpu")
        out = detector.model(pixel_values=pixels, input_ids=ids, attention_mask=mask)
    expected = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0].numpy()
    got = sorted((d.score for d in detector.detect([frame], ["car"], 0.0, 0.0)[0]), reverse=True)
    assert np.allclose(got, sorted(expected, reverse=True)[: len(got)], atol=1e-6)


def test_different_prompts_give_different_results(detector) -> None:
    frame = moving_frames(1)[0]
    person = detector.detect([frame], ["person"], 0.0, 0.0)[0]
    dog = detector.detect([frame], ["dog"], 0.0, 0.0)[0]
    assert [d.score for d in person] != [d.score for d in dog]  # the text reaches the model


def test_segmenter_prompts_boxes_and_clicks(sam3_folder) -> None:
    from resources.sam3 import load_sam3_segmenter

    seg = load_sam3_segmenter(str(sam3_folder), "cpu")
    assert seg.reuses_detector_masks
    frame = moving_frames(1)[0]
    boxes = np.array([[6, 10, 22, 26], [50, 6, 66, 22]], np.float32)
    masks, quality = seg.segment(frame, boxes)
    assert masks.shape == (2, 48, 80) and masks.dtype == bool and quality.shape == (2,)
    assert ((quality >= 0) & (quality <= 1)).all()
    clicked, _ = seg.segment(frame, boxes[:1], [[PointPrompt(14, 18), PointPrompt(40, 40, positive=False)]])
    assert clicked.shape == (1, 48, 80)
    empty, q = seg.segment(frame, np.zeros((0, 4), np.float32))
    assert empty.shape == (0, 48, 80) and q.shape == (0,)
    assert seg.identity()["backend"] == "sam3" and seg.identity()["weights"].startswith("sha256:")


def test_tracker_session_contract(sam3_folder) -> None:
    from resources.sam3 import load_sam3_tracker

    tracker = load_sam3_tracker(str(sam3_folder), "cpu")
    frames = moving_frames(4)
    prompt = np.zeros(frames.shape[1:3], bool)
    prompt[10:26, 6:22] = True
    session = tracker.open_session(frames)
    session.add_mask(0, 7, prompt)
    first = session.propagate(0, 2)
    assert sorted(first) == [0, 1] and (first[0][7] == prompt).all()  # the prompt frame returns the prompt
    assert first[1][7].shape == prompt.shape and first[1][7].dtype == bool
    session.add_mask(1, 9, prompt[:, ::-1].copy())  # a new object mid-window
    rest = session.propagate(2, 4)
    assert sorted(rest) == [2, 3] and sorted(rest[3]) == [7, 9]
    with pytest.raises(ValueError, match="prompts are accepted only"):
        session.add_mask(0, 7, prompt)
    session.close()
    assert tracker.identity()["model_class"] == "Sam3TrackerVideoModel"


def test_models_load_once_per_process(sam3_folder) -> None:
    from resources.sam3 import load_sam3_detector, load_sam3_tracker

    assert load_sam3_detector(str(sam3_folder), "cpu").model is load_sam3_detector(str(sam3_folder), "cpu").model
    assert load_sam3_tracker(str(sam3_folder), "cpu").model is load_sam3_tracker(str(sam3_folder), "cpu").model


def test_wrong_or_incomplete_folders_are_named(tmp_path: Path, sam3_folder) -> None:
    import shutil

    from resources.sam3 import load_sam3_detector, load_sam3_tracker

    gd = write_tiny_grounding_dino(tmp_path / "gd")
    with pytest.raises(BackendError, match="grounding-dino model.*sam3_video"):
        load_sam3_tracker(str(gd), "cpu")
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(sam3_folder / name, no_tok / name)
    with pytest.raises(BackendError, match="no-tokenizer.*tokenizer"):
        load_sam3_detector(str(no_tok), "cpu")


def test_lite_text_folder_serves_the_detector_only(tmp_path: Path) -> None:
    from resources.sam3 import load_sam3_detector, load_sam3_tracker

    folder = write_tiny_sam3_lite_text(tmp_path / "lite")
    detector = load_sam3_detector(str(folder), "cpu")
    assert detector.identity()["model_class"] == "Sam3LiteTextModel"
    found = detector.detect(list(moving_frames(2)), ["person"], 0.0, 0.0)
    assert all(len(dets) > 0 and dets[0].mask.shape == (48, 80) for dets in found)
    with pytest.raises(BackendError, match="sam3_lite_text model; the SAM 3 tracker needs"):
        load_sam3_tracker(str(folder), "cpu")


# ---------------------------------------------------------------------------------------
# Settings


def _show(tmp_path: Path, backends: dict) -> ShowFile:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"backends": backends, "shots": {"a": {"plate": "p.####.exr"}}}))
    return ShowFile(path, "s")


def test_detector_sam3_pairs_with_its_masks_unless_a_segmenter_is_named(tmp_path: Path) -> None:
    auto = _show(tmp_path, {"detector": "sam3", "tracker": "sam3"}).shot("a")
    assert auto.backends.segmenter == "sam3" and auto.track.identity_iou == 0.9
    named = _show(tmp_path, {"detector": "sam3", "segmenter": "sam2"}).shot("a")
    assert named.backends.segmenter == "sam2"
    assert _show(tmp_path, {"detector": "grounding_dino"}).shot("a").backends.segmenter == "grabcut"
    with pytest.raises(ConfigError, match="backends.tracker"):
        _show(tmp_path, {"tracker": "sam-3"})


# ---------------------------------------------------------------------------------------
# `matte run` end to end


def sam3_project(root: Path, backends: dict, models: dict, n_frames: int = 5):
    settings = {
        "prompt": "person, car",
        "backends": backends,
        "models": {k: str(v) for k, v in models.items()},
        "device": "cpu",
        "detect": {"box_threshold": THRESHOLD, "text_threshold": 0.25},
        "track": {"window": 3, "prompt_step": 2},
    }
    return make_project(root, shot=small_shot(width=80, height=48, n_frames=n_frames), show_settings=settings)


def test_sam3_detector_and_tracker_run_end_to_end(tmp_path: Path, sam3_folder, capsys) -> None:
    project = sam3_project(tmp_path / "p", {"detector": "sam3", "tracker": "sam3"}, {"sam3": sam3_folder})
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()[:6]] == ["ran"] * 6

    store = ZarrStore(project.store_url)
    dets = open_stage(store, KEY, "detections")
    assert len(dets) > 0 and dets.masks is not None and dets.masks.shape == (len(dets), 48, 80)
    masks = open_stage(store, KEY, "frame_masks")
    # The detector's masks are the frame masks, as they are; quality is the score.
    for f in sorted(set(int(i) for i in dets.columns["frame_index"])):
        rows = dets.rows_at(f)
        got, quality, labels = masks.masks_at(f)
        assert (got == dets.stored_masks(rows)).all()
        assert np.allclose(quality, np.asarray(dets.columns["score"])[rows])
        assert labels == dets.labels(rows)
    tracked = open_stage(store, KEY, "tracked_layers")
    assert tracked.layer_ids and tracked.n_frames == 5

    files = sorted((project.deliveries / SHOW / SHOT / "v001").glob("*.exr"))
    assert len(files) == 5
    _, header = read_exr(files[0])
    models = header["matte/models"]
    assert "Sam3Model" in models and "Sam3TrackerVideoModel" in models and "sha256:" in models

    # A forced rerun reproduces the same data versions and the same delivery.
    before = {s: store.head(KEY, s)["data_version"] for s in ("detections", "frame_masks", "tracked_layers")}
    assert main(["run", f"{SHOW}/{SHOT}", "--from", "detections", "--project", str(project.root)]) == 0
    assert {s: store.head(KEY, s)["data_version"] for s in before} == before
    assert open_stage(store, KEY, "mattes")["reused_existing_version"]


def test_grounding_dino_with_sam3_segmenter_and_tracker(tmp_path: Path, sam3_folder, capsys) -> None:
    """Mixed backends: GroundingDINO boxes, SAM 3 box-prompted masks, SAM 3 tracking."""
    gd = write_tiny_grounding_dino(tmp_path / "gd")
    project = sam3_project(
        tmp_path / "p",
        {"detector": "grounding_dino", "segmenter": "sam3", "tracker": "sam3"},
        {"grounding_dino": gd, "sam3": sam3_folder},
    )
    project_file = project.show_path(SHOW)
    data = yaml.safe_load(project_file.read_text())
    data["detect"]["box_threshold"] = 0.5  # GroundingDINO's random scores sit higher
    project_file.write_text(yaml.safe_dump(data, sort_keys=False))
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code == 0, err
    store = ZarrStore(project.store_url)
    dets = open_stage(store, KEY, "detections")
    assert len(dets) > 0 and dets.masks is None  # GroundingDINO gives boxes only
    masks = open_stage(store, KEY, "frame_masks")
    assert len(masks) == len(dets)
    assert masks.record["settings"]["backend"]["backend"] == "sam3"
    assert open_stage(store, KEY, "tracked_layers").n_frames == 5
    _, header = read_exr(sorted((project.deliveries / SHOW / SHOT / "v001").glob("*.exr"))[0])
    assert "GroundingDino" in header["matte/models"] and "Sam3TrackerVideoModel" in header["matte/models"]


def test_missing_sam3_weights_fail_before_any_stage(tmp_path: Path, capsys) -> None:
    project = sam3_project(tmp_path / "p", {"detector": "sam3", "tracker": "sam3"}, {"sam3": tmp_path / "no-sam3"})
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code != 0 and "no-sam3" in err and "SAM 3" in err
    assert ZarrStore(project.store_url).head(KEY, "plate") is None  # nothing ran


def test_unreadable_sam3_weights_fail_before_any_stage(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken-sam3"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "sam3_video"}')
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    project = sam3_project(tmp_path / "p", {"detector": "sam3", "tracker": "sam3"}, {"sam3": broken})
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code != 0 and "broken-sam3" in err
    assert ZarrStore(project.store_url).head(KEY, "plate") is None


def test_sam3_hub_id_offline_fails_fast_with_the_download_command(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    project = sam3_project(tmp_path / "p", {"detector": "sam3", "tracker": "sam3"}, {})
    data = yaml.safe_load(project.show_path(SHOW).read_text())
    data["models"] = {"sam3": "facebook/sam3"}
    project.show_path(SHOW).write_text(yaml.safe_dump(data, sort_keys=False))
    code = main(["run", f"{SHOW}/{SHOT}", "--project", str(project.root)])
    _, err = capsys.readouterr()
    assert code != 0 and "SAM 3" in err and "hf download facebook/sam3" in err
    assert ZarrStore(project.store_url).head(KEY, "plate") is None
