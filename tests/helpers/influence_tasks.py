"""Small problems with known answers for the influence backends: L2-regularised logistic regression
in float64 (exact leave-one-out retraining by Newton's method) and a small MLP classifier on Gaussian
blobs (mislabel detection, LDS). Used by tests/diagnose and bench/influence_lds.py."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spuriverse.diagnose.influence.problem import TensorProblem


# -- convex: logistic regression -------------------------------------------------------------
@dataclass
class Logistic:
    X: torch.Tensor
    y: torch.Tensor
    Xq: torch.Tensor
    yq: torch.Tensor
    lam: float

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def objective(self, theta: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(1/n) sum over kept examples of the logistic loss + lam/2 |theta|^2 (n = all examples, so
        removing one example is exactly down-weighting it to zero)."""
        logits = self.X[keep] @ theta[:-1] + theta[-1]
        return F.binary_cross_entropy_with_logits(logits, self.y[keep], reduction="sum") / self.n \
            + self.lam / 2 * theta.pow(2).sum()

    def fit(self, keep: torch.Tensor | None = None, start: torch.Tensor | None = None) -> torch.Tensor:
        """The exact minimiser (Newton's method to machine precision)."""
        keep = torch.ones(self.n, dtype=torch.bool) if keep is None else keep
        theta = torch.zeros(self.X.shape[1] + 1, dtype=torch.float64) if start is None else start.clone()
        for _ in range(100):
            g = torch.autograd.functional.jacobian(lambda t: self.objective(t, keep), theta)
            h = torch.autograd.functional.hessian(lambda t: self.objective(t, keep), theta)
            step = torch.linalg.solve(h, g)
            theta = theta - step
            if float(step.abs().max()) < 1e-14:
                break
        return theta

    def query_loss(self, theta: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.Xq @ theta[:-1] + theta[-1], self.yq, reduction="none")

    def loo_changes(self, theta: torch.Tensor) -> torch.Tensor:
        """[n_query, n]: f(theta without example j) - f(theta), retrained exactly."""
        f0 = self.query_loss(theta)
        rows = []
        for j in range(self.n):
            keep = torch.ones(self.n, dtype=torch.bool)
            keep[j] = False
            rows.append(self.query_loss(self.fit(keep, start=theta)) - f0)
        return torch.stack(rows, dim=1)

    def problem(self, theta: torch.Tensor) -> TensorProblem:
        """Influence problem at `theta`: per-example logistic loss (the L2 term is the damping)."""
        model = nn.Sequential(nn.Linear(self.X.shape[1], 1)).double()
        with torch.no_grad():
            model[0].weight.copy_(theta[:-1][None])
            model[0].bias.copy_(theta[-1:])

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(m(batch[0])[:, 0], batch[1], reduction="none")

        return TensorProblem(model, (self.X, self.y), (self.Xq, self.yq), loss, loss)


def logistic(n: int = 100, d: int = 6, n_query: int = 4, lam: float = 1e-2, seed: int = 0) -> Logistic:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = (torch.sigmoid(X @ w) > torch.rand(n, generator=g, dtype=torch.float64)).double()
    Xq = torch.randn(n_query, d, generator=g, dtype=torch.float64)
    yq = (torch.rand(n_query, generator=g, dtype=torch.float64) > 0.5).double()
    return Logistic(X, y, Xq, yq, lam)


# -- a small MLP on Gaussian blobs -------------------------------------------------------------
def blobs(n: int, *, n_classes: int = 4, dim: int = 2, spread: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3.0
    y = torch.randint(0, n_classes, (n,), generator=g)
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def flip_labels(y: torch.Tensor, frac: float, *, n_classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy labels, flipped mask): `frac` of the labels moved to another class."""
    g = torch.Generator().manual_seed(seed)
    n = y.shape[0]
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[torch.randperm(n, generator=g)[: int(round(frac * n))]] = True
    shift = torch.randint(1, n_classes, (n,), generator=g)
    return torch.where(flipped, (y + shift) % n_classes, y), flipped


def mlp(dim: int = 2, hidden: int = 16, n_classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))


def train_mlp(X: torch.Tensor, y: torch.Tensor, *, seed: int = 0, steps: int = 300, weight_decay: float = 1e-3,
              hidden: int = 16) -> nn.Module:
    """Full-batch Adam (deterministic for a seed)."""
    model = mlp(X.shape[1], hidden, int(y.max()) + 1 if y.numel() else 4, seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()


def ce(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return F.cross_entropy(m(batch[0]), batch[1], reduction="none")


def mlp_problem(model: nn.Module, X: torch.Tensor, y: torch.Tensor, Xq: torch.Tensor, yq: torch.Tensor) -> TensorProblem:
    """Training loss = cross-entropy; measurement = the query's cross-entropy (its correct-label loss)."""
    return TensorProblem(model, (X, y), (Xq, yq), ce, ce)
