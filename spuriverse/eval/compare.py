"""Paired comparison of two runs on their shared items: McNemar test and a group-bootstrap
interval for the accuracy difference (for the leaderboard and the fine-tuning study)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np

from spuriverse.eval.bootstrap import percentile_ci, ratio, resample_counts
from spuriverse.eval.items import collapse_rotations
from spuriverse.schema import BootstrapInfo, Sample

EXACT_MCNEMAR_BELOW = 25  # discordant pairs: exact binomial below this, chi-square (cc) from here


@dataclass
class PairedComparison:
    """Run A vs run B on their shared items (acc and diff are A − B, in [0, 1] units)."""

    n_shared: int
    both_right: int
    a_only: int
    b_only: int
    both_wrong: int
    acc_a: float | None
    acc_b: float | None
    diff: float | None
    diff_ci: tuple[float, float] | None
    mcnemar_p: float | None
    mcnemar_method: str  # "exact" | "chi2_cc" | "none"
    bootstrap: BootstrapInfo


def mcnemar_p(b: int, c: int) -> tuple[float, str]:
    """Two-sided McNemar p-value for discordant counts b, c, and the method used.

    Exact binomial (n = b + c, p = 1/2) when n < EXACT_MCNEMAR_BELOW, else chi-square with 1 d.f. and
    continuity correction, (|b − c| − 1)^2 / (b + c); survival via erfc. n = 0 gives p = 1.
    """
    n = b + c
    if n == 0:
        return 1.0, "exact"
    if n < EXACT_MCNEMAR_BELOW:
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
        return min(1.0, 2 * tail / 2**n), "exact"
    stat = max(abs(b - c) - 1, 0) ** 2 / n
    return math.erfc(math.sqrt(stat / 2)), "chi2_cc"


def paired_comparison(
    a: Iterable[Sample], b: Iterable[Sample], *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95,
    variants: Collection[str] = ("anchor", "spurious"), failures_as_wrong: bool = True,
) -> PairedComparison:  # fmt: skip
    """Compare two runs item by item on the items both have (of `variants`; default = overall_acc's).

    diff = acc_a − acc_b with a group-bootstrap interval (control items as their own clusters);
    McNemar on the discordant pairs. failures_as_wrong=False drops items failed/unparsed in either run.
    """
    if n_bootstrap < 0 or not 0 < level < 1:
        raise ValueError("need n_bootstrap >= 0 and 0 < level < 1")
    ia = {it.item_id: it for it in collapse_rotations(a)[0] if it.variant in variants}
    ib = {it.item_id: it for it in collapse_rotations(b)[0] if it.variant in variants}
    pairs = []
    for item_id in sorted(ia.keys() & ib.keys()):
        x, y = ia[item_id], ib[item_id]
        if (x.group_id, x.variant) != (y.group_id, y.variant):
            raise ValueError(f"item {item_id!r} has a different group or variant in the two runs")
        if x.scored(failures_as_wrong) and y.scored(failures_as_wrong):
            pairs.append((x, y))
    tally = Counter((x.correct, y.correct) for x, y in pairs)
    n = len(pairs)
    acc_a = (tally[True, True] + tally[True, False]) / n if n else None
    acc_b = (tally[True, True] + tally[False, True]) / n if n else None
    diff = acc_a - acc_b if acc_a is not None and acc_b is not None else None
    ci = None
    rng = np.random.default_rng(seed)
    if n and n_bootstrap:
        keys = sorted({(x.variant == "control", x.group_id) for x, _ in pairs})
        row = {k: i for i, k in enumerate(keys)}
        n_grp = sum(1 for k in keys if not k[0])  # groups sort before controls (False < True)
        d, cnt = np.zeros(len(keys)), np.zeros(len(keys))
        for x, y in pairs:
            r = row[(x.variant == "control", x.group_id)]
            d[r] += int(x.correct) - int(y.correct)
            cnt[r] += 1
        mg = resample_counts(rng, n_grp, n_bootstrap)[1:]
        mc = resample_counts(rng, len(keys) - n_grp, n_bootstrap)[1:]
        boot = ratio(mg @ d[:n_grp] + mc @ d[n_grp:], mg @ cnt[:n_grp] + mc @ cnt[n_grp:])
        lo, hi = percentile_ci(boot[:, None], level)
        if len(keys) >= 2 and np.isfinite(lo[0]) and np.isfinite(hi[0]):  # as in score_samples
            ci = (float(lo[0]), float(hi[0]))
    p, method = mcnemar_p(tally[True, False], tally[False, True]) if n else (None, "none")
    return PairedComparison(
        n_shared=n, both_right=tally[True, True], a_only=tally[True, False], b_only=tally[False, True],
        both_wrong=tally[False, False], acc_a=acc_a, acc_b=acc_b, diff=diff, diff_ci=ci, mcnemar_p=p,
        mcnemar_method=method, bootstrap=BootstrapInfo(iterations=n_bootstrap, seed=seed, level=level),
    )  # fmt: skip
