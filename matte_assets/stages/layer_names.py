"""Stable delivered layer names: once `moving1` is delivered for an object in a shot, it
means that object in every later version of the shot.

The registry of a shot maps tracked-layer id -> delivered name. It is not a separate
file that could disagree with the deliveries: every delivered version's manifest
records the full registry as it stood when that version was published
(`name_registry`), written with the version and published by the same atomic rename, so
the registry of a shot is the union of its versions' manifests (an older version can
only add entries for ids the newer ones never named again). Naming, at delivery:

- a kept layer whose tracked id has a delivered name keeps it;
- a dropped layer leaves a gap (its name is never given to anything else);
- a merge keeps the surviving layer's name (the survivor is the layer the others are
  merged into; the merged-away layers' names become gaps);
- a layer without a name gets the next number of its label, after every number that
  label has ever used in the shot (`moving4` after moving1-3, even if moving3 was dropped).

On a shot's first delivery this is the order-of-appearance numbering of
`filtered_layers`. The ids are the tracked layers' ids: stable under corrections
(partial reruns copy them, artist layers get ids from 1001); a full retrack with
changed tracking settings may number objects differently."""

from __future__ import annotations

import re
from pathlib import Path

from ..media.delivery import list_versions, read_manifest, version_name

_NAME = re.compile(r"^(.*?)(\d+)$")


def load_registry(shot_dir: Path) -> dict[int, str]:
    """tracked-layer id -> delivered name, from every delivered version of the shot."""
    registry: dict[int, str] = {}
    for number in list_versions(shot_dir):  # oldest first: newer manifests carry the same entries
        try:
            manifest = read_manifest(Path(shot_dir) / version_name(number))
        except Exception:  # a version without a readable manifest names nothing
            continue
        entries = manifest.get("name_registry")
        if entries is None:
            # Versions from before the registry: a layer made of one tracked layer is
            # unambiguous ("moving1": "3"); a merged one does not say which id survived.
            entries = {
                members: name for name, members in (manifest.get("layers") or {}).items()
                if isinstance(members, str) and members.isdigit()
            }
        for lid, name in entries.items():
            registry.setdefault(int(lid), str(name))
    return registry


def base_name(label: str) -> str:
    """Names become EXR channel prefixes, so only [A-Za-z0-9_] survive."""
    return re.sub(r"[^A-Za-z0-9_]", "_", label) or "layer"


def assign_names(
    registry: dict[int, str], kept: list[int], labels: list[str], first_frames: list[int]
) -> tuple[list[str], dict[int, str]]:
    """Delivered names for the kept layers (in `kept` order) and the registry after
    this delivery. New names are handed out in order of first appearance."""
    used_numbers: dict[str, int] = {}
    for name in registry.values():
        m = _NAME.match(name)
        if m:
            used_numbers[m.group(1)] = max(used_numbers.get(m.group(1), 0), int(m.group(2)))
    taken = set(registry.values())
    names = [registry.get(lid, "") for lid in kept]
    order = sorted(range(len(kept)), key=lambda i: (first_frames[i] if first_frames[i] >= 0 else 1 << 30, kept[i]))
    updated = dict(registry)
    for i in order:
        if names[i]:
            continue
        base = base_name(labels[i])
        number = used_numbers.get(base, 0) + 1
        while f"{base}{number}" in taken:  # e.g. a label whose base ends in digits
            number += 1
        names[i] = f"{base}{number}"
        used_numbers[base] = number
        taken.add(names[i])
        updated[kept[i]] = names[i]
    return names, updated


def id_for_name(registry: dict[int, str], name: str) -> int | None:
    for lid, known in registry.items():
        if known == name:
            return lid
    return None
