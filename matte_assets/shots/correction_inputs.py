"""Which artist corrections feed which stage, and their data version (no Dagster
import: the run planner needs this on every `matte run` / `matte status`)."""

from __future__ import annotations

from ..stages.specs import SPECS, STAGE_SPECS

# Derived from the stage specs: masks, clicks and new layers re-track; drops and merges
# only re-filter. One file, one source per stage, so Dagster marks exactly that stage.
CORRECTION_STAGES = tuple(s.name for s in STAGE_SPECS if s.corrections is not None)


def corrections_version(project, shot_key: str, stage: str) -> str:
    from ..config import split_shot_ref
    from .corrections import load_corrections

    corrections = load_corrections(project, *split_shot_ref(shot_key))
    value = SPECS[stage].corrections(corrections)
    return value or "none"
