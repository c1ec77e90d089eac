"""Tracking windows (spec §3 "Tracking in windows").

Consecutive windows overlap by one frame: the first frame of window k+1 is the last
frame of window k. That frame was already produced by window k and seeds window k+1's
tracker session, so every frame after the first is produced exactly once while each
session holds at most `window` frames (memory bounded by the window, not the shot).
"""

from __future__ import annotations


def _check_window(window: int) -> None:
    if int(window) != window or window < 2:
        # One-frame windows would hold only the seed frame and never advance.
        raise ValueError(f"window must be an integer >= 2, got {window!r}")


def forward_windows(n_frames: int, window: int) -> list[tuple[int, int]]:
    """Windows [start, stop) over frames 0..n_frames-1, at most `window` frames each,
    overlapping by one frame. n=45, window=20 -> (0,20), (19,39), (38,45)."""
    _check_window(window)
    if int(n_frames) != n_frames or n_frames < 0:
        raise ValueError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    out: list[tuple[int, int]] = []
    if n_frames == 0:
        return out
    start = 0
    while True:
        stop = min(start + window, n_frames)
        out.append((start, stop))
        if stop >= n_frames:
            return out
        start = stop - 1


def backward_windows(first_frame: int, window: int) -> list[tuple[int, int]]:
    """Windows from `first_frame` back to frame 0, in tracking order (descending).

    Each window is `(start, stop)` with start > stop, covering the global frames
    `range(start, stop, -1)` (stop exclusive, so the last window ends at stop = -1).
    Window k+1 starts at window k's last frame. first_frame=45, window=20 ->
    (45,25), (26,6), (7,-1): frames 45..26, 26..7, 7..0. first_frame=0 -> [] (nothing
    before it)."""
    _check_window(window)
    if int(first_frame) != first_frame or first_frame < 0:
        raise ValueError(f"first_frame must be an integer >= 0, got {first_frame!r}")
    if first_frame == 0:
        return []
    # Mirror of the forward windows over first_frame+1 frames: local i <-> global f - i.
    return [(first_frame - a, first_frame - b) for a, b in forward_windows(first_frame + 1, window)]


def window_frames(win: tuple[int, int]) -> range:
    """The global frames of a forward (start < stop) or backward (start > stop) window,
    in tracking order."""
    start, stop = win
    return range(start, stop) if start < stop else range(start, stop, -1)


def is_prompt_frame(global_index: int, prompt_step: int) -> bool:
    """True on frames where the tracker is re-prompted: every `prompt_step` frames from 0."""
    if int(prompt_step) != prompt_step or prompt_step < 1:
        raise ValueError(f"prompt_step must be an integer >= 1, got {prompt_step!r}")
    return global_index % prompt_step == 0
