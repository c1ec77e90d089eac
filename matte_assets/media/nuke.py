"""A small Nuke script beside every delivered version: a Read of the version's EXR
sequence (frame range, format incl. pixel aspect) and one Shuffle per layer that puts
the layer's alpha into rgba, named after the layer, so each matte is its own stream.

The Read's path is relative to the script (`[file dirname [value root.name]]`), so the
version folder can be moved or copied to another site and still opens. Nuke names an
EXR channel `moving1.A` as layer `moving1`, channel `moving1.alpha`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def _quote(text: str) -> str:
    """A Tcl word in double quotes (Nuke's script syntax)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("[", "\\[").replace("]", "\\]")
    return f'"{escaped}"'


def format_line(width: int, height: int, pixel_aspect: float, name: str) -> str:
    """Nuke's format knob: "W H x y r t pixel_aspect name" (image area = whole format)."""
    return f"{width} {height} 0 0 {width} {height} {pixel_aspect:g} {name}"


def nuke_script(
    *,
    sequence: str,
    first: int,
    last: int,
    display_window: tuple[int, int, int, int],
    pixel_aspect: float,
    layers: list[str],
    format_name: str,
) -> str:
    """The script's text. `sequence` is the file name pattern with `%0Nd` for the frame."""
    x0, y0, x1, y1 = display_window
    width, height = x1 - x0 + 1, y1 - y0 + 1
    fmt = format_line(width, height, pixel_aspect, format_name)
    out = [
        "#! nuke script written by matte-pipeline",
        "version 13.0",
        "Root {",
        " inputs 0",
        f" first_frame {first}",
        f" last_frame {last}",
        f" format {_quote(fmt)}",
        "}",
        "Read {",
        " inputs 0",
        " file_type exr",
        ' file "\\[file dirname \\[value root.name]]/' + sequence + '"',
        f" format {_quote(fmt)}",
        f" first {first}",
        f" last {last}",
        f" origfirst {first}",
        f" origlast {last}",
        " origset true",
        " raw true",  # mattes are data: no colourspace conversion on read
        " on_error black",
        " name Read_mattes",
        " xpos 0",
        " ypos 0",
        "}",
    ]
    # The Read stays on the stack: the first Shuffle takes it, later ones push it again.
    for k, layer in enumerate(layers):
        out += [
            "set Nread [stack 0]" if k == 0 else "push $Nread",
            "Shuffle {",
            f" in {layer}",
            " red alpha",
            " green alpha",
            " blue alpha",
            " alpha alpha",
            f" name {layer}",
            f" label {_quote(layer + '.A')}",
            f" xpos {k * 110}",
            " ypos 120",
            "}",
        ]
    return "\n".join(out) + "\n"


def write_nuke_script(path: Path, **kwargs) -> Path:
    """Write the script atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(nuke_script(**kwargs), encoding="utf-8")
    os.replace(tmp, path)
    return path
