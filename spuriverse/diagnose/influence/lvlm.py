"""A fine-tuned vision-language model as an influence problem: the train stage's own objective on
each training example, a measurement on each query.

- **Training loss** = the run's objective, computed by the train stage's functions
  (`spuriverse.train.batching.option_loss` / `completion_loss`, inputs built by its `Batcher`):
  the option loss over the letters (+ `vocab_weight` x the full-vocabulary term) for choice items and
  the completion loss for naming rows (everything under the completion objective). Options are in
  each example's own order (training shuffled them per epoch; influence uses one order).
- **Measurement** f per query (choice items, eval's prompt and letter position), larger = more of
  the measured answer: `contrast` = log p(measured letter) - log p(correct letter), over the
  option letters; `loss` = -log p(correct letter). The measured letter is the model's answer when
  wrong, else its strongest wrong option (`measured_letters`).
- **Batches that mix choice items and naming rows** run two forwards (one per objective); each has
  every row of the batch, rows of the other kind replaced by a filler with weight 0, so row i of
  both forwards is example i and the per-example gradients add up (kronfluence's shared-module
  mode). Examples are ordered choice-first, so at most one batch mixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spuriverse.diagnose.influence.problem import modules_with_gradient
from spuriverse.schema import LETTERS, letters_for
from spuriverse.train.batching import Batcher, completion_loss, option_logits, option_loss
from spuriverse.train.data import TrainExample

MEASUREMENTS = ("contrast", "loss")


@dataclass
class QueryPrediction:
    """The model's answer to a query before scoring: letter probabilities over its options."""

    predicted: str
    measured: str
    probs: dict[str, float]


def _to(part: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in part.items():
        out[k] = _to(v, device) if isinstance(v, dict) else (v.to(device) if hasattr(v, "to") else v)
    return out


class LVLMProblem:
    """`backend`: the loaded `HFBackend` (processor, prompts); `model`: its model with the trained
    adapter attached unmerged (peft), in eval mode. `objective`, `strategy`, `vocab_weight`: the
    run's. `measurement`: contrast | loss."""

    def __init__(self, backend: Any, model: nn.Module, train: Sequence[TrainExample], queries: Sequence[TrainExample],
                 *, objective: str = "option", strategy: str = "direct", vocab_weight: float = 0.0,
                 measurement: str = "contrast", candidates: Sequence[str] | None = None) -> None:
        if measurement not in MEASUREMENTS:
            raise ValueError(f"unknown measurement {measurement!r} ({', '.join(MEASUREMENTS)})")
        bad = [q.item_id for q in queries if q.kind != "choice"]
        if bad:
            raise ValueError(f"queries must be multiple-choice items; naming rows: {', '.join(bad[:5])}")
        self.model, self.backend = model.eval(), backend
        self.train = sorted(train, key=lambda ex: ex.kind != "choice")  # choice first (stable)
        self.queries = list(queries)
        self.objective, self.vocab_weight, self.measure_kind = objective, vocab_weight, measurement
        self.batcher = Batcher(backend, objective=objective, strategy=strategy)
        self.device = next(model.parameters()).device
        self.measured: dict[int, int] = {}  # query index -> measured letter slot
        kinds = {ex.kind for ex in self.train}
        self._mixed = objective == "option" and len(kinds) > 1
        self._fillers = {ex.kind: ex for ex in reversed(self.train)} if self._mixed else {}
        self._tracked = self._probe(list(candidates) if candidates is not None else lora_modules(model))

    # -- sizes and ids ---------------------------------------------------------------------
    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def n_query(self) -> int:
        return len(self.queries)

    # -- batches ---------------------------------------------------------------------------
    def train_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        rows = [self.train[i] for i in indices]
        if self.objective != "option":
            return _to({"lm": self.batcher.completion_batch(rows)}, self.device)
        batch: dict[str, Any] = {}
        for kind, key, build in (("choice", "choice", self.batcher.choice_batch),
                                 ("naming", "lm", self.batcher.completion_batch)):
            if not any(ex.kind == kind for ex in rows):
                continue
            if all(ex.kind == kind for ex in rows):
                batch[key] = build(rows)
            else:  # a mixed batch: every row, the other kind's rows as weight-0 fillers
                filled = [ex if ex.kind == kind else self._fillers[kind] for ex in rows]
                batch[key] = {**build(filled), "weight": torch.tensor([float(ex.kind == kind) for ex in rows])}
        return _to(batch, self.device)

    def query_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        part = self.batcher.choice_batch([self.queries[i] for i in indices])
        part["measured_index"] = torch.tensor([self.measured.get(i, -1) for i in indices])
        return _to(part, self.device)

    # -- losses ----------------------------------------------------------------------------
    def train_loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        total: torch.Tensor | None = None
        if "choice" in batch:
            loss, _ = option_loss(model, batch["choice"], self.vocab_weight)
            total = loss * batch["choice"].get("weight", 1.0)
        if "lm" in batch:
            loss = completion_loss(model, batch["lm"]) * batch["lm"].get("weight", 1.0)
            total = loss if total is None else total + loss
        assert total is not None
        return total

    def measurement(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        letters, _ = option_logits(model, batch)
        logp = torch.log_softmax(letters, dim=-1)
        correct = logp.gather(1, batch["answer_index"][:, None])[:, 0]
        if self.measure_kind == "loss":
            return -correct
        measured = batch["measured_index"]
        if bool((measured < 0).any()):
            raise RuntimeError("measured letters unknown: call predict() on the queries first")
        return logp.gather(1, measured[:, None])[:, 0] - correct

    # -- what the model answers --------------------------------------------------------------
    @torch.no_grad()
    def predict(self, indices: Sequence[int]) -> list[QueryPrediction]:
        """The model's letter probabilities for these queries; sets each query's measured letter."""
        part = self.query_batch(indices)
        letters, _ = option_logits(self.model, part)
        probs = torch.softmax(letters, dim=-1).cpu()
        out = []
        for row, i in enumerate(indices):
            q = self.queries[i]
            valid = letters_for(len(q.options))
            p = probs[row, : len(valid)]
            pred = int(torch.argmax(p))  # ties: the earliest letter, as the scorer
            correct = valid.index(q.answer or "A")
            wrong = p.clone()
            wrong[correct] = -1.0
            measured = pred if pred != correct else int(torch.argmax(wrong))
            self.measured[i] = measured
            out.append(QueryPrediction(LETTERS[pred], LETTERS[measured], {valid[k]: float(p[k]) for k in range(len(valid))}))
        return out

    # -- what influence is computed over -------------------------------------------------------
    def _probe(self, candidates: list[str]) -> list[str]:
        """Keep the candidate modules that get a gradient from the training loss (one batch of each
        kind) and from the measurement (one query): a module off the gradient path is dropped."""
        if not candidates:
            return []
        modules = dict(self.model.named_modules())
        saved = {n: modules[n].weight.requires_grad for n in candidates}
        for n in candidates:
            modules[n].weight.requires_grad_(True)
        try:
            firsts = [next(i for i, ex in enumerate(self.train) if ex.kind == k) for k in {ex.kind for ex in self.train}]
            loss = self.train_loss(self.model, self.train_batch(firsts)).sum()
            if self.queries:
                self.measured.setdefault(0, 0)
                loss = loss + self.measurement(self.model, self.query_batch([0])).sum()
                self.measured.pop(0)
            return modules_with_gradient(self.model, candidates, loss)
        finally:
            for n, flag in saved.items():
                modules[n].weight.requires_grad_(flag)

    def tracked_modules(self) -> list[str]:
        return list(self._tracked)

    def parameter_names(self) -> list[str]:
        return [f"{n}.weight" for n in self._tracked]

    def attention_mask(self, batch: dict[str, Any]) -> torch.Tensor | None:
        if "inputs" in batch:  # a query batch
            return batch["inputs"]["attention_mask"]
        parts = [p for k, p in batch.items() if k in ("choice", "lm")]
        if len(parts) != 1:
            return None  # two forwards of different lengths: no single mask fits
        return parts[0]["inputs"]["attention_mask"]

    def shares_modules(self) -> bool:
        return self._mixed


def lora_modules(model: nn.Module) -> list[str]:
    """The peft LoRA linears (`...lora_A.<adapter>`, `...lora_B.<adapter>`) of `model`."""
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(f".{ab}." in f"{n}." for ab in ("lora_A", "lora_B"))]


__all__ = ["LVLMProblem", "MEASUREMENTS", "QueryPrediction", "lora_modules"]
