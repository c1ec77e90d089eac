"""Image sequences: frame patterns, frame discovery and reading single frames.

Patterns name one frame token in the file name:
  `name.####.exr`  count of `#` = zero padding
  `name.%04d.png`  printf style, `%d` = no padding
  `name.@@@@.jpg`  count of `@` = zero padding; a single `@` = any padding, detected
                   from the files on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from matte_assets.errors import PlateError
from matte_assets.media.exr import window_size

# Frames are decoded by OpenImageIO (media/image_read.py); re-exported for callers.
from matte_assets.media.image_read import LoadedImage, read_image  # noqa: F401

Window = tuple[int, int, int, int]

_TOKEN = re.compile(r"#+|@+|%(?:0(\d+))?d")
_MAX_LISTED_GAPS = 20


@dataclass(frozen=True)
class FramePattern:
    """A parsed frame pattern. `padding` is the zero-padded width of the frame number
    (0 = unpadded); None means "any", to be detected from the files on disk."""

    pattern: str
    folder: Path
    prefix: str
    suffix: str
    padding: int | None

    def path_for(self, frame: int) -> Path:
        if self.padding is None:
            raise PlateError(f"{self.pattern}: padding unknown until frames are discovered on disk")
        return self.folder / f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"

    def glob(self) -> str:
        """A glob (relative to `folder`) matching a superset of the frame files."""
        return f"{_glob_escape(self.prefix)}[0-9]*{_glob_escape(self.suffix)}"

    @property
    def regex(self) -> re.Pattern[str]:
        """Matches a file name; group 1 is the frame number's digits."""
        return re.compile(re.escape(self.prefix) + r"([0-9]+)" + re.escape(self.suffix) + r"\Z")

    def frame_of(self, name: str) -> int | None:
        """The frame number a file name stands for, or None if it is not one of ours
        (wrong prefix/suffix, or digits not written with this pattern's padding)."""
        m = self.regex.match(name)
        if m is None:
            return None
        digits = m.group(1)
        if self.padding is not None and f"{int(digits):0{self.padding}d}" != digits:
            return None
        return int(digits)

    def with_padding(self, padding: int) -> FramePattern:
        return replace(self, padding=padding)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def parse_pattern(pattern: str | os.PathLike) -> FramePattern:
    """Parse a frame pattern: exactly one frame token, in the file name (the folder
    part is taken literally, so `@` or `#` there are not tokens)."""
    pattern = str(pattern)
    path = Path(pattern)
    tokens = list(_TOKEN.finditer(path.name))
    if len(tokens) != 1:
        raise PlateError(
            f"plate pattern {pattern!r} must have exactly one frame token "
            "(####, %04d or @) in the file name"
        )
    tok = tokens[0]
    text = tok.group(0)
    if text[0] == "#":
        padding: int | None = len(text)
    elif text[0] == "@":
        padding = None if len(text) == 1 else len(text)
    else:
        padding = int(tok.group(1)) if tok.group(1) else 0
    return FramePattern(
        pattern=pattern,
        folder=path.parent,
        prefix=path.name[: tok.start()],
        suffix=path.name[tok.end():],
        padding=padding,
    )


def compact_ranges(frames: list[int]) -> str:
    """[1004, 1005, 1006, 1010] -> "1004-1006, 1010" (long lists are truncated)."""
    runs: list[tuple[int, int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:_MAX_LISTED_GAPS]]
    if len(runs) > _MAX_LISTED_GAPS:
        parts.append(f"... ({len(frames)} frames in all)")
    return ", ".join(parts)


def _detect_padding(fp: FramePattern, names: dict[str, str]) -> int:
    """Padding for a single-`@` pattern from the digit strings found on disk."""
    zero_padded = {len(d) for d in names.values() if len(d) > 1 and d.startswith("0")}
    if len(zero_padded) > 1:
        raise PlateError(f"{fp.pattern}: files use different paddings {sorted(zero_padded)} in {fp.folder}")
    padding = zero_padded.pop() if zero_padded else min(len(d) for d in names.values())
    odd = [n for n, d in names.items() if f"{int(d):0{padding}d}" != d]
    if odd:
        raise PlateError(f"{fp.pattern}: {odd[0]} does not use the {padding}-digit padding of the others")
    return padding


def _scan(fp: FramePattern) -> tuple[FramePattern, dict[str, str]]:
    """Files in the pattern's folder that look like frames ({name: digits}), and the
    pattern with its padding detected from them when it was "any"."""
    if not fp.folder.is_dir():
        raise PlateError(f"no folder {fp.folder} for plate {fp.pattern}")
    candidates = {}
    for entry in os.scandir(fp.folder):
        m = fp.regex.match(entry.name)
        if m is not None and entry.is_file():
            candidates[entry.name] = m.group(1)
    if not candidates:
        raise PlateError(f"no files match plate {fp.pattern} in {fp.folder}")
    if fp.padding is None:
        fp = fp.with_padding(_detect_padding(fp, candidates))
    return fp, candidates


def resolve_pattern(pattern: str | os.PathLike | FramePattern) -> FramePattern:
    """The parsed pattern with a concrete padding (a single `@` is detected from disk)."""
    fp = pattern if isinstance(pattern, FramePattern) else parse_pattern(pattern)
    return fp if fp.padding is not None else _scan(fp)[0]


def discover_frames(
    pattern: str | os.PathLike | FramePattern, frames: tuple[int, int] | None = None
) -> list[tuple[int, Path]]:
    """The (frame, path) pairs of a sequence, sorted by frame.

    Without `frames` the sequence is every matching file and must have no gaps;
    with `frames=(first, last)` every frame of that inclusive range must exist and
    only those are returned."""
    fp = pattern if isinstance(pattern, FramePattern) else parse_pattern(pattern)
    fp, candidates = _scan(fp)
    found: dict[int, Path] = {}
    for name in sorted(candidates):
        frame = fp.frame_of(name)
        if frame is not None:
            found[frame] = fp.folder / name
    if not found:
        raise PlateError(f"no files match plate {fp.pattern} with padding {fp.padding} in {fp.folder}")

    if frames is not None:
        first, last = int(frames[0]), int(frames[1])
        if first > last:
            raise PlateError(f"{fp.pattern}: frame range {first}-{last} is empty")
    else:
        first, last = min(found), max(found)
    missing = [f for f in range(first, last + 1) if f not in found]
    if missing:
        raise PlateError(f"missing frames {compact_ranges(missing)} of {fp.pattern}")
    return [(f, found[f]) for f in range(first, last + 1)]


def hash_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                digest.update(chunk)
    except OSError as exc:
        raise PlateError(f"{path}: cannot read for hashing ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def _size_text(window: Window) -> str:
    w, h = window_size(window)
    return f"{w}x{h}"


def check_consistent(images_meta: list[tuple[Path, Window, Window]]) -> None:
    """Raise PlateError naming the first frame whose (data_window, display_window)
    differs from the first frame's. Each item is (path, data_window, display_window)."""
    if not images_meta:
        return
    first_path, first_data, first_display = images_meta[0]
    for path, data, display in images_meta[1:]:
        if tuple(display) != tuple(first_display):
            if _size_text(display) != _size_text(first_display):
                raise PlateError(
                    f"mixed resolutions: {first_path} is {_size_text(first_display)}, "
                    f"{path} is {_size_text(display)}"
                )
            raise PlateError(
                f"mixed display windows: {first_path} has {tuple(first_display)}, {path} has {tuple(display)}"
            )
        if tuple(data) != tuple(first_data):
            raise PlateError(
                f"mixed data windows: {first_path} has {tuple(first_data)} ({_size_text(first_data)}), "
                f"{path} has {tuple(data)} ({_size_text(data)})"
            )
