"""Mislabel detection: 10 % of a small MLP's training labels flipped; the flipped examples should have
the highest self-influence. Reported beside the plain-loss baseline (both printed with -s)."""

from __future__ import annotations

import torch

from helpers.influence_tasks import blobs, ce, flip_labels, mlp_problem, train_mlp
from spuriverse.diagnose.influence import BackendSettings, build_backend
from spuriverse.diagnose.influence.support import auroc

torch.set_num_threads(1)


def test_self_influence_finds_flipped_labels():
    found = []
    for seed in range(3):
        X, y = blobs(300, spread=1.5, seed=seed)
        noisy, flipped = flip_labels(y, 0.10, seed=seed)
        model = train_mlp(X, noisy, seed=seed)
        with torch.no_grad():
            loss = ce(model, (X, noisy)).numpy()
        problem = mlp_problem(model, X, noisy, X[:2], noisy[:2])
        backend = build_backend("ekfac", BackendSettings(batch_size=100))
        backend.fit(problem)
        self_inf = backend.self_influence(problem)
        backend.close()
        found.append((auroc(self_inf, flipped.numpy()), auroc(loss, flipped.numpy())))
    for seed, (si, lo) in enumerate(found):
        print(f"seed {seed}: EK-FAC self-influence AUROC {si:.3f}, loss baseline AUROC {lo:.3f}")
    assert all(si > 0.75 for si, _ in found)
    assert sum(si for si, _ in found) / len(found) > 0.85


def test_auroc_is_the_mann_whitney_statistic():
    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == 0.5
