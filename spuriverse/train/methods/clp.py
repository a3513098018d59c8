"""CLP, causal logit perturbation (arXiv 2505.15246), on the option objective: the math.

A perturbation network P(g; Omega) reads ten *training characteristics* g of each item (computed from
the current model, detached) and outputs an offset delta for each of the item's K options, added to the
option logits inside the training cross-entropy only. Omega is meta-learned online: a virtual SGD step
W_hat(Omega) = W - alpha grad_W mean CE(u(W) + delta(Omega), y) over the *trainable* parameters
(`torch.func.functional_call`), then Omega <- Adam step on the meta loss at W_hat.

Done right, where the released code was not:
- delta varies across options. A per-item constant is a no-op under cross-entropy (CE(u + c 1) = CE(u)),
  so delta is projected to zero mean over the item's options: a constant is removed exactly.
- Options are shuffled per item, so option slots carry no meaning. The network's K outputs are in
  *role order*: the answer first, then the other options by descending current logit (the strongest
  competitor, often the cue's option, second); they are scattered back to the slots. The method is
  thus equivariant to how the options are lettered.
- delta is bounded: bound x tanh(raw / bound) per role before centring.
- The ten characteristics (their code, adapted to options): CE loss; margin p_y - max_{j!=y} p_j;
  ||onehot - p||; cosine(last hidden state, LM-head row of the answer letter); negative entropy; prior
  of the answer class; previous-epoch mean loss of the class (running means really accumulated: the
  current epoch's running mean until an epoch has finished); norm of that LM-head row; loss - class
  mean loss; margin - class mean margin.

The meta-gradient: Omega enters the virtual step only through s_i = softmax(u_i + delta_i), so
dL_meta/dOmega = -alpha / B sum_i (J_i g)^T ds_i/dOmega, with g = grad L_meta at W_hat and J_i = du_i/dW.
`second order` differentiates through the virtual step with `create_graph=True`; `first_order` keeps no
graph through it and takes the Jacobian-vector product J g by a central difference of two extra forwards
(no second derivatives; equal to the second-order result up to the difference error, both tested
against finite differences of the meta loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spuriverse.train.methods.meta import meta_objective

N_CHARACTERISTICS = 10
# (params or None for the module's own, part) -> option-letter logits [B, S]; missing slots very negative
LogitsOf = Callable[[dict[str, torch.Tensor] | None, dict[str, Any]], torch.Tensor]


class PerturbationNet(nn.Module):
    """BatchNorm on the characteristics, two hidden layers (ReLU), K outputs (role order); the output
    layer starts at zero."""

    def __init__(self, n_options: int, hidden: int = 100, n_in: int = N_CHARACTERISTICS) -> None:
        super().__init__()
        self.n_options = n_options
        out = nn.Linear(hidden, n_options)
        nn.init.zeros_(out.weight)  # delta starts at 0: CLP starts as ERM and departs as Omega learns
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(nn.BatchNorm1d(n_in), nn.Linear(n_in, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), out)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        if g.shape[0] < 2 and self.training:  # batch statistics need two rows: use the running ones
            self.net[0].eval()
            try:
                return self.net(g)
            finally:
                self.net[0].train()
        return self.net(g)


def role_slots(u: torch.Tensor, answer: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """[B, K] slot indices in role order: the answer's slot, then the other options' slots by
    descending logit (ties: earliest slot). Every item must have exactly K options."""
    if bool((mask.sum(1) != k).any()):
        raise ValueError(f"every item must have exactly {k} options for this perturbation network")
    key = u.detach().masked_fill(~mask, float("-inf")).clone()
    key.scatter_(1, answer[:, None], float("inf"))
    return torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]


def project(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """delta minus its mean over each item's real options (zero on missing slots): removes any
    per-item constant, the part of delta that cannot change the cross-entropy."""
    m = mask.to(delta.dtype)
    mean = (delta * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
    return (delta - mean) * m


def slot_delta(raw: torch.Tensor, slots: torch.Tensor, mask: torch.Tensor, bound: float) -> torch.Tensor:
    """Network output [B, K] (role order) -> bounded, zero-mean offsets [B, S] in slot order."""
    bounded = bound * torch.tanh(raw / bound)
    delta = torch.zeros(mask.shape, dtype=raw.dtype, device=raw.device).scatter(1, slots, bounded)
    return project(delta, mask)


class ClassStats:
    """Per-class running means of loss and margin: the current epoch's sums, and the last finished
    epoch's means (used once an epoch has finished; before that the current running means)."""

    def __init__(self, n_classes: int, prior: torch.Tensor) -> None:
        self.prior = prior.float()
        self.sums = torch.zeros(n_classes, 3)  # loss, margin, count (current epoch)
        self.prev: torch.Tensor | None = None  # [n_classes, 2] means of the last finished epoch
        self.epoch = 0

    def roll(self, epoch: int) -> None:
        if epoch > self.epoch:
            self.prev = self.means(self.sums)
            self.sums.zero_()
            self.epoch = epoch

    @staticmethod
    def means(sums: torch.Tensor) -> torch.Tensor:
        return sums[:, :2] / sums[:, 2:3].clamp(min=1)

    def current(self) -> torch.Tensor:
        return self.prev if self.prev is not None else self.means(self.sums)

    def update(self, cls: torch.Tensor, loss: torch.Tensor, margin: torch.Tensor) -> None:
        rows = torch.stack([loss, margin, torch.ones_like(loss)], 1).detach().float().cpu()
        self.sums.index_add_(0, cls.cpu(), rows)

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums.clone(), "prev": None if self.prev is None else self.prev.clone(),
                "epoch": self.epoch, "prior": self.prior.clone()}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.prev, self.epoch, self.prior = state["sums"], state["prev"], state["epoch"], state["prior"]


def characteristics(u: torch.Tensor, answer: torch.Tensor, h: torch.Tensor, w_y: torch.Tensor, cls: torch.Tensor,
                    stats: ClassStats) -> torch.Tensor:
    """The ten characteristics [B, 10] (detached) from option logits u [B, S], the last hidden state h
    [B, H] and the answer letter's LM-head row w_y [B, H]; then the class statistics are updated."""
    u = u.detach().float()
    p = torch.softmax(u, dim=1)
    p_y = p.gather(1, answer[:, None])[:, 0]
    loss = -torch.log_softmax(u, dim=1).gather(1, answer[:, None])[:, 0]
    margin = p_y - p.scatter(1, answer[:, None], float("-inf")).max(1).values
    onehot = F.one_hot(answer, u.shape[1]).float()
    means = stats.current().to(u.device)[cls]
    g = torch.stack([
        loss, margin, (onehot - p).norm(dim=1), F.cosine_similarity(h.float(), w_y.float(), dim=1),
        (p * torch.log(p.clamp(min=1e-30))).sum(1), stats.prior.to(u.device)[cls], means[:, 0],
        w_y.float().norm(dim=1), loss - means[:, 0], margin - means[:, 1],
    ], dim=1)
    stats.update(cls, loss, margin)
    return g


def _virtual(params: dict[str, torch.Tensor], loss: torch.Tensor, lr: float, graph: bool) -> dict[str, torch.Tensor]:
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=graph, retain_graph=True, allow_unused=True)
    return {n: p if g is None else p - lr * g for (n, p), g in zip(params.items(), grads)}


def _nonzero(grads: tuple[torch.Tensor | None, ...], like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(w) if g is None else g for w, g in zip(like, grads)]


def meta_gradient(logits_of: LogitsOf, params: dict[str, torch.Tensor], train_part: dict[str, Any], u: torch.Tensor,
                  delta: torch.Tensor, omega: list[torch.Tensor], meta_parts: dict[str, dict[str, Any]],
                  weights: dict[str, float], virtual_lr: float, first_order: bool = False,
                  fd_eps: float = 1e-3) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(meta loss at W_hat, dL_meta/dOmega) for one virtual step. `u` = logits_of(None, train_part)
    with its graph to `params`; `delta` [B, S] with its graph to `omega`; the train part's
    `answer_index` is y. Leaves every `.grad` untouched."""
    answer = train_part["answer_index"]

    def meta_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return meta_objective(lambda part: logits_of(p, part), meta_parts, weights)

    if not first_order:
        loss = meta_loss(_virtual(params, F.cross_entropy(u + delta, answer), virtual_lr, graph=True))
        # retain_graph: u's forward graph still serves the actual step's backward
        return loss.detach(), _nonzero(torch.autograd.grad(loss, omega, allow_unused=True, retain_graph=True), omega)
    hat = {n: p.detach().requires_grad_(True) for n, p in
           _virtual(params, F.cross_entropy(u + delta.detach(), answer), virtual_lr, graph=False).items()}
    loss = meta_loss(hat)
    g_meta = _nonzero(torch.autograd.grad(loss, list(hat.values()), allow_unused=True), list(hat.values()))
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in g_meta))
    if norm == 0:
        return loss.detach(), [torch.zeros_like(w) for w in omega]
    eps = fd_eps / norm  # a step of length fd_eps along g
    with torch.no_grad():
        plus = logits_of({n: p + eps * g for (n, p), g in zip(params.items(), g_meta)}, train_part)
        minus = logits_of({n: p - eps * g for (n, p), g in zip(params.items(), g_meta)}, train_part)
    jvp = ((plus - minus) / (2 * eps)).detach()  # J_i g for every item, [B, S]
    surrogate = -virtual_lr / u.shape[0] * (torch.softmax(u.detach() + delta, dim=1) * jvp).sum()
    return loss.detach(), _nonzero(torch.autograd.grad(surrogate, omega, allow_unused=True), omega)


__all__ = ["ClassStats", "LogitsOf", "N_CHARACTERISTICS", "PerturbationNet", "characteristics", "meta_gradient",
           "project", "role_slots", "slot_delta"]
