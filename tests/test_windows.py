"""Windows overlap by exactly one frame, forward and backward."""

from __future__ import annotations

import pytest

from matte_assets.algorithms.windows import (
    backward_windows,
    forward_windows,
    is_prompt_frame,
    window_frames,
)


def test_forward_example_from_the_spec() -> None:
    assert forward_windows(45, 20) == [(0, 20), (19, 39), (38, 45)]


@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 39, 40, 100])
@pytest.mark.parametrize("window", [2, 3, 20])
def test_forward_covers_every_frame_once_after_the_seed(n: int, window: int) -> None:
    wins = forward_windows(n, window)
    assert wins[0][0] == 0 and wins[-1][1] == n
    for (a0, a1), (b0, b1) in zip(wins, wins[1:]):
        assert b0 == a1 - 1  # first frame of the next window = last of the previous
        assert b1 - b0 >= 2  # no window holding only its seed frame
    assert all(stop - start <= window for start, stop in wins)
    produced = [f for k, (s, e) in enumerate(wins) for f in range(s if k == 0 else s + 1, e)]
    assert produced == list(range(n))


def test_forward_edges() -> None:
    assert forward_windows(0, 20) == []
    assert forward_windows(20, 20) == [(0, 20)]
    assert forward_windows(21, 20) == [(0, 20), (19, 21)]


def test_backward_mirrors_forward() -> None:
    assert backward_windows(45, 20) == [(45, 25), (26, 6), (7, -1)]
    frames = [list(window_frames(w)) for w in backward_windows(45, 20)]
    assert frames[0][0] == 45 and frames[0][-1] == 26 and frames[1][0] == 26
    assert frames[-1][-1] == 0
    assert all(len(f) <= 20 for f in frames)
    assert backward_windows(3, 20) == [(3, -1)]
    assert backward_windows(0, 20) == []


def test_prompt_frames() -> None:
    assert [f for f in range(12) if is_prompt_frame(f, 5)] == [0, 5, 10]
    assert all(is_prompt_frame(f, 1) for f in range(5))


def test_validation_names_the_value() -> None:
    with pytest.raises(ValueError, match="window.*1"):
        forward_windows(10, 1)
    with pytest.raises(ValueError, match="window"):
        backward_windows(10, 0)
    with pytest.raises(ValueError, match="prompt_step.*0"):
        is_prompt_frame(3, 0)
    with pytest.raises(ValueError, match="n_frames"):
        forward_windows(-1, 5)
