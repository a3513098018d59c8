"""Scores for one run: a pure function of its samples (no model, no files).

Unit of analysis is the *group* (one spurious correlation: anchor + spurious + optional counter items
sharing a `group_id`). Intervals come from a percentile bootstrap that resamples whole groups; control
items are resampled as their own clusters (one per control `group_id`) in the same iteration, so gaps
between splits get honest intervals. Everything is a sum over clusters, so one bootstrap is one matrix
product: (iterations x clusters) resample counts @ (clusters x quantities) per-cluster sums.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spuriverse.eval.items import ItemOutcome, collapse_rotations
from spuriverse.schema import BootstrapInfo, FailureCounts, GroupRow, MetricValue, Sample

# ItemOutcome and collapse_rotations live in spuriverse.eval.items; re-exported for existing callers.
__all__ = ["BREAKDOWN_FIELDS", "CONTROL_BREAKDOWN_FIELDS", "METRIC_KEYS", "UNSPECIFIED", "ItemOutcome", "Scores",
           "collapse_rotations", "score_samples"]

METRIC_KEYS: tuple[str, ...] = (
    "anchor_acc", "spurious_acc", "counter_acc", "control_acc", "overall_acc", "mean_group_acc",
    "group_consistency", "worst_group_acc", "bottom_decile_group_acc", "gap_control_anchor",
    "gap_control_spurious", "gap_counter_spurious", "failed_rate", "unparsed_rate",
)  # fmt: skip
BREAKDOWN_FIELDS: tuple[str, ...] = ("source_benchmark", "category", "spurious_attribute")
CONTROL_BREAKDOWN_FIELDS: tuple[str, ...] = ("source_benchmark", "category")
_VARIANT_CODE = {"anchor": 0, "spurious": 1, "counter": 2, "control": 3}
UNSPECIFIED = "(unspecified)"  # breakdown label for items with an empty attribute


@dataclass
class Scores:
    """Everything `results.json` needs from the samples."""

    metrics: dict[str, MetricValue]
    breakdowns: dict[str, dict[str, MetricValue]]
    per_group: list[GroupRow]
    failures: FailureCounts
    bootstrap: BootstrapInfo
    failures_as_wrong: bool = True


def _resample_counts(rng: np.random.Generator, n_clusters: int, n_boot: int) -> np.ndarray:
    """Row 0 = the observed data (each cluster once); rows 1.. = bootstrap multiplicities."""
    idx = rng.integers(0, n_clusters, size=(n_boot, n_clusters)) if n_clusters else np.zeros((n_boot, 0), int)
    flat = (idx + (np.arange(n_boot) * n_clusters)[:, None]).ravel()
    boot = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)
    return np.vstack([np.ones((1, n_clusters)), boot.astype(float)])


def _mm(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """m @ x, but row 0 (the point estimate) summed by numpy rather than BLAS, so estimates are
    bit-identical whatever the number of bootstrap rows."""
    head = (m[0].reshape(-1, *([1] * (x.ndim - 1))) * x).sum(axis=0)
    return np.concatenate([head[None], m[1:] @ x])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _percentile_ci(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column of boot (resamples x metrics), ignoring NaN (undefined) draws.

    Same interpolation as numpy's default ("linear") percentile, vectorised over columns.
    """
    s = np.sort(boot, axis=0)  # NaN sort last
    m = (~np.isnan(boot)).sum(axis=0)
    top = np.maximum(m - 1, 0)
    cols = np.arange(boot.shape[1])
    out = []
    for q in ((1 - level) / 2, (1 + level) / 2):
        pos = q * top
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, top)
        v = s[lo, cols] + (pos - lo) * (s[hi, cols] - s[lo, cols])
        out.append(np.where(m > 0, v, np.nan))
    return out[0], out[1]


def _value(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _frac(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _group_extremes(counts: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Worst-group and bottom-decile accuracy per resample; acc = per-group accuracy (NaN = none).

    A group drawn k times counts k times; bottom decile = mean of the ceil(10 %) lowest of the drawn
    groups, counted with multiplicity.
    """
    defined = ~np.isnan(acc)
    if not defined.any():
        nan = np.full(counts.shape[0], np.nan)
        return nan, nan.copy()
    order = np.flatnonzero(defined)[np.argsort(acc[defined], kind="stable")]
    a, c = acc[order], counts[:, order]
    worst = np.where(c > 0, a, np.inf).min(axis=1)
    total = c.sum(axis=1)
    k = np.floor((total + 9) / 10)  # integer ceil(total / 10): 0.1 * 30 would give 4
    take = np.clip(k[:, None] - (np.cumsum(c, axis=1) - c), 0, c)
    bottom = _ratio(_mm(take, a), k)
    return np.where(np.isfinite(worst), worst, np.nan), bottom


def _cluster_totals(cols: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster sums (name -> (clusters,)) to totals per resample (name -> (resamples,))."""
    names = list(cols)
    mat = np.column_stack([cols[k] for k in names]) if names else np.zeros((counts.shape[1], 0))
    t = _mm(counts, mat)
    return {k: t[:, j] for j, k in enumerate(names)}


@dataclass
class _ItemArrays:
    """The collapsed items as parallel arrays, and each item's cluster row (its group among the groups,
    or its control cluster among the control clusters)."""

    items: list[ItemOutcome]
    var: np.ndarray  # _VARIANT_CODE per item
    correct: np.ndarray
    failed: np.ndarray
    unparsed: np.ndarray
    scored: np.ndarray  # enters accuracy denominators
    ctrl: np.ndarray
    groups: list[str]  # non-control group ids, sorted
    controls: list[str]  # control group ids, sorted
    row: np.ndarray

    @classmethod
    def build(cls, items: list[ItemOutcome], failures_as_wrong: bool) -> _ItemArrays:
        n = len(items)
        var = np.fromiter((_VARIANT_CODE[it.variant] for it in items), np.int64, n)
        correct = np.fromiter((it.correct for it in items), bool, n)
        failed = np.fromiter((it.failed for it in items), bool, n)
        unparsed = np.fromiter((it.unparsed for it in items), bool, n)
        scored = np.ones(n, bool) if failures_as_wrong else ~(failed | unparsed)
        groups = sorted({it.group_id for it in items if it.variant != "control"})
        controls = sorted({it.group_id for it in items if it.variant == "control"})
        index = ({g: i for i, g in enumerate(groups)}, {g: i for i, g in enumerate(controls)})
        row = np.fromiter((index[it.variant == "control"][it.group_id] for it in items), np.int64, n)
        return cls(items, var, correct, failed, unparsed, scored, var == 3, groups, controls, row)

    @property
    def n_g(self) -> int:
        return len(self.groups)

    @property
    def n_c(self) -> int:
        return len(self.controls)

    def count(self, mask: np.ndarray, size: int) -> np.ndarray:
        """Items under `mask` per cluster row."""
        return np.bincount(self.row[mask], minlength=size).astype(float)


class _GroupSums(NamedTuple):
    sums: dict[str, np.ndarray]  # name -> per-group sum
    acc: np.ndarray  # per-group accuracy over anchor + spurious items (NaN = none scored)
    consistent: np.ndarray  # right on the anchor and every spurious item (eligible groups only)


def _group_sums(a: _ItemArrays) -> _GroupSums:
    """Per-group sums behind every group-level quantity."""
    gc: dict[str, np.ndarray] = {}
    for code, v in enumerate(("anchor", "spurious", "counter")):
        gc[f"{v}_n"] = a.count((a.var == code) & a.scored, a.n_g)
        gc[f"{v}_c"] = a.count((a.var == code) & a.scored & a.correct, a.n_g)
    right, asked = gc["anchor_c"] + gc["spurious_c"], gc["anchor_n"] + gc["spurious_n"]
    acc_g = _ratio(right, asked)
    eligible = (gc["anchor_n"] > 0) & (gc["spurious_n"] > 0)
    consistent = eligible & (right == asked)
    with_counter = gc["counter_n"] > 0
    gc.update(
        group_acc=np.nan_to_num(acc_g), has_acc=(asked > 0).astype(float), eligible=eligible.astype(float),
        consistent=consistent.astype(float), cs_spurious_n=gc["spurious_n"] * with_counter,
        cs_spurious_c=gc["spurious_c"] * with_counter, items=a.count(~a.ctrl, a.n_g),
        failed=a.count(~a.ctrl & a.failed, a.n_g), unparsed=a.count(~a.ctrl & a.unparsed, a.n_g),
    )  # fmt: skip
    return _GroupSums(gc, acc_g, consistent)


def _control_sums(a: _ItemArrays) -> dict[str, np.ndarray]:
    """Per-control-cluster sums."""
    c, n_c = a.ctrl, a.n_c
    return {
        "control_n": a.count(c & a.scored, n_c), "control_c": a.count(c & a.scored & a.correct, n_c),
        "items": a.count(c, n_c), "failed": a.count(c & a.failed, n_c), "unparsed": a.count(c & a.unparsed, n_c),
    }  # fmt: skip


class _Block(NamedTuple):
    """One breakdown: items asked and answered right per cluster x label."""

    name: str
    is_control: bool
    labels: list[str]
    asked: np.ndarray  # (clusters, labels)
    right: np.ndarray


def _breakdown_blocks(a: _ItemArrays) -> list[_Block]:
    """Breakdowns of anchor + spurious items by BREAKDOWN_FIELDS and of controls by
    CONTROL_BREAKDOWN_FIELDS, only for fields some item fills in."""
    blocks: list[_Block] = []
    for prefix, mask, fields, size in (
        ("", ~a.ctrl & (a.var <= 1) & a.scored, BREAKDOWN_FIELDS, a.n_g),
        ("control_", a.ctrl & a.scored, CONTROL_BREAKDOWN_FIELDS, a.n_c),
    ):
        idx = np.flatnonzero(mask)
        for f in fields:
            vals = [getattr(a.items[i], f) or UNSPECIFIED for i in idx]
            if all(v == UNSPECIFIED for v in vals):
                continue  # breakdown only "where present"
            labels = sorted(set(vals))
            code_of = {lab: j for j, lab in enumerate(labels)}
            flat = a.row[idx] * len(labels) + np.fromiter((code_of[v] for v in vals), np.int64, len(vals))
            asked_m = np.bincount(flat, minlength=size * len(labels)).reshape(size, len(labels)).astype(float)
            right_m = np.bincount(flat[a.correct[idx]], minlength=size * len(labels)).reshape(size, len(labels))
            blocks.append(_Block(prefix + f, prefix == "control_", labels, asked_m, right_m.astype(float)))
    return blocks


def _metric_series(
    g: _GroupSums, cc: dict[str, np.ndarray], mg: np.ndarray, mc: np.ndarray,
) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:  # fmt: skip
    """name -> (value per resample, items (or groups) per resample, clusters behind it), in METRIC_KEYS
    order; mg / mc = the group / control resample counts."""
    gc = g.sums
    tg, tc = _cluster_totals(gc, mg), _cluster_totals(cc, mc)
    n_a, n_s, n_k, n_ctl = tg["anchor_n"], tg["spurious_n"], tg["counter_n"], tc["control_n"]
    anchor, spur = _ratio(tg["anchor_c"], n_a), _ratio(tg["spurious_c"], n_s)
    counter, control = _ratio(tg["counter_c"], n_k), _ratio(tc["control_c"], n_ctl)
    n_all = tg["items"] + tc["items"]
    worst, bottom = _group_extremes(mg, g.acc)
    n_grp = tg["has_acc"]

    def nz(*cols: np.ndarray) -> int:  # clusters contributing to a quantity
        return int(np.count_nonzero(sum(cols)))

    k_a, k_s, k_c, k_grp = nz(gc["anchor_n"]), nz(gc["spurious_n"]), nz(cc["control_n"]), nz(gc["has_acc"])
    return {
        "anchor_acc": (anchor, n_a, k_a),
        "spurious_acc": (spur, n_s, k_s),
        "counter_acc": (counter, n_k, nz(gc["counter_n"])),
        "control_acc": (control, n_ctl, k_c),
        "overall_acc": (_ratio(tg["anchor_c"] + tg["spurious_c"], n_a + n_s), n_a + n_s, k_grp),
        "mean_group_acc": (_ratio(tg["group_acc"], n_grp), n_grp, k_grp),
        "group_consistency": (_ratio(tg["consistent"], tg["eligible"]), tg["eligible"], nz(gc["eligible"])),
        "worst_group_acc": (worst, n_grp, k_grp),
        "bottom_decile_group_acc": (bottom, n_grp, k_grp),
        "gap_control_anchor": (control - anchor, n_ctl + n_a, min(k_c, k_a)),
        "gap_control_spurious": (control - spur, n_ctl + n_s, min(k_c, k_s)),
        "gap_counter_spurious": (counter - _ratio(tg["cs_spurious_c"], tg["cs_spurious_n"]),
                                 n_k + tg["cs_spurious_n"], nz(gc["cs_spurious_n"])),  # fmt: skip
        "failed_rate": (_ratio(tg["failed"] + tc["failed"], n_all), n_all, nz(gc["items"]) + nz(cc["items"])),
        "unparsed_rate": (_ratio(tg["unparsed"] + tc["unparsed"], n_all), n_all, nz(gc["items"]) + nz(cc["items"])),
    }


def _metric_values(
    series: dict[str, tuple[np.ndarray, np.ndarray, int]], blocks: list[_Block], mg: np.ndarray,
    mc: np.ndarray, level: float, with_intervals: bool,
) -> dict[str, MetricValue]:  # fmt: skip
    """Every metric and breakdown cell (keyed "field\\x00label") with its percentile interval, from one
    (resamples x quantities) table."""
    names = list(series)
    table = [np.column_stack([series[k][0] for k in names])]
    n_items = [float(series[k][1][0]) for k in names]
    n_clusters = [series[k][2] for k in names]
    for b in blocks:
        m = mc if b.is_control else mg
        t_n = _mm(m, b.asked)
        table.append(_ratio(_mm(m, b.right), t_n))
        n_items += t_n[0].tolist()
        n_clusters += np.count_nonzero(b.asked, axis=0).tolist()
        names += [f"{b.name}\x00{lab}" for lab in b.labels]
    mat = np.hstack(table)
    lo, hi = _percentile_ci(mat[1:], level) if with_intervals else (None, None)
    values: dict[str, MetricValue] = {}
    for j, k in enumerate(names):
        v = _value(mat[0, j])
        # one cluster has no between-cluster spread to resample: no interval rather than a fake [v, v]
        ci = (None, None) if v is None or lo is None or hi is None or n_clusters[j] < 2 else (_value(lo[j]), _value(hi[j]))
        values[k] = MetricValue(value=v, ci_low=ci[0], ci_high=ci[1], n=int(n_items[j]) if v is not None else 0)
    return values


def _per_group_rows(a: _ItemArrays, g: _GroupSums) -> list[GroupRow]:
    """One row per group; the group's anchor (else its first item) names its attributes."""
    ref: dict[str, ItemOutcome] = {}
    for it in a.items:
        if it.variant != "control" and (it.group_id not in ref or it.variant == "anchor" != ref[it.group_id].variant):
            ref[it.group_id] = it  # first item of the group, replaced by its first anchor
    gc, consistent = g.sums, g.consistent
    return [
        GroupRow(
            group_id=gid, source_benchmark=ref[gid].source_benchmark, spurious_attribute=ref[gid].spurious_attribute,
            n_items=int(gc["items"][i]), acc=_value(g.acc[i]),
            anchor_correct=bool(gc["anchor_c"][i] == gc["anchor_n"][i]) if gc["anchor_n"][i] else None,
            spurious_acc=_frac(gc["spurious_c"][i], gc["spurious_n"][i]),
            counter_acc=_frac(gc["counter_c"][i], gc["counter_n"][i]), consistent=bool(consistent[i]) if gc["eligible"][i] else None,
            n_failed=int(gc["failed"][i]), n_unparsed=int(gc["unparsed"][i]),
        )
        for i, gid in enumerate(a.groups)
    ]  # fmt: skip


def _failure_counts(a: _ItemArrays, expected_items: int | None, incomplete: int) -> FailureCounts:
    n = len(a.items)
    n_failed, n_unparsed = int(a.failed.sum()), int(a.unparsed.sum())
    return FailureCounts(
        n_samples=n, n_failed=n_failed, n_unparsed=n_unparsed,
        failed_rate=n_failed / n if n else 0.0, unparsed_rate=n_unparsed / n if n else 0.0,
        by_type=dict(sorted(Counter(str(it.error_type) for it in a.items if it.failed).items())),
        n_missing=(expected_items - n) if expected_items is not None else incomplete,
    )  # fmt: skip


def score_samples(
    samples: Iterable[Sample], *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
    failures_as_wrong: bool = True, expected_items: int | None = None, breakdowns: bool = True,
) -> Scores:  # fmt: skip
    """Score a run's samples (definitions: README "Metrics"). Input order never matters.

    The cheap path for bulk re-scoring: n_bootstrap=0 (no intervals) and breakdowns=False.
    """
    if n_bootstrap < 0 or not 0 < level < 1:
        raise ValueError("need n_bootstrap >= 0 and 0 < level < 1")
    items, incomplete = collapse_rotations(samples)
    if expected_items is not None and expected_items < len(items):
        raise ValueError(f"{len(items)} scored items but only {expected_items} expected")
    a = _ItemArrays.build(items, failures_as_wrong)
    g, cc = _group_sums(a), _control_sums(a)
    blocks = _breakdown_blocks(a) if breakdowns else []
    rng = np.random.default_rng(seed)  # groups are drawn first, then control clusters, from one stream
    mg = _resample_counts(rng, a.n_g, n_bootstrap)
    mc = _resample_counts(rng, a.n_c, n_bootstrap)
    values = _metric_values(_metric_series(g, cc, mg, mc), blocks, mg, mc, level, n_bootstrap > 0)
    by: dict[str, dict[str, MetricValue]] = {}
    for k in list(values)[len(METRIC_KEYS) :]:
        name, lab = k.split("\x00", 1)
        by.setdefault(name, {})[lab] = values[k]
    return Scores(
        metrics={k: values[k] for k in METRIC_KEYS}, breakdowns=by, per_group=_per_group_rows(a, g),
        failures=_failure_counts(a, expected_items, incomplete),
        bootstrap=BootstrapInfo(iterations=n_bootstrap, seed=seed, level=level), failures_as_wrong=failures_as_wrong,
    )  # fmt: skip
