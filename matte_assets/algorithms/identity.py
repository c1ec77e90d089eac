"""The identity rule at a prompt frame (spec §3 "Identity").

At a prompt frame the tracker's current masks are compared with the frame's per-frame
segmentations:

- masks are taken in descending quality (ties: input index), so the best segmentation
  of an object is the one that can re-prompt it;
- a mask is *that* object when IoU ≥ `identity_iou`; the available object with the best
  IoU wins (ties: lowest id); an object is matched by at most one mask per frame;
- a matched object is re-prompted only if the new quality beats its cached prompt
  quality by more than `epsilon` (then the cached quality and mask are replaced);
- an unmatched mask starts a new object (when `allow_new`);
- a mask that matches only objects already claimed in this frame — including objects
  created from an earlier (better) mask of this same frame — is a duplicate detection
  of that object: recorded, but it neither re-prompts nor starts another object;
- empty masks are ignored (recorded with action "empty").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import areas, pairwise_iou

# Actions recorded per input mask.
NEW = "new"  # started a new object
REPROMPT = "reprompt"  # matched an object and replaced its prompt (quality beat cache + ε)
MATCH = "match"  # matched an object, kept its cached prompt
DUPLICATE = "duplicate"  # same object as one already claimed in this frame
UNMATCHED = "unmatched"  # no object and allow_new is False (backward pass)
EMPTY = "empty"  # empty mask, ignored


@dataclass
class TrackedObject:
    """An object as the identity rule sees it: its current tracked mask at the prompt
    frame and the quality of the mask that last prompted it."""

    object_id: int
    label: str
    mask: np.ndarray
    cached_quality: float


@dataclass(frozen=True)
class IdentityDecision:
    """What happened to one input mask, with the values that decided it."""

    mask_index: int  # index into the input masks
    label: str  # the mask's detection label
    quality: float  # the mask's quality
    action: str  # one of NEW, REPROMPT, MATCH, DUPLICATE, UNMATCHED, EMPTY
    object_id: int | None  # the object it is (new or matched); None for UNMATCHED/EMPTY
    iou: float  # IoU with `object_id`; for NEW/UNMATCHED the best IoU with any object (0.0 if none)
    cached_quality: float | None  # the object's cached quality before this decision
    new_cached_quality: float | None  # the object's cached quality after it

    @property
    def prompted(self) -> bool:
        """True when this mask is added to the tracker as a prompt (new or re-prompt)."""
        return self.action in (NEW, REPROMPT)


@dataclass
class IdentityResult:
    decisions: list[IdentityDecision]  # one per input mask, descending quality (ties: index)
    new_objects: list[TrackedObject]  # objects started here, ids ascending
    next_id: int  # the next free object id
    # object id -> index of the mask it is prompted with at this frame (NEW and REPROMPT)
    prompts: dict[int, int] = field(default_factory=dict)

    @property
    def reprompted(self) -> list[int]:
        """Existing object ids re-prompted at this frame, ascending."""
        return sorted(d.object_id for d in self.decisions if d.action == REPROMPT and d.object_id is not None)


def match_prompt_masks(
    tracked: list[TrackedObject],
    masks: np.ndarray,
    qualities: np.ndarray,
    labels: list[str],
    identity_iou: float,
    epsilon: float,
    next_id: int,
    allow_new: bool = True,
) -> IdentityResult:
    """Apply the identity rule to the per-frame `masks` (N, H, W) at one prompt frame.

    `tracked` objects carry their tracked masks at this frame. Re-prompted objects are
    updated IN PLACE (`cached_quality` and `mask` become the new prompt's), so the caller
    keeps one list of objects across prompt frames. New objects are returned, not added to
    `tracked`; their ids are `next_id`, `next_id + 1`, ... in decision order.
    """
    m = np.asarray(masks, dtype=bool)
    q = np.asarray(qualities, dtype=np.float64).reshape(-1)
    n = m.shape[0] if m.ndim == 3 else -1
    if m.ndim != 3 or q.shape[0] != n or len(labels) != n:
        raise ValueError(
            f"masks (N, H, W), qualities (N,) and labels must agree: got masks {m.shape}, "
            f"qualities {q.shape}, {len(labels)} labels"
        )
    for obj in tracked:
        if obj.mask.shape != m.shape[1:]:
            raise ValueError(f"object {obj.object_id}: mask shape {obj.mask.shape} != frame masks {m.shape[1:]}")

    order = sorted(range(n), key=lambda i: (-float(q[i]), i))
    mask_area = areas(m) if n else np.zeros(0, np.int64)
    # IoU against tracked objects and between masks (for objects started in this frame).
    iou_tracked = (
        pairwise_iou(m, np.stack([o.mask for o in tracked]).astype(bool))
        if n and tracked
        else np.zeros((n, len(tracked)))
    )
    iou_masks = pairwise_iou(m, m) if n else np.zeros((0, 0))

    column = {o.object_id: k for k, o in enumerate(tracked)}
    if len(column) != len(tracked):
        raise ValueError("tracked objects must have distinct ids")
    objects: dict[int, TrackedObject] = dict(zip(column, tracked))  # existing, then new ones
    new_from_mask: dict[int, int] = {}  # object started in this frame -> its mask index
    claimed: set[int] = set()
    decisions: list[IdentityDecision] = []
    new_objects: list[TrackedObject] = []
    prompts: dict[int, int] = {}

    def iou_with(i: int, object_id: int) -> float:
        if object_id in new_from_mask:
            return float(iou_masks[i, new_from_mask[object_id]])
        return float(iou_tracked[i, column[object_id]])

    for i in order:
        qi = float(q[i])
        label = labels[i]
        if mask_area[i] == 0:
            decisions.append(IdentityDecision(i, label, qi, EMPTY, None, 0.0, None, None))
            continue
        # Best IoU wins; ties go to the lowest id for determinism.
        candidates = sorted(((iou_with(i, oid), oid) for oid in objects), key=lambda c: (-c[0], c[1]))
        best_iou = candidates[0][0] if candidates else 0.0
        free = [c for c in candidates if c[0] >= identity_iou and c[1] not in claimed]
        taken = [c for c in candidates if c[0] >= identity_iou and c[1] in claimed]
        if free:
            iou, oid = free[0]
            claimed.add(oid)
            obj = objects[oid]
            before = float(obj.cached_quality)
            if qi > before + epsilon:
                obj.cached_quality = qi
                obj.mask = m[i].copy()
                prompts[oid] = i
                decisions.append(IdentityDecision(i, label, qi, REPROMPT, oid, iou, before, qi))
            else:
                decisions.append(IdentityDecision(i, label, qi, MATCH, oid, iou, before, before))
        elif taken:
            iou, oid = taken[0]
            cached = float(objects[oid].cached_quality)
            decisions.append(IdentityDecision(i, label, qi, DUPLICATE, oid, iou, cached, cached))
        elif allow_new:
            oid = next_id
            next_id += 1
            obj = TrackedObject(oid, label, m[i].copy(), qi)
            objects[oid] = obj
            new_from_mask[oid] = i
            claimed.add(oid)
            new_objects.append(obj)
            prompts[oid] = i
            decisions.append(IdentityDecision(i, label, qi, NEW, oid, best_iou, None, qi))
        else:
            decisions.append(IdentityDecision(i, label, qi, UNMATCHED, None, best_iou, None, None))

    return IdentityResult(decisions=decisions, new_objects=new_objects, next_id=next_id, prompts=prompts)
