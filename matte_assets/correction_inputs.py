"""Which artist corrections feed which stage, and their data version (no Dagster
import: the run planner needs this on every `matte run` / `matte status`)."""

from __future__ import annotations

# Masks, clicks and new layers re-track; drops and merges only re-filter. One file,
# two sources, so Dagster marks exactly that stage.
CORRECTION_STAGES = ("tracked_layers", "filtered_layers")


def corrections_version(project, shot_key: str, stage: str) -> str:
    from .config import split_shot_ref
    from .corrections import load_corrections

    corrections = load_corrections(project, *split_shot_ref(shot_key))
    value = corrections.tracking_digest() if stage == "tracked_layers" else corrections.filter_digest()
    return value or "none"
