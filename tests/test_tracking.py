"""The windowed tracking driver against a fake tracker that enforces the session contract.

The fake tracker is a test double for the `TrackerSession` interface: it reads each
frame's global index from the pixels and moves every mask by a known velocity per
frame (a deterministic motion model), so forward and backward sessions agree with the
synthetic world. It asserts the call sequence the driver promises (see tracking.py):
add_mask only at local 0 before any propagate or at the last frame the previous
propagate returned; propagate ranges consecutive from 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from matte_assets.algorithms.tracking import track_shot
from matte_assets.settings import TrackSettings
from resources.backends import Tracker, TrackerSession

H, W = 24, 200


def shift_x(mask: np.ndarray, dx: int) -> np.ndarray:
    """Move a mask dx pixels right (left if negative); pixels leaving the frame are lost."""
    out = np.zeros_like(mask)
    if dx >= 0:
        out[:, dx:] = mask[:, : mask.shape[1] - dx]
    else:
        out[:, :dx] = mask[:, -dx:]
    return out


@dataclass
class Obj:
    label: str
    x0: int  # at frame 0 (may be outside the frame)
    x1: int
    y0: int
    y1: int
    detected: Callable[[int], bool] = lambda g: True
    quality: Callable[[int], float] = lambda g: 0.8
    override: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> detection mask


class World:
    """A synthetic shot: rectangles moving by `vx` px per frame, detected per `Obj`."""

    def __init__(self, n: int, window: int, vx: int, objects: list[Obj], width: int = W) -> None:
        self.n, self.window, self.vx, self.objects, self.width = n, window, vx, objects, width
        self.loads: list[tuple[int, int]] = []
        self.mask_calls: list[int] = []

    def mask(self, obj: Obj, g: int) -> np.ndarray:
        m = np.zeros((H, self.width), bool)
        x0, x1 = obj.x0 + self.vx * g, obj.x1 + self.vx * g
        m[obj.y0 : obj.y1, max(0, x0) : max(0, min(self.width, x1))] = True
        return m

    def load_frames(self, start: int, stop: int) -> np.ndarray:
        assert 0 <= start < stop <= self.n
        assert stop - start <= self.window, "memory: more than one window of frames requested"
        self.loads.append((start, stop))
        frames = np.zeros((stop - start, H, self.width, 3), np.uint8)
        for k, g in enumerate(range(start, stop)):
            frames[k, :, :, 0] = g % 256  # the fake tracker reads the global index back
            frames[k, :, :, 1] = g // 256
        return frames

    def masks_at(self, g: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        self.mask_calls.append(g)
        masks, quals, labels = [], [], []
        for obj in self.objects:
            if obj.detected(g):
                masks.append(obj.override.get(g, self.mask(obj, g)))
                quals.append(obj.quality(g))
                labels.append(obj.label)
        stack = np.stack(masks) if masks else np.zeros((0, H, self.width), bool)
        return stack, np.array(quals, np.float32), labels


class FakeSession(TrackerSession):
    def __init__(self, tracker: FakeTracker, frames: np.ndarray, number: int) -> None:
        self.t = tracker
        self.glob = [int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in frames]
        self.number = number
        self.last_stop: int | None = None
        self.state: dict[int, tuple[int, np.ndarray]] = {}  # object -> (local frame, mask)
        self.closed = False

    def add_mask(self, frame_index: int, object_id: int, mask: np.ndarray) -> None:
        assert not self.closed
        if self.last_stop is None:
            assert frame_index == 0, f"add_mask at {frame_index} before any propagate"
        else:
            assert frame_index == self.last_stop - 1, f"add_mask at {frame_index}, last propagated {self.last_stop - 1}"
        assert mask.dtype == bool and mask.shape == (H, self.t.width) and mask.any()
        self.state[object_id] = (frame_index, mask.copy())
        self.t.log.append(("add", self.number, self.glob[frame_index], object_id))

    def propagate(self, start: int, stop: int) -> dict[int, dict[int, np.ndarray]]:
        assert not self.closed
        expected = 0 if self.last_stop is None else self.last_stop
        assert start == expected, f"propagate({start}, {stop}) after {self.last_stop}"
        assert start < stop <= len(self.glob)
        assert self.state, "propagate on a session without objects"
        out: dict[int, dict[int, np.ndarray]] = {}
        for f in range(start, stop):
            out[f] = {}
            for obj, (sf, m) in sorted(self.state.items()):
                if sf != f:
                    assert sf == f - 1, "state must be contiguous"
                    m = shift_x(m, self.t.vx * (self.glob[f] - self.glob[f - 1]))
                    if obj in self.t.lose and self.glob[f] >= self.t.lose[obj]:
                        m = np.zeros_like(m)  # simulated tracking failure
                    self.state[obj] = (f, m)
                out[f][obj] = m.copy()
        self.t.log.append(("prop", self.number, [self.glob[f] for f in range(start, stop)]))
        self.last_stop = stop
        return out

    def close(self) -> None:
        self.closed = True


class FakeTracker(Tracker):
    def __init__(self, vx: int, window: int, lose: dict[int, int] | None = None, width: int = W) -> None:
        self.vx, self.window, self.lose, self.width = vx, window, lose or {}, width
        self.log: list[tuple] = []
        self.sessions: list[FakeSession] = []

    def identity(self) -> dict[str, str]:
        return {"backend": "fake"}

    def open_session(self, frames: np.ndarray) -> TrackerSession:
        assert frames.dtype == np.uint8 and frames.ndim == 4 and len(frames) <= self.window
        if self.sessions:
            assert self.sessions[-1].closed, "previous session not closed"
        s = FakeSession(self, frames, len(self.sessions))
        self.sessions.append(s)
        return s

    def adds(self, session: int | None = None) -> list[tuple[int, int]]:
        return [(g, o) for kind, n, g, o in (e for e in self.log if e[0] == "add") if session in (None, n)]


class Sink:
    def __init__(self) -> None:
        self.masks: dict[tuple[int, int], np.ndarray] = {}

    def write(self, layer_id: int, frame_index: int, mask: np.ndarray) -> None:
        key = (layer_id, frame_index)
        assert key not in self.masks, f"{key} written twice"
        assert mask.any()
        self.masks[key] = mask.copy()

    def frames(self, layer_id: int) -> list[int]:
        return sorted(f for lid, f in self.masks if lid == layer_id)


def run(world: World, tracker: FakeTracker, params: TrackSettings):
    sink = Sink()
    done: list[int] = []
    result = track_shot(world.n, world.load_frames, world, tracker, params, sink, progress=done.append)
    return result, sink, done


def test_late_object_gets_its_earlier_frames_from_the_backward_pass() -> None:
    a = Obj("person", 5, 15, 2, 10)
    b = Obj("car", 40, 55, 12, 20, detected=lambda g: g >= 23, quality=lambda g: 0.7)
    world = World(45, 20, 1, [a, b])
    tracker = FakeTracker(1, 20)
    result, sink, done = run(world, tracker, TrackSettings(window=20, prompt_step=5))

    assert [(r.layer_id, r.label, r.first_frame, r.last_frame) for r in result.layers] == [
        (1, "person", 0, 44),
        (2, "car", 0, 44),
    ]
    assert result.layers[1].prompt_frames == [25]  # created at the first prompt frame that saw it
    for layer, obj in ((1, a), (2, b)):
        assert sink.frames(layer) == list(range(45))
        for g in range(45):
            np.testing.assert_array_equal(sink.masks[(layer, g)], world.mask(obj, g))

    # Windows: forward overlaps by one frame, backward goes 25 -> 0 the same way.
    opened = [s.glob for s in tracker.sessions]
    assert opened == [
        list(range(0, 20)), list(range(19, 39)), list(range(38, 45)),
        list(range(25, 5, -1)), list(range(6, -1, -1)),
    ]
    # Seeds: local 0 of later windows, only the objects alive there; prompts at prompt frames.
    assert tracker.adds(1) == [(19, 1), (25, 2)]  # seed, then the car's first prompt
    assert tracker.adds(2) == [(38, 1), (38, 2)]
    assert tracker.adds(0) == [(0, 1)]
    assert tracker.adds(3) == [(25, 2)] and tracker.adds(4) == [(6, 2)]
    assert world.loads == [(0, 20), (19, 39), (38, 45), (6, 26), (0, 7)]
    assert max(stop - start for start, stop in world.loads) <= 20
    assert result.tracker_calls["forward_sessions"] == 3 and result.tracker_calls["backward_sessions"] == 2
    assert result.tracker_calls["loaded_frames"] == 74
    assert sum(done) == 45 + 25  # every produced frame reported once
    # Backward prompt frames saw only the person: no new object in the backward pass.
    back = [(r.frame, r.action) for r in result.decisions if r.phase == "backward"]
    assert back == [(20, "unmatched"), (15, "unmatched"), (10, "unmatched"), (5, "unmatched"), (0, "unmatched")]
    json.dumps([r.as_dict() for r in result.decisions])  # stored as plain data


def test_reprompts_follow_the_epsilon_rule() -> None:
    q = {0: 0.5, 5: 0.55, 10: 0.7, 15: 0.75, 20: 0.9, 25: 0.85}
    a = Obj("person", 5, 25, 2, 10, quality=lambda g: q[g])
    world = World(30, 20, 1, [a])
    refined = world.mask(a, 10)
    refined[:, np.flatnonzero(refined.any(axis=0))[-1]] = False  # one column thinner: IoU 0.95
    a.override[10] = refined
    tracker = FakeTracker(1, 20)
    result, sink, _ = run(world, tracker, TrackSettings(window=20, prompt_step=5))

    actions = [(r.frame, r.action) for r in result.decisions]
    assert actions == [(0, "new"), (5, "match"), (10, "reprompt"), (15, "match"), (20, "reprompt"), (25, "match")]
    rows = {r.frame: r for r in result.decisions}
    assert (rows[10].cached_quality, rows[10].new_cached_quality) == pytest.approx((0.55 - 0.05, 0.7))
    assert rows[25].cached_quality == pytest.approx(0.9)
    assert result.layers[0].prompt_frames == [0, 10, 20]
    assert tracker.adds() == [(0, 1), (10, 1), (19, 1), (20, 1)]
    assert result.tracker_calls["forward_reprompts"] == 2
    # The re-prompted frame outputs the per-frame mask; tracking continues from it.
    np.testing.assert_array_equal(sink.masks[(1, 10)], refined)
    np.testing.assert_array_equal(sink.masks[(1, 11)], shift_x(refined, 1))
    np.testing.assert_array_equal(sink.masks[(1, 9)], world.mask(a, 9))


def test_lost_object_is_not_seeded_and_backward_reprompts_without_new_objects() -> None:
    q = {0: 0.9, 5: 0.3, 10: 0.3}
    d = Obj("person", 50, 70, 2, 10, quality=lambda g: q[g])
    e = Obj("dog", 120, 130, 12, 20, detected=lambda g: g == 0)
    world = World(12, 20, 1, [d, e])
    tracker = FakeTracker(1, 20, lose={1: 2})  # the tracker drops object 1 from frame 2 on
    result, sink, _ = run(world, tracker, TrackSettings(window=20, prompt_step=5))

    assert [(r.layer_id, r.label, r.first_frame, r.last_frame, r.prompt_frames) for r in result.layers] == [
        (1, "person", 0, 1, [0]),
        (2, "dog", 0, 11, [0]),
        (3, "person", 0, 11, [0, 5]),  # restarted at 5, re-prompted at 0 by the backward pass
    ]
    assert sink.frames(1) == [0, 1]
    for g in range(12):
        np.testing.assert_array_equal(sink.masks[(3, g)], world.mask(d, g))
    back = [(r.frame, r.mask_index, r.action, r.object_id) for r in result.decisions if r.phase == "backward"]
    assert back == [(0, 0, "reprompt", 3), (0, 1, "unmatched", None)]
    assert tracker.adds(1) == [(5, 3), (0, 3)]


def test_object_that_leaves_is_not_seeded_into_the_next_window() -> None:
    x = Obj("person", 140, 150, 2, 10)
    y = Obj("person", 0, 10, 12, 20, quality=lambda g: 0.6)
    world = World(30, 20, 2, [x, y], width=160)
    tracker = FakeTracker(2, 20, width=160)
    result, sink, _ = run(world, tracker, TrackSettings(window=20, prompt_step=5))

    assert [(r.layer_id, r.first_frame, r.last_frame) for r in result.layers] == [(1, 0, 9), (2, 0, 29)]
    assert tracker.adds(1) == [(19, 2)]  # only the visible object seeds window 2
    assert sink.frames(1) == list(range(10))


def test_backward_stops_once_the_object_is_empty_at_a_window_end() -> None:
    z = Obj("car", -20, -10, 2, 10, detected=lambda g: g >= 25, quality=lambda g: 0.7)
    world = World(30, 5, 2, [z])
    tracker = FakeTracker(2, 5)
    result, sink, _ = run(world, tracker, TrackSettings(window=5, prompt_step=5))

    # Forward: no object before frame 25, so no session until then (opened lazily at 25).
    assert [s.glob for s in tracker.sessions[:2]] == [[25, 26, 27, 28], [28, 29]]
    assert world.loads[:2] == [(25, 29), (28, 30)]
    back = [s.glob for s in tracker.sessions[2:]]
    assert back == [
        [25, 24, 23, 22, 21], [21, 20, 19, 18, 17], [17, 16, 15, 14, 13], [13, 12, 11, 10, 9], [9, 8, 7, 6, 5],
    ]
    assert sink.frames(1) == list(range(6, 30))  # visible from frame 6 on
    assert (result.layers[0].first_frame, result.layers[0].last_frame) == (6, 29)
    assert max(stop - start for start, stop in world.loads) <= 5
    assert world.mask_calls[:6] == [0, 5, 10, 15, 20, 25]  # prompt frames still consulted


def test_ids_are_deterministic_and_duplicates_do_not_start_layers() -> None:
    def make() -> World:
        p = Obj("person", 5, 15, 2, 10, quality=lambda g: 0.6)
        q = Obj("person", 40, 60, 2, 10, quality=lambda g: 0.9)
        dup = Obj("person", 40, 59, 2, 10, detected=lambda g: g == 0, quality=lambda g: 0.5)
        r = Obj("car", 80, 100, 12, 20, detected=lambda g: g >= 5, quality=lambda g: 0.95)
        return World(12, 20, 1, [p, q, dup, r])

    outs = []
    for _ in range(2):
        world = make()
        result, sink, _ = run(world, FakeTracker(1, 20), TrackSettings(window=20, prompt_step=5))
        outs.append((result, sink))
    (r1, s1), (r2, s2) = outs
    # Frame 0 by descending quality: q (0.9) -> 1, p (0.6) -> 2; the duplicate of q joins it; r later -> 3.
    assert [(r.layer_id, r.label, r.first_frame) for r in r1.layers] == [(1, "person", 0), (2, "person", 0), (3, "car", 0)]
    frame0 = [(r.mask_index, r.action, r.object_id) for r in r1.decisions if r.frame == 0 and r.phase == "forward"]
    assert frame0 == [(1, "new", 1), (0, "new", 2), (2, "duplicate", 1)]
    assert r1 == r2
    assert s1.masks.keys() == s2.masks.keys()
    assert all(np.array_equal(s1.masks[k], s2.masks[k]) for k in s1.masks)


def test_short_and_empty_shots() -> None:
    a = Obj("person", 5, 15, 2, 10)
    world = World(1, 20, 1, [a])
    tracker = FakeTracker(1, 20)
    result, sink, done = run(world, tracker, TrackSettings())
    assert [(r.layer_id, r.first_frame, r.last_frame) for r in result.layers] == [(1, 0, 0)]
    assert [e[0] for e in tracker.log] == ["add"] and sink.frames(1) == [0] and done == [1]

    world = World(0, 20, 1, [a])
    tracker = FakeTracker(1, 20)
    result, sink, done = run(world, tracker, TrackSettings())
    assert result.layers == [] and tracker.log == [] and sink.masks == {} and done == []


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="window"):
        TrackSettings(window=1)
    with pytest.raises(ValueError, match="prompt_step"):
        TrackSettings(prompt_step=0)
    world = World(5, 20, 1, [Obj("person", 5, 15, 2, 10)])
    with pytest.raises(ValueError, match="load_frames"):
        track_shot(5, lambda s, e: np.zeros((e - s - 1, H, W, 3), np.uint8), world, FakeTracker(1, 20),
                   TrackSettings(), Sink())
    world = World(6, 20, 1, [Obj("person", 5, 15, 2, 10)])
    good = world.masks_at
    bad = np.ones((1, H, W + 1), bool), np.ones(1), ["person"]
    world.masks_at = lambda g: good(g) if g == 0 else bad  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="frame masks at frame 5"):
        track_shot(6, world.load_frames, world, FakeTracker(1, 20), TrackSettings(), Sink())


@pytest.mark.parametrize("window", [2, 3, 7, 20])
@pytest.mark.parametrize("prompt_step", [1, 3, 5])
def test_any_window_and_prompt_step_reproduce_the_world(window: int, prompt_step: int) -> None:
    a = Obj("person", 5, 15, 2, 10)
    b = Obj("car", 40, 55, 12, 20, detected=lambda g: g >= 13, quality=lambda g: 0.7)
    world = World(31, window, 1, [a, b])
    tracker = FakeTracker(1, window)
    result, sink, done = run(world, tracker, TrackSettings(window=window, prompt_step=prompt_step))
    first_b = next(g for g in range(31) if g >= 13 and g % prompt_step == 0)
    assert [(r.layer_id, r.first_frame, r.last_frame) for r in result.layers] == [(1, 0, 30), (2, 0, 30)]
    assert result.layers[1].prompt_frames == [first_b]
    for layer, obj in ((1, a), (2, b)):
        for g in range(31):
            np.testing.assert_array_equal(sink.masks[(layer, g)], world.mask(obj, g))
    assert len(sink.masks) == 62 and sum(done) == 31 + first_b
    assert max(stop - start for start, stop in world.loads) <= window
