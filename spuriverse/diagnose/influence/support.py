"""Turning a query's scores into findings: top-k supporting / opposing examples, the spurious-support
ratio with an interval, its summary per group (bootstrap), and AUROC for self-influence checks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spuriverse.schema.core import MetricValue
from spuriverse.schema.influence import Influential, QueryInfluence, SupportGroup, SupportRatio

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (n >= 1)."""
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (no 1e-17 rounding residue)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, min(max(lo, hi), 1.0)


def cue_key(meta: dict[str, str], column: str) -> str | None:
    """An example's spurious cue from its metadata `column` (normalised); None for none / blank /
    "none (...)" (the world writes that for cue-free items)."""
    value = (meta.get(column) or "").strip()
    if not value or value.lower() == "none" or value.lower().startswith("none "):
        return None
    return value.casefold()


def top_k(scores: np.ndarray, ids: Sequence[str], cues: Sequence[str | None], query_cue: str | None,
          k: int) -> tuple[list[Influential], list[Influential]]:
    """(supporting, opposing): the k highest positive and the k lowest negative scores. Ties break
    by training order (stable sort), so the result does not depend on anything else."""
    order = np.argsort(-scores, kind="stable")
    def item(i: int) -> Influential:
        has = None if query_cue is None else cues[i] == query_cue
        return Influential(train_id=ids[i], score=float(scores[i]), has_cue=has)
    supporting = [item(int(i)) for i in order[:k] if scores[i] > 0]
    opposing = [item(int(i)) for i in order[::-1][:k] if scores[i] < 0]
    return supporting, opposing


def support_ratio(supporting: Sequence[Influential], base_rate: float) -> SupportRatio | None:
    """The share of `supporting` that carry the query's cue (None without a cue or supporters)."""
    if not supporting or supporting[0].has_cue is None:
        return None
    n_cue = sum(bool(s.has_cue) for s in supporting)
    lo, hi = wilson(n_cue, len(supporting))
    return SupportRatio(value=n_cue / len(supporting), ci_low=lo, ci_high=hi, k=len(supporting), n_cue=n_cue,
                        base_rate=base_rate)


def _percentile(values: np.ndarray) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def cluster_mean(values: Sequence[float], clusters: Sequence[str], *, n_boot: int, seed: int) -> MetricValue:
    """Mean of `values` with a percentile bootstrap that resamples whole clusters (groups)."""
    if not values:
        return MetricValue(value=None, n=0)
    v = np.asarray(values, dtype=float)
    names = sorted(set(clusters))
    index = {c: i for i, c in enumerate(names)}
    cid = np.array([index[c] for c in clusters])
    sums, counts = np.bincount(cid, v, len(names)), np.bincount(cid, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    boot = sums[draws].sum(1) / np.maximum(counts[draws].sum(1), 1)
    lo, hi = _percentile(boot)
    return MetricValue(value=float(v.mean()), ci_low=lo, ci_high=hi, n=len(names))


def group_rows(records: Sequence[QueryInfluence], *, n_boot: int, seed: int) -> list[SupportGroup]:
    """Per group: the mean ratio over its queries with a cue (bootstrap over those queries)."""
    by_group: dict[str, list[QueryInfluence]] = {}
    for r in records:
        by_group.setdefault(r.group_id, []).append(r)
    rows = []
    for g, recs in sorted(by_group.items()):
        scored = [r for r in recs if r.spurious_support is not None]
        ratios = [r.spurious_support.value for r in scored if r.spurious_support is not None]
        metric = cluster_mean(ratios, [r.item_id for r in scored], n_boot=n_boot, seed=seed)
        base = [r.spurious_support.base_rate for r in scored if r.spurious_support is not None]
        rows.append(SupportGroup(group_id=g, n_queries=len(scored), n_answered_wrong=sum(r.predicted != r.answer for r in recs),
                                 ratio=metric, base_rate=float(np.mean(base)) if base else None))
    return rows


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half
    (the Mann-Whitney statistic)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("AUROC needs positives and negatives")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
