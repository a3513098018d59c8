"""What an influence backend is given: a model, the training examples and the queries, as index
sets turned into batches on demand, with the training loss and the measurement per example.

Every backend sees the same `InfluenceProblem`: kronfluence through its `Task`, dattri through an
`AttributionTask`. Two implementations: `TensorProblem` (a small `nn.Module` on tensors: the
convex and MLP checks, the LDS bench) and `spuriverse.diagnose.influence.lvlm.LVLMProblem` (a
fine-tuned vision-language model with the train stage's own objective).

**Sign convention** (every backend, every score): ``score[q, n] = -grad f_q . (H + damping)^-1 .
grad loss_n``, the first-order change of the measurement f of query q when training example n is
up-weighted. Positive: example n pushed the model toward the measured answer (f up); removing it
would lower f. Self-influence is ``grad loss_n . (H + damping)^-1 . grad loss_n >= 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

SIGN_CONVENTION = (
    "score = -grad f(query) . (H + damping)^-1 . grad loss(train example): the first-order change of the "
    "query's measurement when the training example is up-weighted. Positive = the example pushed the model "
    "toward the measured answer (removing it would weaken that answer); negative = it pushed away."
)


class InfluenceProblem(Protocol):
    """The contract between the data/model side and an influence backend."""

    model: nn.Module

    @property
    def n_train(self) -> int: ...

    @property
    def n_query(self) -> int: ...

    def train_batch(self, indices: Sequence[int]) -> Any:
        """Model inputs for these training examples (kept in this order)."""

    def query_batch(self, indices: Sequence[int]) -> Any:
        """Model inputs for these queries (kept in this order)."""

    def train_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Per-example training loss [B] (the objective the model was trained with)."""

    def measurement(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Per-query measurement f [B]; larger = closer to the measured answer."""

    def parameter_names(self) -> list[str]:
        """The parameters influence is computed over (full names in `model`)."""

    def tracked_modules(self) -> list[str]:
        """The linear modules holding those parameters, each on the loss's gradient path."""

    def attention_mask(self, batch: Any) -> torch.Tensor | None:
        """Which token positions of a batch are real (None: every position)."""

    def shares_modules(self) -> bool:
        """True when one batch runs a tracked module more than once (kronfluence must sum)."""


@dataclass
class TensorProblem:
    """A small model on in-memory tensors. `loss_fn(model, batch)` / `measure_fn(model, batch)`
    return per-example values; a batch is a tuple of tensors indexed along dim 0.

    `params`: the parameter names to attribute over (default: every parameter)."""

    model: nn.Module
    train: tuple[torch.Tensor, ...]
    query: tuple[torch.Tensor, ...]
    loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]
    measure_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]
    params: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.params:
            self.params = [n for n, _ in self.model.named_parameters()]

    @property
    def n_train(self) -> int:
        return int(self.train[0].shape[0])

    @property
    def n_query(self) -> int:
        return int(self.query[0].shape[0])

    def train_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return tuple(t[idx] for t in self.train)

    def query_batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return tuple(t[idx] for t in self.query)

    def train_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return self.loss_fn(model, batch)

    def measurement(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return self.measure_fn(model, batch)

    def parameter_names(self) -> list[str]:
        return list(self.params)

    def tracked_modules(self) -> list[str]:
        """The `nn.Linear` submodules holding `params` (kronfluence cannot wrap the root module)."""
        wanted = {p.rsplit(".", 1)[0] for p in self.params if "." in p}
        return [n for n, m in self.model.named_modules() if n in wanted and isinstance(m, nn.Linear)]

    def attention_mask(self, batch: Any) -> torch.Tensor | None:
        return None

    def shares_modules(self) -> bool:
        return False


def modules_with_gradient(model: nn.Module, candidates: Sequence[str], loss: torch.Tensor) -> list[str]:
    """The `candidates` (module names) whose weight received a gradient from `loss`: modules off the
    gradient path (e.g. LLaVA's last CLIP layer, unused with ``vision_feature_layer=-2``) are dropped.
    Backpropagates `loss` with `torch.autograd.grad` (no `.grad` is left on the model)."""
    modules = dict(model.named_modules())
    weights = [modules[n].weight for n in candidates]
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [n for n, g in zip(candidates, grads) if g is not None]
