"""Scoring: a hand-worked example, CircularEval, intervals, McNemar, determinism, speed."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest

from spuriverse.eval.compare import mcnemar_p, paired_comparison
from spuriverse.eval.metrics import (
    METRICS,
    collapse_rotations,
    score_samples,
)
from spuriverse.schema import Sample


def smp(item_id: str, group_id: str, variant: str, ok: bool = True, *, fail: str | None = None,
        unparsed: bool = False, rotation: int | None = None, n_options: int = 4, **kw: str) -> Sample:  # fmt: skip
    """One sample: right (ok), wrong, failed (fail = error_type) or unparsed."""
    base = dict(index=0, item_id=item_id, group_id=group_id, variant=variant, n_options=n_options,
                answer="A", scoring="generate", prompt_hash="h", rotation=rotation, **kw)  # fmt: skip
    if fail:
        return Sample(**base, prediction=None, correct=False, parse_status=None, error="boom", error_type=fail)
    if unparsed:
        return Sample(**base, prediction=None, correct=False, parse_status="unparsed")
    return Sample(**base, prediction="A" if ok else "B", correct=ok, parse_status="strict")


def hand_worked() -> list[Sample]:
    """3 groups + 4 controls, 18 items (✓ right, ✗ wrong, F failed, U unparsed).

    g1 aokvqa/snow/color : A✓  S✓ S✓ S✓
    g2 seed/grass/count  : A✓  S✓ S✓ S✗   + counter K✓ K✗
    g3 seed/dog/(none)   : A✗  S✓ S-U S-F(api)
    controls             : c1 aokvqa ✓, c2 aokvqa ✗, c3 seed ✓, c4 seed F(image)
    """
    g1 = dict(source_benchmark="aokvqa", spurious_attribute="snow", category="color")
    g2 = dict(source_benchmark="seed", spurious_attribute="grass", category="count")
    g3 = dict(source_benchmark="seed", spurious_attribute="dog")
    return [
        smp("g1-a", "g1", "anchor", True, **g1),
        smp("g1-s1", "g1", "spurious", True, **g1),
        smp("g1-s2", "g1", "spurious", True, **g1),
        smp("g1-s3", "g1", "spurious", True, **g1),
        smp("g2-a", "g2", "anchor", True, **g2),
        smp("g2-s1", "g2", "spurious", True, **g2),
        smp("g2-s2", "g2", "spurious", True, **g2),
        smp("g2-s3", "g2", "spurious", False, **g2),
        smp("g2-k1", "g2", "counter", True, **g2),
        smp("g2-k2", "g2", "counter", False, **g2),
        smp("g3-a", "g3", "anchor", False, **g3),
        smp("g3-s1", "g3", "spurious", True, **g3),
        smp("g3-s2", "g3", "spurious", unparsed=True, **g3),
        smp("g3-s3", "g3", "spurious", fail="api", **g3),
        smp("c1", "c1", "control", True, source_benchmark="aokvqa"),
        smp("c2", "c2", "control", False, source_benchmark="aokvqa"),
        smp("c3", "c3", "control", True, source_benchmark="seed"),
        smp("c4", "c4", "control", fail="image", source_benchmark="seed"),
    ]


def values(scores) -> dict[str, float | None]:
    return {k: m.value for k, m in scores.metrics.items()}


def test_hand_worked_failures_as_wrong() -> None:
    sc = score_samples(hand_worked(), n_bootstrap=0, expected_items=20)
    expected = {
        "anchor_acc": 2 / 3,  # g1 ✓ g2 ✓ g3 ✗
        "spurious_acc": 6 / 9,  # 3 + 2 + 1 right of 9 (U and F count as wrong)
        "counter_acc": 1 / 2,  # K✓ K✗
        "control_acc": 2 / 4,  # c1 ✓ c2 ✗ c3 ✓ c4 F
        "overall_acc": 8 / 12,  # (2 + 6) / (3 + 9)
        "mean_group_acc": (1.0 + 0.75 + 0.25) / 3,  # g1 4/4, g2 3/4, g3 1/4
        "group_consistency": 1 / 3,  # only g1 has anchor and every spurious item right
        "worst_group_acc": 0.25,  # g3
        "bottom_decile_group_acc": 0.25,  # ceil(10 % of 3) = 1 group: g3
        "gap_control_anchor": 0.5 - 2 / 3,
        "gap_control_spurious": 0.5 - 6 / 9,
        "gap_counter_spurious": 0.5 - 2 / 3,  # only g2 has counters: 1/2 − its spurious 2/3
        "failed_rate": 2 / 18,  # g3-s3, c4
        "unparsed_rate": 1 / 18,  # g3-s2
    }
    assert values(sc) == expected
    n = {k: m.n for k, m in sc.metrics.items()}
    assert n == {
        "anchor_acc": 3, "spurious_acc": 9, "counter_acc": 2, "control_acc": 4, "overall_acc": 12,
        "mean_group_acc": 3, "group_consistency": 3, "worst_group_acc": 3, "bottom_decile_group_acc": 3,
        "gap_control_anchor": 7, "gap_control_spurious": 13, "gap_counter_spurious": 5,
        "failed_rate": 18, "unparsed_rate": 18,
    }  # fmt: skip
    assert all(m.ci_low is None and m.ci_high is None for m in sc.metrics.values())  # n_bootstrap=0
    f = sc.failures
    assert (f.n_samples, f.n_failed, f.n_unparsed, f.n_missing) == (18, 2, 1, 2)
    assert (f.failed_rate, f.unparsed_rate, f.by_type) == (2 / 18, 1 / 18, {"api": 1, "image": 1})
    assert sc.failures_as_wrong is True and sc.bootstrap.iterations == 0

    bd = {name: {k: (m.value, m.n) for k, m in d.items()} for name, d in sc.breakdowns.items()}
    assert bd == {
        "source_benchmark": {"aokvqa": (1.0, 4), "seed": (4 / 8, 8)},  # anchor + spurious only
        "category": {"color": (1.0, 4), "count": (0.75, 4), "(unspecified)": (0.25, 4)},
        "spurious_attribute": {"dog": (0.25, 4), "grass": (0.75, 4), "snow": (1.0, 4)},
        "control_source_benchmark": {"aokvqa": (0.5, 2), "seed": (0.5, 2)},  # no control category
    }

    rows = {r.group_id: r for r in sc.per_group}
    assert [r.group_id for r in sc.per_group] == ["g1", "g2", "g3"]
    g1, g2, g3 = rows["g1"], rows["g2"], rows["g3"]
    assert (g1.n_items, g1.acc, g1.anchor_correct, g1.spurious_acc, g1.counter_acc, g1.consistent) == (
        4, 1.0, True, 1.0, None, True)  # fmt: skip
    assert (g2.n_items, g2.acc, g2.anchor_correct, g2.spurious_acc, g2.counter_acc, g2.consistent) == (
        6, 0.75, True, 2 / 3, 0.5, False)  # fmt: skip
    assert (g3.n_items, g3.acc, g3.anchor_correct, g3.spurious_acc, g3.n_failed, g3.n_unparsed) == (
        4, 0.25, False, 1 / 3, 1, 1)  # fmt: skip
    assert (g3.source_benchmark, g3.spurious_attribute) == ("seed", "dog")


def test_hand_worked_failures_excluded() -> None:
    sc = score_samples(hand_worked(), n_bootstrap=0, failures_as_wrong=False)
    # excluded: g3-s2 (U), g3-s3 (F), c4 (F)
    expected = {
        "anchor_acc": 2 / 3,
        "spurious_acc": 6 / 7,
        "counter_acc": 1 / 2,
        "control_acc": 2 / 3,
        "overall_acc": 8 / 10,
        "mean_group_acc": (1.0 + 0.75 + 0.5) / 3,  # g3 is now A✗ S✓ = 1/2
        "group_consistency": 1 / 3,
        "worst_group_acc": 0.5,
        "bottom_decile_group_acc": 0.5,
        "gap_control_anchor": 2 / 3 - 2 / 3,
        "gap_control_spurious": 2 / 3 - 6 / 7,
        "gap_counter_spurious": 0.5 - 2 / 3,
        "failed_rate": 2 / 18,  # rates never exclude anything
        "unparsed_rate": 1 / 18,
    }
    assert values(sc) == expected
    assert sc.metrics["overall_acc"].n == 10 and sc.metrics["control_acc"].n == 3
    assert sc.failures_as_wrong is False and sc.failures.n_missing == 0
    assert [r.acc for r in sc.per_group] == [1.0, 0.75, 0.5]


def test_intervals_need_two_clusters() -> None:
    sc = score_samples(hand_worked(), n_bootstrap=500)
    bd = sc.breakdowns
    assert bd["source_benchmark"]["seed"].ci_low is not None  # g2 + g3
    assert bd["source_benchmark"]["aokvqa"].ci_low is None  # g1 alone: no spread between groups to resample
    assert all(m.ci_low is None and m.ci_high is None for m in bd["spurious_attribute"].values())
    assert bd["control_source_benchmark"]["aokvqa"].ci_low is not None  # c1 + c2
    assert sc.metrics["counter_acc"].ci_low is None and sc.metrics["gap_counter_spurious"].ci_low is None  # g2 only
    m = sc.metrics["overall_acc"]
    assert m.ci_low is not None and m.ci_high is not None and m.ci_low <= m.value <= m.ci_high
    with pytest.raises(ValueError):
        score_samples(hand_worked(), level=1.0)
    with pytest.raises(ValueError):
        score_samples(hand_worked(), n_bootstrap=-1)


def test_group_without_anchor_or_spurious_is_not_judged_for_consistency() -> None:
    s = [smp("a1", "g1", "anchor"), smp("s1", "g1", "spurious"),  # consistent
         smp("a2", "g2", "anchor"),  # no spurious item: not eligible
         smp("s3", "g3", "spurious"), smp("s4", "g3", "spurious", False),  # no anchor: not eligible
         smp("k5", "g5", "counter")]  # fmt: skip
    sc = score_samples(s, n_bootstrap=0)
    assert sc.metrics["group_consistency"].value == 1.0 and sc.metrics["group_consistency"].n == 1
    assert sc.metrics["mean_group_acc"].n == 3  # g5 has no anchor/spurious item: no accuracy
    assert [(r.group_id, r.acc, r.consistent) for r in sc.per_group] == [
        ("g1", 1.0, True), ("g2", 1.0, None), ("g3", 0.5, None), ("g5", None, None)]  # not judged: null  # fmt: skip
    # a failed anchor with failures excluded leaves g1 without an anchor
    sc = score_samples([smp("a1", "g1", "anchor", fail="api"), smp("s1", "g1", "spurious")],
                       n_bootstrap=0, failures_as_wrong=False)  # fmt: skip
    assert sc.metrics["group_consistency"].value is None and sc.metrics["group_consistency"].n == 0


def test_empty_and_missing_metrics_are_null_not_nan() -> None:
    sc = score_samples([], n_bootstrap=50)
    assert all(m.value is None and m.ci_low is None and m.n == 0 for m in sc.metrics.values())
    assert sc.per_group == [] and sc.failures.n_samples == 0 and sc.failures.failed_rate == 0.0
    sc = score_samples(hand_worked()[:4], n_bootstrap=200)  # no counters, no controls
    for k in ("counter_acc", "control_acc", "gap_control_anchor", "gap_counter_spurious"):
        assert sc.metrics[k].value is None and sc.metrics[k].ci_low is None and sc.metrics[k].n == 0
    json.dumps({k: m.model_dump() for k, m in sc.metrics.items()}, allow_nan=False)
    with pytest.raises(ValueError, match="expected"):
        score_samples(hand_worked(), expected_items=3)


def test_circular_eval_collapses_rotations() -> None:
    def item(i: str, outcomes: list[str], group: str = "g1", variant: str = "spurious") -> list[Sample]:
        return [smp(i, group, variant, o == "ok", fail="model" if o == "F" else None, unparsed=o == "U",
                    rotation=r, n_options=len(outcomes)) for r, o in enumerate(outcomes)]  # fmt: skip

    s = (item("a", ["ok", "ok", "ok"], variant="anchor") + item("b", ["ok", "no", "ok"])
         + item("c", ["U", "ok", "F"]) + item("d", ["U", "ok"]) + item("e", ["ok", "ok", "ok"]))  # fmt: skip
    items, incomplete = collapse_rotations(s[:-1])  # "e" lacks rotation 2: incomplete, left out
    assert incomplete == 1
    got = {it.item_id: (it.correct, it.failed, it.unparsed) for it in items}
    assert got == {"a": (True, False, False), "b": (False, False, False), "c": (False, True, False),
                   "d": (False, False, True)}  # fmt: skip
    sc = score_samples(s[:-1], n_bootstrap=0)
    assert sc.failures.n_samples == 4 and sc.failures.n_missing == 1
    assert (sc.failures.n_failed, sc.failures.n_unparsed) == (1, 1)
    assert sc.metrics["spurious_acc"].value == 0.0 and sc.metrics["anchor_acc"].value == 1.0
    with pytest.raises(ValueError, match="bad rotations"):
        collapse_rotations([smp("x", "g", "anchor", rotation=0), smp("x", "g", "anchor")])
    with pytest.raises(ValueError, match="disagree"):
        collapse_rotations([smp("x", "g", "anchor", rotation=0, n_options=2),
                            smp("x", "h", "anchor", rotation=1, n_options=2)])  # fmt: skip


@pytest.mark.parametrize("rotation", [None, 1])
def test_duplicates_rejected(rotation: int | None) -> None:
    s = hand_worked() + [smp("g2-s1", "g2", "spurious", rotation=rotation), smp("g2-s1", "g2", "spurious", rotation=rotation)]
    with pytest.raises(ValueError, match="duplicate.*g2-s1"):
        score_samples(s, n_bootstrap=0)
    with pytest.raises(ValueError, match="duplicate.*g1-a"):
        score_samples(hand_worked() + [smp("g1-a", "g1", "anchor", False)], n_bootstrap=0)


def synthetic(n_groups: int, *, size: int = 11, n_controls: int = 0, seed: int = 1,
              correlated: bool = False, singleton_groups: bool = False) -> list[Sample]:  # fmt: skip
    """Groups of 1 anchor + (size-1) spurious; correlated: a group is all right or all wrong."""
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        p = rng.uniform(0.1, 0.7)
        all_right = rng.random() < 0.4
        for j in range(size):
            ok = all_right if correlated else rng.random() < p
            gid = f"g{g:04d}-{j}" if singleton_groups else f"g{g:04d}"
            out.append(smp(f"g{g:04d}-{j:02d}", gid, "anchor" if j == 0 else "spurious", ok,
                           source_benchmark="ab"[g % 2], spurious_attribute=f"attr{g}"))  # fmt: skip
    for c in range(n_controls):
        out.append(smp(f"c{c:05d}", f"c{c:05d}", "control", rng.random() < 0.6, source_benchmark="ab"[c % 2]))
    return out


def test_order_invariance_and_determinism() -> None:
    s = synthetic(30, n_controls=40) + hand_worked()
    a = score_samples(s, n_bootstrap=300, seed=3)
    shuffled = list(s)
    random.Random(0).shuffle(shuffled)
    assert score_samples(shuffled, n_bootstrap=300, seed=3) == a
    assert score_samples(s, n_bootstrap=300, seed=4) != a  # the seed matters (and is recorded)
    assert a.bootstrap.iterations == 300 and a.bootstrap.seed == 3 and a.bootstrap.unit == "group"


def test_cheap_path_gives_the_same_values() -> None:
    s = synthetic(30, n_controls=40) + hand_worked()
    full = score_samples(s, n_bootstrap=200)
    cheap = score_samples(s, n_bootstrap=0, breakdowns=False)
    assert values(cheap) == values(full) and cheap.breakdowns == {} and cheap.per_group == full.per_group
    assert all(m.ci_low is None for m in cheap.metrics.values())


def test_intervals_contain_estimate_and_shrink_with_more_groups() -> None:
    small = score_samples(synthetic(20, n_controls=200), seed=0)
    large = score_samples(synthetic(200, n_controls=2000), seed=0)
    for sc in (small, large):
        for k, m in sc.metrics.items():
            if m.value is not None:
                assert m.ci_low is not None and m.ci_high is not None, k
                assert m.ci_low <= m.value <= m.ci_high, (k, m)
        json.dumps({k: m.model_dump() for k, m in sc.metrics.items()}, allow_nan=False)
    for k in ("anchor_acc", "spurious_acc", "overall_acc", "mean_group_acc", "control_acc", "gap_control_spurious"):
        w_small = small.metrics[k].ci_high - small.metrics[k].ci_low
        w_large = large.metrics[k].ci_high - large.metrics[k].ci_low
        assert w_large < w_small, k


def test_group_bootstrap_wider_than_naive_on_correlated_groups() -> None:
    grouped = score_samples(synthetic(60, correlated=True), seed=0).metrics["overall_acc"]
    # same answers, but every item its own "group": the naive per-item bootstrap
    naive = score_samples(synthetic(60, correlated=True, singleton_groups=True), seed=0).metrics["overall_acc"]
    assert grouped.value == naive.value
    w_group, w_naive = grouped.ci_high - grouped.ci_low, naive.ci_high - naive.ci_low
    assert w_group > 2 * w_naive  # ≈ sqrt(11) × for perfectly correlated groups of 11


def test_ci_matches_numpy_percentile() -> None:
    """The vectorised interval equals a plain loop with np.percentile over the same draws."""
    s = synthetic(25)
    sc = score_samples(s, n_bootstrap=400, seed=7)
    acc = np.array([np.mean([x.correct for x in s if x.group_id == f"g{g:04d}"]) for g in range(25)])
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 25, size=(400, 25))
    means = acc[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    assert sc.metrics["mean_group_acc"].ci_low == pytest.approx(lo, abs=1e-12)
    assert sc.metrics["mean_group_acc"].ci_high == pytest.approx(hi, abs=1e-12)


def test_mcnemar_hand_checked() -> None:
    # exact: n = 10 discordant, P(X <= 2 | Bin(10, 1/2)) = (1 + 10 + 45) / 1024; two-sided = 112/1024
    assert mcnemar_p(8, 2) == (0.109375, "exact")
    assert mcnemar_p(2, 8) == (0.109375, "exact")
    assert mcnemar_p(0, 0) == (1.0, "exact")
    assert mcnemar_p(5, 5)[0] == 1.0
    # chi-square with continuity correction: (|20 − 10| − 1)^2 / 30 = 2.7; P(chi2_1 > 2.7) = 0.10035
    p, method = mcnemar_p(20, 10)
    assert method == "chi2_cc" and p == pytest.approx(0.100348, abs=1e-6)


def test_paired_comparison() -> None:
    # 20 groups of 1 anchor + 1 spurious; A and B agree on 30 items, A alone right on 8, B alone on 2
    a, b = [], []
    pattern = [(1, 1)] * 18 + [(0, 0)] * 12 + [(1, 0)] * 8 + [(0, 1)] * 2
    for i, (x, y) in enumerate(pattern):
        g, v = f"g{i // 2:02d}", "anchor" if i % 2 == 0 else "spurious"
        a.append(smp(f"i{i:02d}", g, v, bool(x)))
        b.append(smp(f"i{i:02d}", g, v, bool(y)))
    b.append(smp("extra", "g99", "anchor"))  # only in B: not shared
    a.append(smp("ctl", "c", "control"))  # control: not in the default variants
    b.append(smp("ctl", "c", "control", False))
    pc = paired_comparison(a, b, n_bootstrap=500)
    assert (pc.n_shared, pc.both_right, pc.a_only, pc.b_only, pc.both_wrong) == (40, 18, 8, 2, 12)
    assert (pc.acc_a, pc.acc_b, pc.diff) == (26 / 40, 20 / 40, 26 / 40 - 20 / 40)
    assert (pc.mcnemar_p, pc.mcnemar_method) == (0.109375, "exact")
    assert pc.diff_ci is not None and pc.diff_ci[0] <= pc.diff <= pc.diff_ci[1]
    assert pc == paired_comparison(list(reversed(a)), b, n_bootstrap=500)
    with_ctl = paired_comparison(a, b, n_bootstrap=0, variants=("anchor", "spurious", "control"))
    assert with_ctl.n_shared == 41 and with_ctl.a_only == 9 and with_ctl.diff_ci is None
    b[0] = smp("i00", "other", "anchor")
    with pytest.raises(ValueError, match="i00"):
        paired_comparison(a, b)


def test_speed_smoke() -> None:
    s = synthetic(124, n_controls=1240)  # 1,364 group items + 1,240 controls
    score_samples(s, n_bootstrap=10)  # warm-up
    t0 = time.perf_counter()
    sc = score_samples(s, n_bootstrap=1000)
    t1 = time.perf_counter()
    score_samples(s, n_bootstrap=0)
    t2 = time.perf_counter()
    score_samples(s[:1364], n_bootstrap=1000)
    t3 = time.perf_counter()
    print(f"\nscore_samples: {len(s)} items x 1000 bootstrap {1e3 * (t1 - t0):.1f} ms; "
          f"n_bootstrap=0 {1e3 * (t2 - t1):.1f} ms; 1,364 items (no controls) x 1000 {1e3 * (t3 - t2):.1f} ms")  # fmt: skip
    assert set(sc.metrics) == set(METRICS) and len(sc.per_group) == 124
    assert not any(math.isnan(m.value) for m in sc.metrics.values() if m.value is not None)
