"""Cluster-bootstrap arithmetic shared by scoring (`metrics`) and paired comparison (`compare`).

A resample is a row of cluster multiplicities; every quantity is a sum over clusters, so one bootstrap
is one matrix product: (resamples x clusters) counts @ (clusters x quantities) per-cluster sums.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cluster_totals", "matmul_rows", "percentile_ci", "ratio", "resample_counts"]


def resample_counts(rng: np.random.Generator, n_clusters: int, n_boot: int) -> np.ndarray:
    """Row 0 = the observed data (each cluster once); rows 1.. = bootstrap multiplicities."""
    idx = rng.integers(0, n_clusters, size=(n_boot, n_clusters)) if n_clusters else np.zeros((n_boot, 0), int)
    flat = (idx + (np.arange(n_boot) * n_clusters)[:, None]).ravel()
    boot = np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)
    return np.vstack([np.ones((1, n_clusters)), boot.astype(float)])


def matmul_rows(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """m @ x, but row 0 (the point estimate) summed by numpy rather than BLAS, so estimates are
    bit-identical whatever the number of bootstrap rows."""
    head = (m[0].reshape(-1, *([1] * (x.ndim - 1))) * x).sum(axis=0)
    return np.concatenate([head[None], m[1:] @ x])


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den is 0 (an undefined quantity, never a division error)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def percentile_ci(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
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


def cluster_totals(cols: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cluster sums (name -> (clusters,)) to totals per resample (name -> (resamples,))."""
    names = list(cols)
    mat = np.column_stack([cols[k] for k in names]) if names else np.zeros((counts.shape[1], 0))
    t = matmul_rows(counts, mat)
    return {k: t[:, j] for j, k in enumerate(names)}
