"""The statistics over seeds: Student-t intervals (clipped to the possible range) and the paired t-test."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from spuriverse.study.summary import paired_t_p, seed_stat


def test_seed_interval_is_students_t_over_seeds():
    s = seed_stat([0.5, 0.6, 0.7])
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # 4.303 x sd / sqrt(n)
    assert s.mean == pytest.approx(0.6) and s.sd == pytest.approx(0.1)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.6 - half, 0.6 + half))
    assert seed_stat([0.05, 0.1, 0.3]).ci_low == 0.0  # an accuracy interval never leaves [0, 1]
    assert seed_stat([-0.9, -0.5, -0.95], bounds=(-1, 1)).ci_low == -1.0
    one = seed_stat([0.4])
    assert one.mean == 0.4 and one.ci_low is None and one.sd is None  # one seed: no interval
    assert seed_stat([0.4, None]).ci_low is None and seed_stat([None]).mean is None


def test_paired_t_test_over_seeds():
    diffs = [0.1, 0.2, 0.3, 0.05]
    assert paired_t_p(diffs) == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue)
    assert paired_t_p([0.1]) is None and paired_t_p([0.2, 0.2]) is None  # undefined: one seed, or sd 0
