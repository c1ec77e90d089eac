"""`matte sweep`: a grid of filter settings evaluated on the stored tracked layers.

Only the filtering reruns, never a model stage. Each point's decisions come from the
whole-shot overlap statistics `tracked_layers` stores (`filtered_layers.filter_layers`:
milliseconds); with a truth, the merged layers of every point are scored in ONE
streaming pass over the tracked masks: each frame's masks are read once and every
distinct plan (many points share one) is merged and scored on them, so memory is one
block of frames and the cost grows with the distinct plans, not the points.

Writes `sweep.png` (every metric against every swept setting), `sweep.md` (the table,
the decisions per point, what was measured) and `sweep.json` into the output folder.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..algorithms.layer_filter import FilterPlan, merge_frame
from ..algorithms.metrics import DAVIS_BOUND_TH, QualityAccumulator, QualityResult
from ..settings import FilterSettings
from ..errors import ConfigError, MatteError
from ..stages.stage_data import LayersData, frame_blocks

FILTER_PREFIX = "filter."


def parse_sets(items: list[str]) -> dict[str, list[Any]]:
    """`filter.KEY=v1,v2,...` (repeatable) -> {KEY: [values]} validated against the filter
    settings (`settings.FilterSettings`): unknown keys and bad values are errors naming
    the key. Values keep the given order; duplicates are dropped."""
    if not items:
        raise ConfigError("--set: give at least one filter.KEY=v1,v2,... to sweep")
    known = list(FilterSettings.model_fields)
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected filter.KEY=v1,v2,... (keys: {', '.join(FILTER_PREFIX + k for k in known)})")
        dotted, _, raw = item.partition("=")
        dotted = dotted.strip()
        if not dotted.startswith(FILTER_PREFIX) or dotted[len(FILTER_PREFIX):] not in known:
            raise ConfigError(
                f"--set {dotted}: not a filter setting; a sweep reruns filtering only (keys: "
                f"{', '.join(FILTER_PREFIX + k for k in known)})"
            )
        key = dotted[len(FILTER_PREFIX):]
        if key in grid:
            raise ConfigError(f"--set {dotted}: given twice; list all its values in one --set")
        values: list[Any] = []
        for text in (v.strip() for v in raw.split(",")):
            if not text:
                raise ConfigError(f"--set {dotted}: empty value in {raw!r}")
            try:
                value = getattr(FilterSettings.model_validate({key: text}), key)
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise ConfigError(f"--set {dotted}={text}: {reason}") from None
            if value not in values:
                values.append(value)
        grid[key] = values
    return grid


def grid_points(base: dict[str, Any], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the swept values, the other settings from `base`."""
    keys = list(grid)
    return [{**base, **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass
class SweepRow:
    settings: dict[str, Any]  # the full filter settings of the point
    kept: int
    dropped: int
    merged: int
    kept_layers: list[str]  # "moving1(1+4)": kept id with its members
    decide_ms: float  # time to decide this point's plan from the stored statistics
    plan_key: int  # index of the distinct plan this point shares
    quality: QualityResult | None = None

    def as_dict(self, swept: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {k: self.settings[k] for k in swept}
        out.update(kept=self.kept, dropped=self.dropped, merged=self.merged, kept_layers=self.kept_layers,
                   decide_ms=round(self.decide_ms, 3))
        if self.quality is not None:
            q = self.quality
            out.update(j=round(q.mean_j, 6), f=round(q.mean_f, 6), switches=q.total_switches,
                       layer_precision=round(q.layer_precision, 6), object_recall=round(q.object_recall, 6))
        return out


@dataclass
class SweepResult:
    swept: list[str]
    base: dict[str, Any]
    rows: list[SweepRow]
    tracked_version: str
    n_layers: int
    n_frames: int
    distinct_plans: int
    decide_seconds: float  # all points' decisions
    score_seconds: float  # the one shared scoring pass (0 without truth)
    objects: list[str] = field(default_factory=list)
    truth: str | None = None

    @property
    def per_point_seconds(self) -> float:
        return (self.decide_seconds + self.score_seconds) / max(1, len(self.rows))

    def as_dict(self) -> dict[str, Any]:
        return {
            "swept": self.swept, "base": self.base, "tracked_layers_version": self.tracked_version,
            "tracked_layers": self.n_layers, "frames": self.n_frames, "truth": self.truth, "objects": self.objects,
            "points": [r.as_dict(self.swept) for r in self.rows], "distinct_plans": self.distinct_plans,
            "decide_seconds": round(self.decide_seconds, 6), "score_seconds": round(self.score_seconds, 6),
            "per_point_seconds": round(self.per_point_seconds, 6),
        }

    def table(self) -> str:
        cols = [*self.swept, "kept", "dropped", "merged"] + (["J", "F", "switches"] if self.truth else []) + ["kept layers"]
        lines = ["  ".join(f"{c:>{max(len(c), 8)}}" if c != "kept layers" else c for c in cols)]
        for r in self.rows:
            cells = [f"{_fmt(r.settings[k]):>{max(len(k), 8)}}" for k in self.swept]
            cells += [f"{r.kept:>8}", f"{r.dropped:>8}", f"{r.merged:>8}"]
            if self.truth and r.quality is not None:
                cells += [f"{r.quality.mean_j:>8.3f}", f"{r.quality.mean_f:>8.3f}", f"{r.quality.total_switches:>8}"]
            cells.append(", ".join(r.kept_layers) or "(none)")
            lines.append("  ".join(cells))
        lines.append(
            f"{len(self.rows)} points, {self.distinct_plans} distinct plans over {self.n_layers} tracked layers x "
            f"{self.n_frames} frames: decisions {1000 * self.decide_seconds:.1f} ms"
            + (f", scoring {self.score_seconds:.2f} s (one pass)" if self.truth else "")
            + f"; {1000 * self.per_point_seconds:.1f} ms per point"
        )
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plan_signature(plan: FilterPlan) -> tuple:
    return tuple((k, tuple(plan.members[k])) for k in plan.kept)


def run_sweep(
    tracked: LayersData,
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    *,
    truth_dir: Path | None = None,
    frame_numbers: list[int] | None = None,
    artist: tuple[list[int], dict[int, int]] | None = None,
    bound_th: float = DAVIS_BOUND_TH,
) -> SweepResult:
    """Decide every grid point's plan on `tracked` (with the artist's drops and merges,
    `artist` = (drops, {layer: into}), as the stage applies them) and, given a truth,
    score every distinct plan in one pass."""
    from ..stages.filter_plan import decide_with_corrections, layer_names

    points = grid_points(base, grid)
    ids = tracked.layer_ids
    labels = dict(zip(ids, tracked.table["label"]))
    first = dict(zip(ids, (int(f) for f in tracked.table["first_frame"])))
    plans: list[FilterPlan] = []
    signature_index: dict[tuple, int] = {}
    rows: list[SweepRow] = []
    started = time.perf_counter()
    drops, merges = artist or ([], {})
    for settings in points:
        t0 = time.perf_counter()
        # As the filtered_layers stage: artist drops leave before the rules, merges after.
        try:
            plan = decide_with_corrections(tracked, FilterSettings(**settings), drops, merges)
        except ValueError as exc:
            raise MatteError(f"artist corrections: {exc}") from None
        decide_ms = 1000 * (time.perf_counter() - t0)
        sig = _plan_signature(plan)
        if sig not in signature_index:
            signature_index[sig] = len(plans)
            plans.append(plan)
        actions = [row.action for row in plan.rows]
        # Named as the stage names them: by label, in order of the merged layer's first
        # frame (the earliest of its members').
        starts = [min((first[m] for m in plan.members[k] if first[m] >= 0), default=-1) for k in plan.kept]
        names = layer_names([labels[k] for k in plan.kept], starts)
        kept_layers = [
            f"{name}({'+'.join(map(str, plan.members[k]))})" for name, k in zip(names, plan.kept)
        ]
        rows.append(SweepRow(settings, len(plan.kept), actions.count("drop"), actions.count("merge"), kept_layers,
                             decide_ms, signature_index[sig]))
    decide_seconds = time.perf_counter() - started

    objects: list[str] = []
    score_seconds = 0.0
    if truth_dir is not None:
        if frame_numbers is None or len(frame_numbers) != tracked.n_frames:
            raise MatteError("scoring a sweep needs the plate's frame numbers, one per stored frame")
        t0 = time.perf_counter()
        objects, results = score_plans(tracked, plans, Path(truth_dir), frame_numbers, bound_th)
        score_seconds = time.perf_counter() - t0
        for row in rows:
            row.quality = results[row.plan_key]
    return SweepResult(
        swept=list(grid), base=dict(base), rows=rows, tracked_version=str(tracked.record.get("version", "")),
        n_layers=len(ids), n_frames=tracked.n_frames, distinct_plans=len(plans), decide_seconds=decide_seconds,
        score_seconds=score_seconds, objects=objects, truth=str(truth_dir) if truth_dir is not None else None,
    )


def score_plans(
    tracked: LayersData, plans: list[FilterPlan], truth_dir: Path, frame_numbers: list[int], bound_th: float = DAVIS_BOUND_TH
) -> tuple[list[str], list[QualityResult]]:
    """J, F, switches of every plan's merged layers against the truth (reduced to plate
    resolution), reading each frame's tracked masks and truth once for all plans."""
    from .evaluation import _scored_frames, _truth_stack, load_truth

    truth = load_truth(truth_dir)
    objects = sorted(truth)
    scored = set(_scored_frames(list(frame_numbers), truth, truth_dir))
    ids = tracked.layer_ids
    index_of = {lid: k for k, lid in enumerate(ids)}
    width, height = tracked.size
    accs = [QualityAccumulator(len(objects), len(p.kept), bound_th=bound_th) for p in plans]
    for start, stop in frame_blocks(tracked.n_frames, len(ids), height, width):
        wanted = [i for i in range(start, stop) if frame_numbers[i] in scored]
        if not wanted:
            continue
        block = tracked.masks_block(start, stop, ids)
        for i in wanted:
            gt = _truth_stack(truth, objects, frame_numbers[i], (width, height))
            masks = block[:, i - start]
            for plan, acc in zip(plans, accs):
                acc.add_frame(gt, merge_frame(masks, plan, index_of), frame_numbers[i])
    return objects, [acc.result() for acc in accs]


# --- report -----------------------------------------------------------------------------


def write_report(result: SweepResult, out: Path, title: str) -> dict[str, Path]:
    """sweep.png, sweep.md and sweep.json into `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plot": out / "sweep.png", "report": out / "sweep.md", "json": out / "sweep.json"}
    plot_sweep(result, paths["plot"], title)
    paths["json"].write_text(json.dumps(result.as_dict(), indent=2))
    paths["report"].write_text(markdown_report(result, title))
    return paths


def plot_sweep(result: SweepResult, path: Path, title: str) -> None:
    """One column per swept setting; rows: layer counts (kept / dropped / merged) and,
    with a truth, J and F. Colour = metric; with several swept settings each
    combination of the other settings is one line style (legend when few)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    metrics: list[list[tuple[str, str, str]]] = [[("kept", "kept", "C0"), ("dropped", "dropped", "C3"), ("merged", "merged", "C2")]]
    if result.truth:
        metrics.append([("J", "mean_j", "C0"), ("F", "mean_f", "C1")])
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "P"), (":", "X"), ("-.", "*")]
    ncols = len(result.swept)
    fig, axes = plt.subplots(len(metrics), ncols, figsize=(4.6 * ncols, 3.1 * len(metrics)), squeeze=False)
    for c, key in enumerate(result.swept):
        others = [k for k in result.swept if k != key]
        groups: dict[tuple, list[SweepRow]] = {}
        for row in result.rows:
            groups.setdefault(tuple(row.settings[k] for k in others), []).append(row)
        for r, row_metrics in enumerate(metrics):
            ax = axes[r][c]
            for g, rows in enumerate(groups.values()):
                rows = sorted(rows, key=lambda x: x.settings[key])
                xs = [x.settings[key] for x in rows]
                line, marker = styles[g % len(styles)]
                for _, attr, colour in row_metrics:
                    source = (lambda x: x.quality) if r == 1 else (lambda x: x)
                    ys = [getattr(source(x), attr) for x in rows]
                    ax.plot(xs, ys, linestyle=line, marker=marker, color=colour, alpha=0.8, markersize=5)
            handles = [Line2D([], [], color=colour, marker="o", label=label) for label, _, colour in row_metrics]
            if len(groups) > 1 and len(groups) <= len(styles):
                for g, combo in enumerate(groups):
                    line, marker = styles[g]
                    label = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(others, combo))
                    handles.append(Line2D([], [], color="0.4", linestyle=line, marker=marker, label=label))
            ax.legend(handles=handles, fontsize=7)
            ax.set_xlabel(f"filter.{key}")
            ax.set_ylabel("layers" if r == 0 else "score")
            if r == 0:
                ax.yaxis.get_major_locator().set_params(integer=True)
            else:
                ax.set_ylim(-0.02, 1.02)
            ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_report(result: SweepResult, title: str) -> str:
    head = [*result.swept, "kept", "dropped", "merged"] + (["J", "F", "switches", "precision", "recall"] if result.truth else []) + ["kept layers (members)"]
    lines = [
        f"# {title}",
        "",
        "![sweep](sweep.png)",
        "",
        f"Tracked layers: version `{result.tracked_version}` ({result.n_layers} layers, {result.n_frames} frames). "
        f"Base filter settings: {', '.join(f'{k}={_fmt(v)}' for k, v in result.base.items())}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in result.rows:
        cells = [_fmt(r.settings[k]) for k in result.swept] + [str(r.kept), str(r.dropped), str(r.merged)]
        if result.truth and r.quality is not None:
            q = r.quality
            cells += [f"{q.mean_j:.3f}", f"{q.mean_f:.3f}", str(q.total_switches), f"{q.layer_precision:.2f}", f"{q.object_recall:.2f}"]
        cells.append(", ".join(r.kept_layers) or "(none)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Cost: {len(result.rows)} points, {result.distinct_plans} distinct plans. Decisions from the stored overlap "
        f"statistics: {1000 * result.decide_seconds:.1f} ms in all "
        f"({1000 * result.decide_seconds / max(1, len(result.rows)):.2f} ms per point)"
        + (
            f"; scoring against `{result.truth}` ({', '.join(result.objects)}): {result.score_seconds:.2f} s for one pass "
            f"over the tracked masks shared by all plans"
            if result.truth else ""
        )
        + f". Per point: {1000 * result.per_point_seconds:.1f} ms. No model stage was run.",
    ]
    if result.truth:
        lines += ["", "J, F: DAVIS region and boundary measures at plate resolution, objects matched one-to-one to the merged layers."]
    return "\n".join(lines) + "\n"


def default_out(project_root: Path, show: str, shot: str) -> Path:
    """`<project>/reports/<SHOW>/<SHOT>/sweep-<YYYYmmdd-HHMMSS>` (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = project_root / "reports" / show / shot / f"sweep-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out
