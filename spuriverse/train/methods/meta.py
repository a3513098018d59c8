"""The meta set of `erm-meta` and `clp`: a small clean set balanced over answer classes, plus factual
(F: answer kept, cue/background replaced) and counterfactual (CF: object removed) versions.

Where the rows carry `core_mask` (spuriverse-world), F and CF images are built from the masks with
`spuriverse.data.edits` (F: the object on another clean item's background; CF: the object removed
with the chosen fill; the `cue_mask` keeps the cue out of the tiled texture). Without masks (a real
benchmark), the clean items are its non-counter items and its `counter` images are the F items; CF
items cannot be made, so a positive counterfactual weight is an error before training starts.

Losses: cross-entropy on clean and F items; -log(1 - p_y) on CF items (the object is gone, so the
answer y must not be supported), computed stably from the option logits.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from spuriverse.data.edits import CF_FILLS, MaskError, decode_image, decode_mask, encode_png, remove_core, swap_background
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train.batching import shuffle_options
from spuriverse.train.data import TrainDataError, TrainExample, load_examples, summarize

KINDS = ("clean", "factual", "counterfactual")


@dataclass
class MetaSet:
    clean: list[TrainExample]
    factual: list[TrainExample]
    counterfactual: list[TrainExample]
    factual_from: str  # "masks" or "counter"
    fingerprint: str

    def items(self) -> list[TrainExample]:
        return self.clean + self.factual + self.counterfactual

    def batch(self, seed: int, step: int, size: int) -> dict[str, list[TrainExample]]:
        """The meta batch of optimizer step `step`: up to `size` items of each kind, options shuffled,
        all a function of (seed, step) alone, so a resumed run draws the same batches."""
        rng = random.Random(f"{seed}/meta/{step}")
        out = {}
        for kind, items in zip(KINDS, (self.clean, self.factual, self.counterfactual)):
            if items:
                picked = rng.sample(range(len(items)), min(size, len(items)))
                out[kind] = [shuffle_options(items[i], seed, 1_000_000 + step) for i in picked]
        return out


def _balanced(pool: Sequence[TrainExample], size: int) -> list[TrainExample]:
    """Up to `size` items, round-robin over answer classes (sorted), each class in row order."""
    by_class: dict[str, list[TrainExample]] = {}
    for ex in pool:
        by_class.setdefault(ex.answer_text.strip().lower(), []).append(ex)
    queues = [by_class[c] for c in sorted(by_class)]
    out: list[TrainExample] = []
    k = 0
    while len(out) < size and any(k < len(q) for q in queues):
        out.extend(q[k] for q in queues if k < len(q) and len(out) < size)
        k += 1
    return out[:size]


def _edited(ex: TrainExample, image: Any, tag: str) -> TrainExample:
    return replace(ex, item_id=f"{ex.item_id}#{tag}", image=encode_png(image), variant=tag)


def _from_masks(clean: list[TrainExample], fill: str) -> tuple[list[TrainExample], list[TrainExample]]:
    factual, counter = [], []
    for i, ex in enumerate(clean):
        assert ex.image is not None and ex.core_mask is not None
        donor = next((d for d in clean[i + 1:] + clean[:i] if d.answer_text != ex.answer_text), None)
        try:
            img, core = decode_image(ex.image), decode_mask(ex.core_mask)
            cue = decode_mask(ex.cue_mask) if ex.cue_mask else None
            if donor is not None and donor.image is not None and donor.core_mask is not None:
                factual.append(_edited(ex, swap_background(img, core, decode_image(donor.image),
                                                           decode_mask(donor.core_mask)), "factual"))
            counter.append(_edited(ex, remove_core(img, core, fill, cue=cue, seed=i), "counterfactual"))
        except MaskError as exc:
            raise TrainDataError(f"meta item {ex.item_id!r}: {exc}") from None
    return factual, counter


def load_meta_set(spec: TrainDataSpec, *, size: int, fill: str, need_cf: bool) -> MetaSet:
    """Read the meta source and build the clean, F and CF items (clear errors before any training)."""
    if fill not in CF_FILLS:
        raise TrainDataError(f"unknown CF fill {fill!r} (choose from {', '.join(CF_FILLS)})")
    examples = [ex for ex in load_examples([spec], role="meta") if ex.kind == "choice"]
    if not examples:
        raise TrainDataError(f"the meta set {spec.source} has no multiple-choice items")
    masked = [ex for ex in examples if ex.core_mask is not None]
    if masked:
        clean = _balanced(masked, size)
        factual, counter = _from_masks(clean, fill)
        source = "masks"
    else:
        if need_cf:
            raise TrainDataError(
                f"the meta set {spec.source} has no object masks (no `core_mask` column), so counterfactual "
                "items cannot be built: use a meta set with masks (e.g. spuriverse-world) or --counterfactual-weight 0")
        clean = _balanced([ex for ex in examples if ex.variant != "counter"], size)
        factual, counter = _balanced([ex for ex in examples if ex.variant == "counter"], size), []
        source = "counter"
    fp = summarize(clean + factual + counter).fingerprint
    return MetaSet(clean, factual, counter if need_cf else [], source, fp)


# -- losses ---------------------------------------------------------------------------------------
def cf_loss(letters: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """-log(1 - p_y) per example, p = softmax over the option letters; computed as
    logsumexp(all) - logsumexp(others), finite however close p_y is to 1."""
    others = letters.scatter(1, answer[:, None], float("-inf"))
    return torch.logsumexp(letters, dim=1) - torch.logsumexp(others, dim=1)


LettersOf = Callable[[dict[str, Any]], torch.Tensor]


def meta_objective(letters_of: LettersOf, parts: dict[str, dict[str, Any]], weights: dict[str, float]) -> torch.Tensor:
    """clean_weight x CE(clean) + factual_weight x CE(F) + counterfactual_weight x mean(-log(1 - p_y))(CF)."""
    total: torch.Tensor | None = None
    for kind, part in parts.items():
        w = weights.get(kind, 0.0)
        if not w:
            continue
        letters = letters_of(part)
        answer = part["answer_index"]
        per = cf_loss(letters, answer) if kind == "counterfactual" else \
            torch.nn.functional.cross_entropy(letters, answer, reduction="none")
        total = w * per.mean() if total is None else total + w * per.mean()
    if total is None:
        raise ValueError("the meta objective has no term: every meta weight is 0 or the meta batch is empty")
    return total


__all__ = ["KINDS", "MetaSet", "cf_loss", "load_meta_set", "meta_objective"]
