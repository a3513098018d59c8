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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from spuriverse.eval.bootstrap import cluster_totals, matmul_rows, percentile_ci, ratio, resample_counts
from spuriverse.eval.items import ItemOutcome, collapse_rotations
from spuriverse.schema import BootstrapInfo, FailureCounts, GroupRow, MetricValue, Sample

# ItemOutcome and collapse_rotations live in spuriverse.eval.items; re-exported for existing callers.
__all__ = ["BREAKDOWN_FIELDS", "CONTROL_BREAKDOWN_FIELDS", "METRICS", "UNSPECIFIED", "ItemOutcome", "Metric", "Scores",
           "Totals", "collapse_rotations", "register_metric", "score_samples"]

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
    bottom = ratio(matmul_rows(take, a), k)
    return np.where(np.isfinite(worst), worst, np.nan), bottom


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
    acc_g = ratio(right, asked)
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


Series = tuple[np.ndarray, np.ndarray, int]  # value per resample, items (or groups) per resample, clusters


@dataclass(frozen=True)
class Totals:
    """What every metric is computed from: totals per resample (row 0 = the observed data) over the
    group clusters (`g`) and the control clusters (`c`), the per-cluster sums behind them, and the
    per-resample worst-group / bottom-decile accuracies."""

    g: dict[str, np.ndarray]
    c: dict[str, np.ndarray]
    per_group: dict[str, np.ndarray]
    per_control: dict[str, np.ndarray]
    worst: np.ndarray
    bottom: np.ndarray

    def groups_with(self, *names: str) -> int:
        """Group clusters contributing to a quantity (nonzero in any of the named per-group sums)."""
        return int(np.count_nonzero(sum(self.per_group[k] for k in names)))

    def controls_with(self, *names: str) -> int:
        return int(np.count_nonzero(sum(self.per_control[k] for k in names)))

    def variant(self, v: str) -> Series:
        """Accuracy over the items of variant `v` (anchor, spurious, counter: groups; control: controls)."""
        tot, clusters = (self.c, self.controls_with) if v == "control" else (self.g, self.groups_with)
        return ratio(tot[f"{v}_c"], tot[f"{v}_n"]), tot[f"{v}_n"], clusters(f"{v}_n")


@dataclass(frozen=True)
class Metric:
    """One metric: its key in results.json, its label in reports, and how it is computed."""

    name: str
    label: str
    compute: Callable[[Totals], Series]


# The metric registry: a new metric is one `register_metric` call (its results.json key, report label and
# formula); results.json, the report and the leaderboard take their metrics from here, in this order.
METRICS: dict[str, Metric] = {}


def register_metric(name: str, label: str, compute: Callable[[Totals], Series]) -> Metric:
    if name in METRICS:
        raise ValueError(f"metric {name!r} is already registered")
    METRICS[name] = Metric(name, label, compute)
    return METRICS[name]


def _gap(first: str, second: str) -> Callable[[Totals], Series]:
    """`first` minus `second` accuracy; intervals need clusters on both sides."""
    def compute(t: Totals) -> Series:
        (a, n_a, k_a), (b, n_b, k_b) = t.variant(first), t.variant(second)
        return a - b, n_a + n_b, min(k_a, k_b)
    return compute


def _overall(t: Totals) -> Series:
    n = t.g["anchor_n"] + t.g["spurious_n"]
    return ratio(t.g["anchor_c"] + t.g["spurious_c"], n), n, t.groups_with("has_acc")


def _group_level(value: Callable[[Totals], np.ndarray]) -> Callable[[Totals], Series]:
    """A quantity over the groups that have a scored anchor or spurious item."""
    return lambda t: (value(t), t.g["has_acc"], t.groups_with("has_acc"))


def _counter_minus_spurious(t: Totals) -> Series:
    counter, n_k, _ = t.variant("counter")
    n_s = t.g["cs_spurious_n"]
    return counter - ratio(t.g["cs_spurious_c"], n_s), n_k + n_s, t.groups_with("cs_spurious_n")


def _rate(what: str) -> Callable[[Totals], Series]:
    """Items `what` (failed, unparsed) over all items, controls included."""
    def compute(t: Totals) -> Series:
        n = t.g["items"] + t.c["items"]
        return ratio(t.g[what] + t.c[what], n), n, t.groups_with("items") + t.controls_with("items")
    return compute


def _variant(v: str) -> Callable[[Totals], Series]:
    return lambda t: t.variant(v)


register_metric("anchor_acc", "Anchor accuracy (real images)", _variant("anchor"))
register_metric("spurious_acc", "Spurious-group accuracy (with cue)", _variant("spurious"))
register_metric("counter_acc", "Counter accuracy (without cue)", _variant("counter"))
register_metric("control_acc", "Control accuracy (non-spurious)", _variant("control"))
register_metric("overall_acc", "Overall accuracy (anchor + spurious)", _overall)
register_metric("mean_group_acc", "Mean group accuracy", _group_level(lambda t: ratio(t.g["group_acc"], t.g["has_acc"])))
register_metric("group_consistency", "Group consistency (anchor and all spurious right)",
                lambda t: (ratio(t.g["consistent"], t.g["eligible"]), t.g["eligible"], t.groups_with("eligible")))
register_metric("worst_group_acc", "Worst-group accuracy", _group_level(lambda t: t.worst))
register_metric("bottom_decile_group_acc", "Bottom-decile group accuracy", _group_level(lambda t: t.bottom))
register_metric("gap_control_anchor", "Gap: control − anchor", _gap("control", "anchor"))
register_metric("gap_control_spurious", "Gap: control − spurious", _gap("control", "spurious"))
register_metric("gap_counter_spurious", "Gap: counter − spurious (groups with counters)", _counter_minus_spurious)
register_metric("failed_rate", "Failed rate", _rate("failed"))
register_metric("unparsed_rate", "Unparsed rate", _rate("unparsed"))


def _metric_series(g: _GroupSums, cc: dict[str, np.ndarray], mg: np.ndarray,
                   mc: np.ndarray) -> dict[str, Series]:
    """name -> series of every registered metric, in registry order; mg / mc = the group / control
    resample counts."""
    worst, bottom = _group_extremes(mg, g.acc)
    t = Totals(cluster_totals(g.sums, mg), cluster_totals(cc, mc), g.sums, cc, worst, bottom)
    return {name: m.compute(t) for name, m in METRICS.items()}


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
        t_n = matmul_rows(m, b.asked)
        table.append(ratio(matmul_rows(m, b.right), t_n))
        n_items += t_n[0].tolist()
        n_clusters += np.count_nonzero(b.asked, axis=0).tolist()
        names += [f"{b.name}\x00{lab}" for lab in b.labels]
    mat = np.hstack(table)
    lo, hi = percentile_ci(mat[1:], level) if with_intervals else (None, None)
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
    mg = resample_counts(rng, a.n_g, n_bootstrap)
    mc = resample_counts(rng, a.n_c, n_bootstrap)
    values = _metric_values(_metric_series(g, cc, mg, mc), blocks, mg, mc, level, n_bootstrap > 0)
    by: dict[str, dict[str, MetricValue]] = {}
    for k in list(values)[len(METRICS) :]:
        name, lab = k.split("\x00", 1)
        by.setdefault(name, {})[lab] = values[k]
    return Scores(
        metrics={k: values[k] for k in METRICS}, breakdowns=by, per_group=_per_group_rows(a, g),
        failures=_failure_counts(a, expected_items, incomplete),
        bootstrap=BootstrapInfo(iterations=n_bootstrap, seed=seed, level=level), failures_as_wrong=failures_as_wrong,
    )  # fmt: skip
