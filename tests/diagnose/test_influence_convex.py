"""Ground truth on a convex problem: L2-regularised logistic regression in float64, where exact
leave-one-out retraining is cheap. The influence scores must predict the real change of each query's
loss when a training example is removed, with our sign: a positive score (the example pushed the
query's measurement up) means removing the example lowers it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.influence_tasks import logistic
from spuriverse.diagnose.influence import BackendSettings, build_backend

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def convex():
    task = logistic(n=100, d=6, n_query=4, lam=1e-2, seed=0)
    theta = task.fit()
    loo = task.loo_changes(theta).numpy()  # [query, n]: f(without j) - f(all)
    scores = {}
    for method in ("explicit", "cg", "arnoldi", "ekfac"):
        backend = build_backend(method, BackendSettings(damping=task.lam, batch_size=25, query_batch_size=4))
        problem = task.problem(theta)
        backend.fit(problem)
        scores[method] = backend.pairwise(problem, range(4))
        backend.close()
    return task, loo, scores


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_explicit_matches_exact_leave_one_out(convex):
    _, loo, scores = convex
    # removing example j changes f by about -score_j / n: correlate the score with minus the change
    r = [_pearson(scores["explicit"][q], -loo[q]) for q in range(loo.shape[0])]
    print(f"explicit IF vs leave-one-out, Pearson per query: {np.round(r, 4)}")
    assert min(r) >= 0.95


@pytest.mark.parametrize("method", ["cg", "arnoldi"])
def test_iterative_solvers_match_explicit(convex, method):
    _, _, scores = convex
    r = [_pearson(scores[method][q], scores["explicit"][q]) for q in range(4)]
    print(f"{method} vs explicit, Pearson per query: {np.round(r, 5)}")
    assert min(r) >= 0.99


def test_sign_matches_the_actual_change(convex):
    task, loo, scores = convex
    s = scores["explicit"]
    for q in range(loo.shape[0]):
        top = np.argsort(-s[q])[:5]      # the strongest supporters: removing them must lower f
        bottom = np.argsort(s[q])[:5]    # the strongest opposers: removing them must raise f
        assert (loo[q, top] < 0).all() and (loo[q, bottom] > 0).all()
        # the first-order magnitude: change ~ -score / n (leave-one-out is a finite step: within 25 %)
        slope = float(np.polyfit(s[q], loo[q], 1)[0])
        assert slope == pytest.approx(-1 / task.n, rel=0.25)


def test_kronfluence_has_the_same_sign(convex):
    """kronfluence's raw score is positive when up-weighting *lowers* f: the backend negates it."""
    _, loo, scores = convex
    r = [_pearson(scores["ekfac"][q], -loo[q]) for q in range(loo.shape[0])]
    print(f"EK-FAC vs leave-one-out, Pearson per query: {np.round(r, 4)}")
    assert min(r) >= 0.9
