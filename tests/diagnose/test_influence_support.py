"""From scores to findings: top-k supporters / opposers, cue matching, the spurious-support ratio and its
intervals (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from spuriverse.diagnose.influence.support import cluster_mean, cue_key, support_ratio, top_k, wilson


def test_top_k_keeps_only_signed_scores_in_order():
    scores = np.array([0.5, -2.0, 3.0, 0.0, -0.1, 3.0])
    ids = [f"t{i}" for i in range(6)]
    cues = ["purple", None, "purple", "purple", "teal", "teal"]
    sup, opp = top_k(scores, ids, cues, "purple", k=3)
    assert [s.train_id for s in sup] == ["t2", "t5", "t0"]  # ties keep training order
    assert [s.has_cue for s in sup] == [True, False, True]
    assert [s.train_id for s in opp] == ["t1", "t4"]  # a zero score neither supports nor opposes
    no_cue, _ = top_k(scores, ids, cues, None, k=2)
    assert all(s.has_cue is None for s in no_cue)


def test_support_ratio_and_its_interval():
    sup, _ = top_k(np.array([3.0, 2.0, 1.0, 0.5]), ["a", "b", "c", "d"], ["x", "y", "x", "x"], "x", k=4)
    r = support_ratio(sup, base_rate=0.25)
    assert (r.n_cue, r.k, r.value, r.base_rate) == (3, 4, 0.75, 0.25)
    assert r.ci_low < 0.75 < r.ci_high
    assert support_ratio([], 0.1) is None


def test_wilson_has_exact_ends():
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    lo, hi = wilson(10, 20)
    assert lo == pytest.approx(0.2993, abs=1e-3) and hi == pytest.approx(0.7007, abs=1e-3)


def test_cue_key_normalises_and_knows_none():
    assert cue_key({"spurious_attribute": " Purple Background "}, "spurious_attribute") == "purple background"
    assert cue_key({"spurious_attribute": "none (counter: purple background removed)"}, "spurious_attribute") is None
    assert cue_key({"spurious_attribute": ""}, "spurious_attribute") is None
    assert cue_key({}, "cue") is None


def test_cluster_bootstrap_is_seeded_and_brackets_the_mean():
    values, clusters = [1.0, 1.0, 0.0, 0.0, 0.5, 0.5], ["a", "a", "b", "b", "c", "c"]
    m1 = cluster_mean(values, clusters, n_boot=500, seed=3)
    m2 = cluster_mean(values, clusters, n_boot=500, seed=3)
    assert m1 == m2 and m1.n == 3 and m1.value == 0.5
    assert m1.ci_low <= 0.5 <= m1.ci_high and m1.ci_low < m1.ci_high
    assert cluster_mean([], [], n_boot=10, seed=0).value is None
