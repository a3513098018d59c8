"""`summary.json`: every per-item score averaged per method and slice, each with a 95 % interval from a
bootstrap over groups (items of one group move together, as in `spuriverse eval`; within a group slice,
over items). Also cross-method agreement and the sanity check, read back from the saved maps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from spuriverse.diagnose.attribution.files import read_map
from spuriverse.diagnose.attribution.metrics import spearman
from spuriverse.schema import VARIANTS, MetricValue
from spuriverse.schema.attribution import (
    AttributionConfig,
    AttributionRow,
    AttributionSummary,
    AttributionSummaryRow,
    SanityRow,
)

SCORES = ("core_mass", "cue_mass", "core_area", "cue_area", "deletion_auc", "insertion_auc", "infidelity",
          "sensitivity_max")


def mean_ci(values: Sequence[float | None], clusters: Sequence[str], n_boot: int = 1000, seed: int = 0,
            level: float = 0.95) -> MetricValue:
    """Mean of the non-null values with a percentile interval from resampling clusters with replacement."""
    pairs = [(v, c) for v, c in zip(values, clusters) if v is not None and np.isfinite(v)]
    if not pairs:
        return MetricValue(value=None, n=0)
    v = np.array([p[0] for p in pairs], np.float64)
    ids = {c: k for k, c in enumerate(dict.fromkeys(p[1] for p in pairs))}
    cl = np.array([ids[p[1]] for p in pairs])
    sums, counts = np.bincount(cl, v), np.bincount(cl)
    value = float(v.mean())
    if len(ids) < 2 or n_boot <= 0:
        return MetricValue(value=value, n=len(v))
    draw = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    boot = sums[draw].sum(1) / counts[draw].sum(1)
    lo, hi = np.percentile(boot, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return MetricValue(value=value, ci_low=float(lo), ci_high=float(hi), n=len(v))


def _row_scores(r: AttributionRow) -> dict[str, float | None]:
    d: dict[str, float | None] = {k: getattr(r, k) for k in SCORES}
    d["accuracy"] = float(r.correct)
    d["cue_minus_core"] = None if r.cue_mass is None or r.core_mass is None else r.cue_mass - r.core_mass
    for where in ("core", "cue"):
        d[f"pointing_{where}"] = None if r.pointing is None else float(r.pointing in (where, "both"))
    if r.ig_delta is not None and r.score is not None and r.score_baseline is not None:
        d["ig_completeness_error"] = abs(r.ig_delta)
    return d


def _slices(rows: list[AttributionRow]) -> dict[str, list[AttributionRow]]:
    out: dict[str, list[AttributionRow]] = {"all": rows}
    for v in VARIANTS:
        out[f"variant:{v}"] = [r for r in rows if r.variant == v]
    out["correct"] = [r for r in rows if r.correct]
    out["wrong"] = [r for r in rows if not r.correct]
    groups: dict[str, list[AttributionRow]] = defaultdict(list)
    for r in rows:
        groups[r.group_id].append(r)
    out.update({f"group:{g}": rs for g, rs in groups.items() if len(rs) >= 2})
    return {k: v for k, v in out.items() if v}


def summary_rows(rows: list[AttributionRow], methods: Sequence[str], n_boot: int) -> list[AttributionSummaryRow]:
    out = []
    for method in methods:
        mine = [r for r in rows if r.method == method]
        for name, part in _slices(mine).items():
            scored = [_row_scores(r) for r in part]
            clusters = [r.item_id if name.startswith("group:") else r.group_id for r in part]
            keys = dict.fromkeys(k for s in scored for k in s)
            metrics = {k: mean_ci([s.get(k) for s in scored], clusters, n_boot) for k in keys}
            out.append(AttributionSummaryRow(method=method, slice=name, n_items=len(part),
                                             metrics={k: m for k, m in metrics.items() if m.n}))
    return out


def agreement(run_dir: Path, rows: list[AttributionRow], methods: Sequence[str], n_boot: int) -> dict[str, MetricValue]:
    """Per method pair, the mean Spearman correlation of the two maps of each item."""
    by_item: dict[str, dict[str, AttributionRow]] = defaultdict(dict)
    for r in rows:
        by_item[r.item_id][r.method] = r
    out = {}
    for a, b in combinations(methods, 2):
        vals, clusters = [], []
        for maps in by_item.values():
            if a in maps and b in maps:
                vals.append(spearman(read_map(run_dir, maps[a].map_file), read_map(run_dir, maps[b].map_file)))
                clusters.append(maps[a].group_id)
        out[f"{a}|{b}"] = mean_ci(vals, clusters, n_boot)
    return out


def sanity_summary(sanity: list[SanityRow], rows: list[AttributionRow], methods: Sequence[str],
                   n_boot: int) -> dict[str, MetricValue]:
    group = {r.item_id: r.group_id for r in rows}
    return {m: mean_ci([s.spearman for s in sanity if s.method == m],
                       [group.get(s.item_id, s.item_id) for s in sanity if s.method == m], n_boot)
            for m in methods if any(s.method == m for s in sanity)}


def summarize(run_dir: Path, config: AttributionConfig, invariance: str, rows: list[AttributionRow],
              sanity: list[SanityRow], n_boot: int) -> AttributionSummary:
    return AttributionSummary(
        config=config, invariance=invariance, n_items=len({r.item_id for r in rows}),
        rows=summary_rows(rows, config.methods, n_boot), agreement=agreement(run_dir, rows, config.methods, n_boot),
        sanity=sanity_summary(sanity, rows, config.methods, n_boot), bootstrap_iterations=n_boot)
