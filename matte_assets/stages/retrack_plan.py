"""The re-track plan of `tracked_layers` when artist corrections change: which stored
version may be reused, which layers the artist's prompts name, and every prompt
(automatic and artist) each corrected layer is re-tracked from. Plain logic on stored
results, no Dagster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from io_managers.zarr_store import ZarrStore

from ..algorithms.tracking import LayerRecord, PromptedLayer
from ..shots.corrections import CorrectionError, Corrections
from ..errors import StoreError
from .stage_data import FrameMasksData, LayersData, PlateData


def reusable_previous(store: ZarrStore, shot_key: str, record: dict[str, Any]) -> LayersData | None:
    """The current tracked version, if it was made from the same inputs and settings
    (corrections aside): its uncorrected layers can be copied instead of re-tracked."""
    from io_managers.zarr_io_manager import open_stage

    try:
        head = store.head(shot_key, "tracked_layers")
    except StoreError:  # corrupt HEAD.json: nothing to reuse
        return None
    if head is None or head.get("settings") != record["settings"]:
        return None
    strip = lambda inputs: {k: v for k, v in inputs.items() if k != "corrections"}  # noqa: E731
    if strip(head.get("inputs", {})) != strip(record["inputs"]):
        return None
    try:
        return open_stage(store, shot_key, "tracked_layers")
    except StoreError:  # a damaged current version is recomputed, never copied from
        return None


def records_from(layers: LayersData) -> dict[int, LayerRecord]:
    t = layers.table
    out = {}
    for k, lid in enumerate(layers.layer_ids):
        first, last = int(t["first_frame"][k]), int(t["last_frame"][k])
        out[lid] = LayerRecord(lid, t["label"][k], None if first < 0 else first, None if last < 0 else last,
                               [], t["origin"][k])
    return out


def previous_prompts(previous: LayersData) -> dict[int, dict[int, str]]:
    """The artist prompts a stored tracked version was made with."""
    return Corrections(Path(), list(previous.group.attrs.get("corrections", []))).layer_prompts()


def only_added(before: dict[int, dict[int, str]], now: dict[int, dict[int, str]]) -> bool:
    return all(set(frames.items()) <= set(now.get(lid, {}).items()) for lid, frames in before.items())


def automatic_prompts(decisions: list[dict[str, Any]], layer_id: int) -> dict[int, int]:
    """{frame index: per-frame mask index} where automatic tracking prompted the layer
    (its first detection and every re-prompt), from the stored identity decisions."""
    out: dict[int, int] = {}
    for row in decisions:
        if row.get("object_id") == layer_id and row.get("action") in ("new", "reprompt") and row.get("phase") != "correction":
            out[int(row["frame"])] = int(row["mask_index"])
    return out


def prompted_layers(
    corrections: Corrections,
    plate: PlateData,
    frame_masks: FrameMasksData,
    labels: dict[int, str],
    decisions: list[dict[str, Any]],
    ids: set[int],
) -> list[PromptedLayer]:
    """Each corrected layer with all its prompts: the automatic ones it was tracked
    from, plus the artist's masks (which win on the same frame). An artist's mask is
    one more prompt, as in SAM2's memory, not a replacement of the whole layer: frames
    the artist did not reach keep their automatic anchoring."""
    numbers = plate.frame_numbers
    new = corrections.new_layers()
    layers = []
    for lid, prompts in sorted(corrections.layer_prompts().items()):
        if lid not in ids:
            continue
        if lid not in labels and lid not in new:
            raise CorrectionError(f"{corrections.path}: layer {lid} does not exist (tracked layers: {sorted(labels)})")
        masks = {}
        if lid not in new:
            for index, row in automatic_prompts(decisions, lid).items():
                masks[index] = frame_masks.masks_at(index)[0][row]
        artist = set()
        for frame, name in prompts.items():
            if frame not in numbers:
                raise CorrectionError(f"{corrections.path}: frame {frame} is not in the plate ({numbers[0]}-{numbers[-1]})")
            masks[numbers.index(frame)] = corrections.load_mask(name, plate.size)
            artist.add(numbers.index(frame))
        origin = "artist" if lid in new else "correction"
        layers.append(PromptedLayer(lid, new.get(lid) or labels[lid], masks, frozenset(artist), origin))
    return layers
