"""`matte eval`: DAVIS J and F (hand cases, the published definition), identity switches,
layer precision / recall, truth layouts, and the command on a stored project."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from matte_assets.algorithms.metrics import (
    JAccumulator,
    QualityAccumulator,
    boundary_radius,
    disk,
    f_measure,
    pairwise_f,
    seg2bmap,
)
from matte_assets.errors import MatteError
from matte_assets.tuning.evaluation import (
    evaluate_delivery,
    evaluate_layers,
    load_truth,
    read_truth_mask,
    score_delivery,
)

from .conftest import SHOT, SHOW

H, W = 20, 40


def rect(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


EMPTY = np.zeros((H, W), bool)


# --- F: the DAVIS boundary measure --------------------------------------------------------


def test_seg2bmap_hand_case() -> None:
    # A 2x2 square at rows/cols 1-2 of a 5x5 image: the boundary is the 3x3 ring one
    # half pixel towards the origin (rows/cols 0-2), 8 pixels, centre not a boundary.
    m = np.zeros((5, 5), bool)
    m[1:3, 1:3] = True
    expected = np.zeros((5, 5), bool)
    expected[0:3, 0:3] = True
    expected[1, 1] = False
    assert np.array_equal(seg2bmap(m), expected)
    # The frame's edges are not boundaries: a mask filling the frame has none, and one
    # filling the bottom row has its boundary on the row above only.
    assert not seg2bmap(np.ones((3, 3), bool)).any()
    bottom = np.zeros((3, 3), bool)
    bottom[2] = True
    assert seg2bmap(bottom).tolist() == [[False] * 3, [True] * 3, [False] * 3]


def test_tolerance_radius_and_disk() -> None:
    assert boundary_radius((720, 1280)) == math.ceil(0.008 * math.hypot(720, 1280)) == 12
    assert boundary_radius((576, 1024)) == 10
    assert boundary_radius((H, W)) == 1
    assert boundary_radius((100, 100), bound_th=3) == 3  # >= 1: pixels
    # MATLAB strel(disk) / skimage disk: x^2 + y^2 <= r^2.
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert int(disk(2).sum()) == 13


def test_f_hand_computed() -> None:
    # Truth: 10x10 square (rows/cols 4-13) in a 20x40 image, tolerance 1 px (a plus-
    # shaped disk). Prediction: the same square 3 px to the right. Each boundary is a
    # 40-pixel ring; of the predicted ring, the top and bottom rows match where they run
    # along the truth's (cols 6-14: 9 + 9) and the left column's two pixels next to the
    # truth's top and bottom rows match (2): 20 / 40. The truth's ring matches the same
    # way (mirror image): P = R = 0.5, F = 0.5. J = 70 / 130.
    g = rect(4, 4, 14, 14)
    p = rect(7, 4, 17, 14)
    assert int(seg2bmap(g).sum()) == 40
    f, precision, recall = f_measure(p, g)
    assert (f, precision, recall) == (0.5, 0.5, 0.5)
    acc = JAccumulator(1, 1)
    acc.add_frame(g[None], p[None])
    assert acc.result().mean_j == pytest.approx(70 / 130)
    # Within tolerance everywhere: a 1 px shift scores F = 1 while J < 1.
    assert f_measure(rect(5, 4, 15, 14), g)[0] == 1.0


def test_f_empty_cases_follow_the_toolkit() -> None:
    g = rect(4, 4, 14, 14)
    assert f_measure(EMPTY, EMPTY) == (1.0, 1.0, 1.0)  # nothing to find, nothing found
    assert f_measure(EMPTY, g) == (0.0, 1.0, 0.0)  # missed: P = 1, R = 0
    assert f_measure(g, EMPTY) == (0.0, 0.0, 1.0)  # spurious: P = 0, R = 1


def _reference_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> tuple[float, float, float]:
    """The DAVIS toolkit's f_boundary, transcribed from its published definition:
    whole-frame seg2bmap, dilation by disk(ceil(bound_th * diagonal))."""
    r = bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(pred.shape))
    k = disk(int(r))
    fb, gb = seg2bmap(pred), seg2bmap(gt)
    fd = cv2.dilate(fb.astype(np.uint8), k).astype(bool)
    gd = cv2.dilate(gb.astype(np.uint8), k).astype(bool)
    nf, ng = int(fb.sum()), int(gb.sum())
    if nf == 0 and ng > 0:
        p, rec = 1.0, 0.0
    elif nf > 0 and ng == 0:
        p, rec = 0.0, 1.0
    elif nf == 0 and ng == 0:
        p, rec = 1.0, 1.0
    else:
        p, rec = (fb & gd).sum() / nf, (gb & fd).sum() / ng
    f = 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)
    return f, p, rec


def test_f_matches_the_whole_frame_definition_on_random_masks() -> None:
    # Our F crops to the masks and dilates each boundary once per frame; the numbers
    # must equal the whole-frame definition exactly, at the frame edges too.
    rng = np.random.default_rng(0)
    for trial in range(200):
        h, w = (int(v) for v in rng.integers(6, 70, 2))
        masks = []
        for _ in range(3):
            m = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(0, 3))):
                centre = (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5)))
                cv2.circle(m, centre, int(rng.integers(1, 18)), 1, -1)
            masks.append(m.astype(bool))
        bound_th = (0.008, 0.05, 2.0)[trial % 3]
        gt = np.stack(masks[:1])
        layers = np.stack(masks[1:])
        f, p, r = pairwise_f(gt, layers, bound_th)
        for j in range(2):
            ref = _reference_f(layers[j], gt[0], bound_th)
            assert (f[0, j], p[0, j], r[0, j]) == pytest.approx(ref, abs=1e-12)


# --- switches, precision / recall -----------------------------------------------------------


def test_identity_switches_and_layer_precision_recall() -> None:
    g = rect(4, 4, 14, 14)
    other = rect(25, 4, 35, 14)
    acc = QualityAccumulator(2, 3)
    frames = [
        (np.stack([g, other]), np.stack([g, EMPTY, other])),  # object 0 is layer 0
        (np.stack([g, other]), np.stack([g, EMPTY, other])),
        (np.stack([EMPTY, other]), np.stack([EMPTY, EMPTY, other])),  # hidden: no best layer, no reset
        (np.stack([g, other]), np.stack([EMPTY, g, other])),  # now layer 1: one switch
        (np.stack([g, other]), np.stack([rect(4, 4, 14, 6), g, other])),  # layer 0 too small (IoU 0.2): still 1
    ]
    for k, (gt, layers) in enumerate(frames):
        acc.add_frame(gt, layers, 1001 + k)
    res = acc.result()
    assert res.switches == [1, 0] and res.switch_frames == [[1004], []] and res.total_switches == 1
    # J of object 0: layer 0 (1 + 1 + 1 + 0 + 0.2) / 5 = 0.64 (the hidden frame, empty
    # on both sides, scores 1), layer 1 (0 + 0 + 1 + 1 + 1) / 5 = 0.6: one-to-one
    # matching keeps layer 0, and layer 1 matches no object.
    np.testing.assert_allclose(res.match.j_matrix[0], [0.64, 0.6, 0.0])
    assert res.match.assignment == {0: 0, 1: 2}
    assert res.found == [(0, 0), (1, 2)]
    assert res.spurious_layers == [1] and res.missed_objects == []
    assert res.layer_precision == pytest.approx(2 / 3) and res.object_recall == 1.0
    # F of the matched pair averages per frame like J (1 on the empty frame).
    assert res.per_object_f[0] == pytest.approx(res.f_matrix[0, 0])


def test_missed_object_and_no_layers() -> None:
    acc = QualityAccumulator(1, 0)
    acc.add_frame(rect(4, 4, 14, 14)[None], np.zeros((0, H, W), bool))
    res = acc.result()
    assert res.mean_j == 0.0 and res.mean_f == 0.0 and res.missed_objects == [0]
    assert res.layer_precision == 1.0 and res.object_recall == 0.0
    # A layer that overlaps too little is not a find, though the matching pairs it.
    acc = QualityAccumulator(1, 1, match_j=0.5)
    acc.add_frame(rect(4, 4, 14, 14)[None], rect(4, 4, 14, 6)[None])
    res = acc.result()
    assert res.match.assignment == {0: 0} and res.found == [] and res.spurious_layers == [0]


# --- truth folders --------------------------------------------------------------------------


def _write(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)


def test_truth_layouts(tmp_path: Path) -> None:
    multi = tmp_path / "multi"
    for frame in (1001, 1002):
        _write(multi / f"car.{frame}.png", rect(0, 0, 4, 4))
        _write(multi / f"person.{frame:04d}.png", rect(5, 5, 9, 9))
    assert {k: sorted(v) for k, v in load_truth(multi).items()} == {"car": [1001, 1002], "person": [1001, 1002]}
    single = tmp_path / "hero"
    for frame in (1, 2, 3):
        _write(single / f"mask_{frame:04d}.png", rect(0, 0, 4, 4))
    assert {k: sorted(v) for k, v in load_truth(single).items()} == {"hero": [1, 2, 3]}
    with pytest.raises(MatteError, match="no such truth folder"):
        load_truth(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MatteError, match="no PNG files"):
        load_truth(tmp_path / "empty")
    _write(tmp_path / "bad" / "notes.png", rect(0, 0, 4, 4))
    _write(tmp_path / "bad" / "x_0001.png", rect(0, 0, 4, 4))
    with pytest.raises(MatteError, match="notes.png: truth file name has no frame number"):
        load_truth(tmp_path / "bad")


def test_truth_reduced_to_plate_resolution(tmp_path: Path) -> None:
    # Area-averaged, kept where more than half a pixel is covered.
    big = np.zeros((8, 16), bool)
    big[0:2, 0:2] = True  # one full 2x2 cell -> 1
    big[2, 2:4] = True  # half a cell -> 0 (not more than half)
    big[4:6, 4] = True
    big[4, 5] = True  # three quarters -> 1
    path = tmp_path / "t.0001.png"
    _write(path, big)
    small = read_truth_mask(path, (8, 4))
    expected = np.zeros((4, 8), bool)
    expected[0, 0] = True
    expected[2, 2] = True
    assert np.array_equal(small, expected)
    with pytest.raises(MatteError, match="cannot be scored against 10x4"):
        read_truth_mask(path, (10, 4))


# --- on a stored project ----------------------------------------------------------------------


def _delivered(project_root: Path) -> list[tuple[int, Path]]:
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore
    from matte_assets.config import Project

    manifest = open_stage(ZarrStore(Project(project_root).store_url), f"{SHOW}__{SHOT}", "mattes")
    return [(f["frame"], Path(f["path"])) for f in manifest["files"]]


def test_eval_matches_the_demo_score_exactly(ran_project: Path) -> None:
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    files = _delivered(ran_project)
    demo, objects, layers = score_delivery(files, truth)
    report = evaluate_delivery(files, truth)
    assert report.mean_j == demo.mean_j  # same masks, same matching: bit-identical
    assert report.objects == objects and report.layers == layers
    assert report.result.match.assignment == demo.assignment
    assert 0.0 <= report.mean_f <= 1.0 and len(report.frames) == 12
    data = report.as_dict()
    assert data["mean_j"] == round(demo.mean_j, 6) and data["conventions"]["bound_th"] == 0.008


def test_eval_stored_layers(ran_project: Path) -> None:
    from io_managers.zarr_io_manager import open_stage
    from io_managers.zarr_store import ZarrStore
    from matte_assets.config import Project

    store = ZarrStore(Project(ran_project).store_url)
    key = f"{SHOW}__{SHOT}"
    plate = open_stage(store, key, "plate")
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    filtered = evaluate_layers(open_stage(store, key, "filtered_layers"), plate.frame_numbers, truth)
    tracked = evaluate_layers(open_stage(store, key, "tracked_layers"), plate.frame_numbers, truth)
    assert filtered.layers == ["moving1", "moving2"]
    assert all("#" in name for name in tracked.layers)  # tracked layers: label#id
    # The small plate is stored at its own size: the delivery and the stored layers agree.
    delivered = evaluate_delivery(_delivered(ran_project), truth)
    assert filtered.mean_j == pytest.approx(delivered.mean_j, abs=1e-9)


def _matte(argv: list[str]) -> int:
    from matte_assets import cli
    from matte_assets.cli.tuning import register

    if not any(c.name == "eval" for c in cli.app.registered_commands):
        register(cli.app)
    return cli.main(argv)


def test_eval_command(ran_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    demo, _, _ = score_delivery(_delivered(ran_project), truth)
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--project", str(ran_project)]) == 0
    out = capsys.readouterr().out
    assert f"{demo.mean_j:6.3f}" in out.splitlines()[-2] and "precision" in out
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--json", "--project", str(ran_project)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mean_j"] == round(demo.mean_j, 6) and {o["object"] for o in data["objects"]} == {"disc", "slab"}
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--stage", "tracked_layers", "--json", "--project", str(ran_project)]) == 0
    assert json.loads(capsys.readouterr().out)["source"].startswith("tracked_layers")
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--version", "1", "--project", str(ran_project)]) == 0
    capsys.readouterr()


def test_eval_command_errors(ran_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = ran_project / "plates" / SHOW / SHOT / "truth"
    base = ["--project", str(ran_project)]
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(tmp_path / "nope"), *base]) == 1
    assert "nope: no such truth folder" in capsys.readouterr().err
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--stage", "plate", *base]) == 1
    assert "--stage 'plate': not scorable" in capsys.readouterr().err
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(truth), "--version", "9", *base]) == 1
    assert "v009: no such delivered version" in capsys.readouterr().err
    assert _matte(["eval", f"{SHOW}/other", "--truth", str(truth), *base]) == 1
    assert "no shot 'other'" in capsys.readouterr().err
    # Truth frames that miss the shot entirely.
    far = tmp_path / "far"
    far.mkdir()
    shutil.copy(next(truth.glob("disc.*.png")), far / "disc.5001.png")
    assert _matte(["eval", f"{SHOW}/{SHOT}", "--truth", str(far), *base]) == 1
    assert "truth frames 5001-5001 do not overlap the scored frames 1001-1012" in capsys.readouterr().err
