"""Linear datamodeling score (LDS) of the influence methods on a small task: how well the scores
predict the query loss of models retrained on random halves of the training set.

    python bench/influence_lds.py [--quick] [--subsets 20] [--seeds 2]

Task: a small MLP on 4 Gaussian blobs (200 training points, 20 queries). For each of `--subsets`
random 50 % subsets S, the MLP is retrained from `--seeds` initialisations; the actual f(S) is the
query's loss averaged over seeds. The prediction of a method is sum over i in S of score_i (our sign:
score_i = the change of f when example i is up-weighted). LDS = Spearman rank correlation between
predicted and actual f over the subsets, averaged over the queries (with the spread over queries).
Methods: EK-FAC (kronfluence), TracIn (dattri, final weights) and random scores. Not a test gate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.influence_tasks import blobs, ce, mlp_problem, train_mlp  # noqa: E402


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 subsets, 2 seeds, short training (checks the bench runs)")
    p.add_argument("--subsets", type=int, default=20)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--n-query", type=int, default=20)
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.quick:
        a.subsets, a.seeds, a.steps = 4, 2, 60
    from spuriverse.diagnose.influence import BackendSettings, build_backend

    X, y = blobs(a.n_train + a.n_query, spread=1.5, seed=0)
    Xt, yt, Xq, yq = X[: a.n_train], y[: a.n_train], X[a.n_train:], y[a.n_train:]
    t0 = time.perf_counter()
    model = train_mlp(Xt, yt, seed=0, steps=a.steps)
    scores: dict[str, np.ndarray] = {}
    for method in ("ekfac", "tracin"):
        problem = mlp_problem(model, Xt, yt, Xq, yq)
        backend = build_backend(method, BackendSettings(batch_size=50, query_batch_size=a.n_query))
        backend.fit(problem)
        scores[method] = backend.pairwise(problem, range(a.n_query))
        backend.close()
    scores["random"] = np.random.default_rng(0).standard_normal((a.n_query, a.n_train))
    rng = np.random.default_rng(1)
    masks = np.zeros((a.subsets, a.n_train), dtype=bool)
    actual = np.zeros((a.subsets, a.n_query))
    for s in range(a.subsets):
        masks[s, rng.choice(a.n_train, a.n_train // 2, replace=False)] = True
        keep = torch.from_numpy(masks[s])
        for seed in range(a.seeds):
            m = train_mlp(Xt[keep], yt[keep], seed=seed, steps=a.steps)
            with torch.no_grad():
                actual[s] += ce(m, (Xq, yq)).numpy() / a.seeds
    print(f"{a.subsets} subsets x {a.seeds} seeds, {a.n_train} training points, {a.n_query} queries "
          f"({time.perf_counter() - t0:.0f} s)")
    for method, sc in scores.items():
        predicted = masks.astype(float) @ sc.T  # [subsets, queries]
        lds = np.array([_spearman(predicted[:, q], actual[:, q]) for q in range(a.n_query)])
        lo, hi = np.percentile(lds, [25, 75])
        print(f"  LDS {method:7s} mean {np.nanmean(lds):+.3f} (queries' interquartile range {lo:+.3f} .. {hi:+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
