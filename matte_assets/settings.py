"""Stage settings declared once: the show file's `track:` / `filter:` sections are
parsed into these models (matte_assets/config.py) and the algorithms take the same
objects (algorithms/tracking.py, algorithms/layer_filter.py). Plain pydantic, no
Dagster: the algorithms import it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackSettings(_Strict):
    window: int = Field(20, ge=2, le=10000)
    prompt_step: int = Field(5, ge=1)
    # The show file's default depends on the tracker (config.IDENTITY_IOU_DEFAULTS: 0.8
    # for the embedded flow tracker); 0.9 is the paper's value for SAM2-like trackers.
    identity_iou: float = Field(0.9, gt=0.0, le=1.0)
    epsilon: float = Field(0.1, ge=0.0, le=1.0)


class FilterSettings(_Strict):
    sim_false_positive: float = Field(0.1, gt=0.0, le=1.0)
    sim_false_positive_count: int = Field(2, ge=1)
    sim_merge: float = Field(0.6, gt=0.0, le=1.0)
    duplicate_iou: float = Field(0.9, gt=0.0, le=1.0)
    # Stitching time-disjoint fragments of one object (docs/quality.md, "Stitching";
    # algorithms/stitching.py, checked again there by StitchParams).
    stitch_max_gap: int = Field(30, ge=0)  # 0: no stitching
    stitch_max_overlap: int = Field(2, ge=0)
    stitch_similarity: float = Field(0.6, ge=0.0, le=1.0)
    stitch_motion: float = Field(1.5, gt=0.0)
