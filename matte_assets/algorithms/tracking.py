"""The windowed tracking driver (spec §3: tracking in windows, identity, backward pass).

Call sequence inside one tracker session (the `TrackerSession` contract as this driver
uses it, and as backends may rely on):

- `add_mask(0, ...)` only before the first `propagate` (seeds, or prompts at frame 0);
- `propagate` ranges are consecutive: the first starts at 0, each next one starts at the
  previous `stop`;
- later `add_mask(p, ...)` only at p = the last frame the previous `propagate` returned,
  so a prompt frame p is reached with `propagate(..., p + 1)`, its tracked masks are
  compared with the per-frame masks, prompts are added at p, and tracking continues with
  `propagate(p + 1, ...)`.

Forward pass: windows from `forward_windows`; window k+1's first frame is window k's
last frame (already written), seeded with every object whose mask there is non-empty.
Prompt frames (global % prompt_step == 0, except those seed frames) run the identity
rule; re-prompted and new objects output the per-frame mask at that frame.

Backward pass: objects first seen at f > 0 are tracked from f back to 0 over
`backward_windows(f)`, sessions on reversed frames, seeded with the object's mask at f,
re-prompted by the same identity rule (no new objects), writing frames < f only.
Objects sharing the same first frame share their backward sessions (same frames, one
feature pass); tracking stops once every object of the group is empty at a window end.

A session is opened only once its window has an object (seeds, or objects started at a
prompt frame; that frame is then the session's local 0): frames with no object are
neither loaded nor tracked, and `propagate` never runs on a session without objects.

Memory: one window of frames, plus the current and first-frame mask of each object.
The sink receives only non-empty masks, each (layer, frame) at most once over both
passes; frames never written are empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from resources.backends import Tracker, TrackerSession

from ..settings import TrackSettings

from .identity import NEW, REPROMPT, IdentityDecision, TrackedObject, match_prompt_masks
from .windows import backward_windows, forward_windows, is_prompt_frame

FIRST_LAYER_ID = 1  # layer ids start at 1 so channel names read person1, car2, ...
FORWARD = "forward"
BACKWARD = "backward"
CORRECTION = "correction"  # re-tracking a layer from artist prompts (no new objects)


class FrameMaskSource(Protocol):
    """Per-frame segmentations (the frame_masks stage)."""

    def masks_at(self, frame_index: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(N, H, W) bool masks, (N,) qualities and N labels at a global frame."""
        ...


class LayerSink(Protocol):
    def write(self, layer_id: int, frame_index: int, mask: np.ndarray) -> None:
        """Store one non-empty layer mask; called at most once per (layer, frame)."""
        ...


@dataclass
class LayerRecord:
    layer_id: int
    label: str
    first_frame: int | None  # first non-empty frame after both passes (None: never)
    last_frame: int | None  # last non-empty frame after both passes (None: never)
    prompt_frames: list[int] = field(default_factory=list)  # frames it was (re-)prompted, ascending
    origin: str = "detection"


@dataclass(frozen=True)
class DecisionRow:
    """One identity decision, as the tracked_layers stage stores it."""

    phase: str  # "forward" | "backward"
    frame: int  # global frame index
    mask_index: int  # index of the per-frame mask at that frame
    label: str
    quality: float
    action: str  # new | reprompt | match | duplicate | unmatched | empty
    object_id: int | None
    iou: float
    cached_quality: float | None
    new_cached_quality: float | None

    @classmethod
    def from_decision(cls, phase: str, frame: int, d: IdentityDecision) -> DecisionRow:
        return cls(
            phase, frame, d.mask_index, d.label, d.quality, d.action, d.object_id, d.iou,
            d.cached_quality, d.new_cached_quality,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrackingResult:
    layers: list[LayerRecord]  # ids ascending
    decisions: list[DecisionRow]  # in processing order
    tracker_calls: dict[str, int]  # counters, e.g. forward_sessions, backward_propagate


@dataclass
class _Layer:
    record: LayerRecord
    first_mask: np.ndarray  # mask at the creation frame: seeds the backward pass
    first_quality: float


class _Driver:
    def __init__(
        self,
        n_frames: int,
        load_frames: Callable[[int, int], np.ndarray],
        frame_masks: FrameMaskSource,
        tracker: Tracker,
        params: TrackSettings,
        sink: LayerSink,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.n_frames = n_frames
        self.load_frames = load_frames
        self.frame_masks = frame_masks
        self.tracker = tracker
        self.params = params
        self.sink = sink
        self.progress = progress
        self.shape: tuple[int, int] | None = None
        self.layers: dict[int, _Layer] = {}
        self.rows: list[DecisionRow] = []
        self.calls: Counter[str] = Counter()
        self.next_id = FIRST_LAYER_ID

    # -- inputs -----------------------------------------------------------------------

    def _frames(self, lo: int, hi: int) -> np.ndarray:
        frames = np.asarray(self.load_frames(lo, hi))
        if frames.ndim != 4 or frames.shape[0] != hi - lo or frames.shape[3] != 3:
            raise ValueError(f"load_frames({lo}, {hi}) returned shape {frames.shape}, expected ({hi - lo}, H, W, 3)")
        if self.shape is None:
            self.shape = (int(frames.shape[1]), int(frames.shape[2]))
        elif frames.shape[1:3] != self.shape:
            raise ValueError(
                f"load_frames({lo}, {hi}) returned frames of {frames.shape[1:3]}, "
                f"but earlier frames or frame masks were {self.shape}"
            )
        self.calls["loaded_frames"] += hi - lo
        return frames

    def _masks_at(self, frame: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        masks, qualities, labels = self.frame_masks.masks_at(frame)
        m = np.asarray(masks, dtype=bool)
        q = np.asarray(qualities, dtype=np.float64).reshape(-1)
        labels = list(labels)
        if self.shape is None and m.ndim == 3:
            self.shape = (int(m.shape[1]), int(m.shape[2]))  # no frame loaded yet
        if m.size == 0 and q.size == 0 and not labels:
            return np.zeros((0, *(self.shape or (0, 0))), bool), q, labels
        if m.ndim != 3 or m.shape[1:] != self.shape or m.shape[0] != q.shape[0] or len(labels) != q.shape[0]:
            raise ValueError(
                f"frame masks at frame {frame}: masks {m.shape}, {q.shape[0]} qualities, {len(labels)} labels "
                f"do not agree with the plate size {self.shape}"
            )
        return m, q, labels

    def _tracked(self, out: dict[int, dict[int, np.ndarray]], local: int, object_id: int) -> np.ndarray:
        assert self.shape is not None
        mask = out.get(local, {}).get(object_id)
        if mask is None:
            return np.zeros(self.shape, bool)
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.shape:
            raise ValueError(f"tracker returned a {m.shape} mask for object {object_id}, expected {self.shape}")
        return m

    # -- one session ------------------------------------------------------------------

    def _prompt(
        self, phase: str, frame: int, active: list[TrackedObject], allow_new: bool
    ) -> list[tuple[int, np.ndarray]]:
        """Identity rule at a prompt frame. New objects join `active`; returns the
        (object id, mask) prompts to add to the session, ids ascending."""
        masks, qualities, labels = self._masks_at(frame)
        self.calls[f"{phase}_prompt_frames"] += 1
        res = match_prompt_masks(
            active, masks, qualities, labels, self.params.identity_iou, self.params.epsilon, self.next_id, allow_new
        )
        self.next_id = res.next_id
        self.rows.extend(DecisionRow.from_decision(phase, frame, d) for d in res.decisions)
        for obj in res.new_objects:
            self.layers[obj.object_id] = _Layer(
                LayerRecord(obj.object_id, obj.label, None, None), obj.mask.copy(), float(obj.cached_quality)
            )
            active.append(obj)
        active.sort(key=lambda o: o.object_id)
        for d in res.decisions:
            if d.action == NEW:
                self.calls[f"{phase}_new_objects"] += 1
            elif d.action == REPROMPT:
                self.calls[f"{phase}_reprompts"] += 1
        prompts = []
        for object_id in sorted(res.prompts):
            self.layers[object_id].record.prompt_frames.append(frame)
            prompts.append((object_id, masks[res.prompts[object_id]]))
        return prompts

    def _write(self, active: list[TrackedObject], frame: int) -> None:
        for obj in active:
            if not obj.mask.any():
                continue
            self.sink.write(obj.object_id, frame, obj.mask)
            rec = self.layers[obj.object_id].record
            rec.first_frame = frame if rec.first_frame is None else min(rec.first_frame, frame)
            rec.last_frame = frame if rec.last_frame is None else max(rec.last_frame, frame)

    def _run_window(
        self, phase: str, frames_global: range, seeds: list[TrackedObject], prompt_first: bool
    ) -> list[TrackedObject]:
        """Track over one window (global frames in tracking order); returns the objects of
        its session with their masks at the window's last frame.

        The session is opened lazily, at the first window frame that has an object (the
        seed frame, or a prompt frame where objects start): frames without any object
        are neither loaded nor tracked, and `propagate` is never called on a session
        without objects (model trackers refuse that)."""
        g = list(frames_global)
        n = len(g)
        allow_new = phase == FORWARD
        step = self.params.prompt_step
        # Prompt frames of this window (window-local); local 0 is the seed frame, except
        # on the shot's first frame.
        prompt_locals = [k for k in range(n) if is_prompt_frame(g[k], step) and (k > 0 or prompt_first)]
        active: list[TrackedObject] = []
        session: TrackerSession | None = None
        base = 0  # window-local index of the session's local frame 0
        pos = 0  # next session-local frame to propagate
        done = -1 if prompt_first else 0  # last window-local frame already produced

        def open_at(b: int) -> TrackerSession:
            lo, hi = min(g[b], g[-1]), max(g[b], g[-1]) + 1
            frames = self._frames(lo, hi)
            if g[0] > g[-1]:  # backward: the session sees the frames in tracking order
                frames = np.ascontiguousarray(frames[::-1])
            self.calls[f"{phase}_sessions"] += 1
            return self.tracker.open_session(frames)

        def add(prompts: list[tuple[int, np.ndarray]], local: int) -> None:
            assert session is not None
            for object_id, mask in prompts:
                session.add_mask(local, object_id, mask)
                self.calls[f"{phase}_add_mask"] += 1

        try:
            seeded = [o for o in sorted(seeds, key=lambda o: o.object_id) if o.mask.any()]
            if seeded:
                session = open_at(0)
                active.extend(seeded)
                add([(o.object_id, o.mask) for o in seeded], 0)
            while done < n - 1:
                nxt = next((k for k in prompt_locals if k > done), None)
                if session is None:
                    # No object yet: skip to the next prompt frame, where objects may start.
                    if nxt is None:
                        self._report(n - 1 - done)
                        break
                    prompts = self._prompt(phase, g[nxt], active, allow_new)
                    if prompts:
                        base, pos = nxt, 0
                        session = open_at(nxt)
                        add(prompts, 0)
                    self._write(active, g[nxt])
                    self._report(nxt - done)
                    done = nxt
                    continue
                last = n - 1 if nxt is None else nxt
                out = session.propagate(pos, last + 1 - base)
                self.calls[f"{phase}_propagate"] += 1
                self.calls[f"{phase}_propagated_frames"] += last + 1 - base - pos
                pos = last + 1 - base
                for k in range(done + 1, last + 1):
                    for obj in active:
                        obj.mask = self._tracked(out, k - base, obj.object_id)
                    if k == nxt:
                        add(self._prompt(phase, g[k], active, allow_new), k - base)
                    self._write(active, g[k])
                self._report(last - done)
                done = last
        finally:
            if session is not None:
                session.close()
        return active

    def _report(self, frames_done: int) -> None:
        if self.progress is not None and frames_done > 0:
            self.progress(frames_done)

    # -- passes -----------------------------------------------------------------------

    def forward(self) -> None:
        alive: list[TrackedObject] = []
        for k, (start, stop) in enumerate(forward_windows(self.n_frames, self.params.window)):
            active = self._run_window(FORWARD, range(start, stop), alive, prompt_first=k == 0)
            # Objects lost by the window's end are not seeded again.
            alive = [o for o in active if o.mask.any()]

    def backward(self) -> None:
        groups: dict[int, list[int]] = {}
        for object_id in sorted(self.layers):
            first = self.layers[object_id].record.first_frame
            if first is not None and first > 0:
                groups.setdefault(first, []).append(object_id)
        for first in sorted(groups):
            # Fresh identity state: the backward pass is conditioned on the first-frame prompt.
            objects = [
                TrackedObject(i, self.layers[i].record.label, self.layers[i].first_mask, self.layers[i].first_quality)
                for i in groups[first]
            ]
            for win in backward_windows(first, self.params.window):
                active = self._run_window(BACKWARD, range(win[0], win[1], -1), objects, prompt_first=False)
                objects = [o for o in active if o.mask.any()]
                if not objects:
                    break

    def result(self) -> TrackingResult:
        layers = []
        for object_id in sorted(self.layers):
            rec = self.layers[object_id].record
            rec.prompt_frames = sorted(set(rec.prompt_frames))
            layers.append(rec)
        return TrackingResult(layers=layers, decisions=self.rows, tracker_calls=dict(sorted(self.calls.items())))


def track_shot(
    n_frames: int,
    load_frames: Callable[[int, int], np.ndarray],
    frame_masks: FrameMaskSource,
    tracker: Tracker,
    params: TrackSettings,
    sink: LayerSink,
    progress: Callable[[int], None] | None = None,
) -> TrackingResult:
    """Track every object over the shot: forward windows, then the backward pass.

    load_frames(start, stop) returns frames (stop-start, H, W, 3) uint8 for global frames
    start..stop-1 and is never asked for more than `params.window` frames. Layer masks go
    to `sink` (non-empty ones only). `progress(k)` is called with the number of frames
    just produced (an increment; the backward pass counts too).
    """
    if int(n_frames) != n_frames or n_frames < 0:
        raise ValueError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    driver = _Driver(int(n_frames), load_frames, frame_masks, tracker, params, sink, progress)
    driver.forward()
    driver.backward()
    return driver.result()


@dataclass
class PromptedLayer:
    """A layer re-tracked around artist prompts. `prompts` holds every prompt of the
    layer ({frame index: mask}: its automatic ones and the artist's), `artist` the
    frames the artist drew or clicked on."""

    layer_id: int
    label: str
    prompts: dict[int, np.ndarray]
    artist: frozenset[int] = frozenset()
    origin: str = "correction"


ARTIST_QUALITY = 1.0  # an artist's mask is never replaced by an automatic one (ε rule)


def correction_reach(prompts: list[int], artist: frozenset[int], n_frames: int) -> dict[int, tuple[int, int]]:
    """For each artist prompt a, the frames [lo, hi] it re-tracks: backward to half way
    to the previous prompt (to the shot start if none), forward up to the next prompt
    (or half way, when that one is an artist's too, which then takes the rest
    backward). Frames outside every reach keep their stored result."""
    frames = sorted(prompts)
    reach = {}
    for i, a in enumerate(frames):
        if a not in artist:
            continue
        prev = frames[i - 1] if i > 0 else None
        nxt = frames[i + 1] if i + 1 < len(frames) else None
        lo = 0 if prev is None else (prev + a) // 2 + 1
        if nxt is None:
            hi = n_frames - 1
        else:
            hi = (a + nxt) // 2 if nxt in artist else nxt - 1
        reach[a] = (lo, hi)
    return reach


def track_from_prompts(
    n_frames: int,
    load_frames: Callable[[int, int], np.ndarray],
    frame_masks: FrameMaskSource,
    tracker: Tracker,
    params: TrackSettings,
    sink: LayerSink,
    layers: list[PromptedLayer],
    progress: Callable[[int], None] | None = None,
) -> TrackingResult:
    """Re-track `layers` around their artist prompts, as the paper's artists feed masks
    to the tracker: from each artist prompt backward and forward over its
    `correction_reach`; the prompt frame outputs the artist's mask exactly. Inside the
    windows the layer is matched to the per-frame masks like any object (no new objects
    start), but with the artist's mask cached at quality 1.0 the ε rule keeps it.

    Only frames inside a reach are written; the caller keeps every other frame (and
    every other layer) as stored. One object per session, so tracker work is
    proportional to the frames the corrections reach."""
    driver = _Driver(int(n_frames), load_frames, frame_masks, tracker, params, sink, progress)
    for layer in sorted(layers, key=lambda la: la.layer_id):
        frames = sorted(layer.prompts)
        if any(not 0 <= f < n_frames for f in frames):
            raise ValueError(f"layer {layer.layer_id}: prompt frames {frames} outside 0..{n_frames - 1}")
        artist = frozenset(layer.artist) if layer.artist else frozenset(frames)
        driver.layers[layer.layer_id] = _Layer(
            LayerRecord(layer.layer_id, layer.label, None, None, list(frames), layer.origin),
            layer.prompts[frames[0]], ARTIST_QUALITY,
        )

        def seed(frame: int, layer: PromptedLayer = layer) -> TrackedObject:
            return TrackedObject(layer.layer_id, layer.label, np.asarray(layer.prompts[frame], bool), ARTIST_QUALITY)

        for a, (lo, hi) in sorted(correction_reach(frames, artist, n_frames).items()):
            driver._write([seed(a)], a)  # as drawn
            objects = [seed(a)]
            for start, stop in backward_windows(a - lo, params.window) if a > lo else []:
                window = range(start + lo, stop + lo, -1)
                if len(window) < 2:
                    break
                active = driver._run_window(CORRECTION, window, objects, prompt_first=False)
                objects = [o for o in active if o.mask.any()]
                if not objects:
                    break
            objects = [seed(a)]
            for start, stop in forward_windows(hi - a + 1, params.window) if hi > a else []:
                if stop - start < 2:
                    break
                active = driver._run_window(CORRECTION, range(a + start, a + stop), objects, prompt_first=False)
                objects = [o for o in active if o.mask.any()]
                if not objects:
                    break
    return driver.result()
