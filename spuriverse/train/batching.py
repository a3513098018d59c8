"""Examples -> model inputs, through the evaluator's own code, and the two objectives' losses.

The option objective's inputs are built by `HFBackend._prepare` — the very function the log-prob
scorer calls (eval prompt template, chat template, processor, left padding, option letters
tokenized in context) — and its loss reads the same position the scorer reads. So training
optimises exactly what `spuriverse eval --scoring logprob` measures, with the image where eval puts
it (the reference trained text-before-image and evaluated image-before-text).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from spuriverse.eval.prompts import render_prompt
from spuriverse.models.base import Request
from spuriverse.schema import LETTERS, letters_for
from spuriverse.train.data import TrainExample

NEG = -1e9  # a letter slot an item does not have (finite: gathered/argmaxed safely)


class CompletionUnsupported(ValueError):
    """The processor changes the text after the prompt, so target tokens cannot be located."""


def shuffle_options(ex: TrainExample, seed: int, epoch: int) -> TrainExample:
    """The example with its options in a seeded random order (answer letter moved with it), so
    no letter is favoured; a new order each epoch, the same order for the same (seed, epoch, item)."""
    if ex.kind != "choice":
        return ex
    rng = random.Random(f"{seed}/{epoch}/{ex.item_id}")
    order = list(range(len(ex.options)))
    rng.shuffle(order)
    correct = LETTERS.index(ex.answer or "A")
    return replace(ex, options=tuple(ex.options[i] for i in order), answer=LETTERS[order.index(correct)])


class ExampleDataset(torch.utils.data.Dataset):
    """Training examples; `set_epoch` (from a callback) re-seeds the option shuffle."""

    def __init__(self, examples: Sequence[TrainExample], *, seed: int, shuffle: bool) -> None:
        self.examples, self.seed, self.shuffle, self.epoch = list(examples), seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> TrainExample:
        ex = self.examples[i]
        return shuffle_options(ex, self.seed, self.epoch) if self.shuffle else ex


@dataclass
class Batcher:
    """Collates examples into the inputs of one objective, using a loaded `HFBackend`.

    `fillers` (one example per kind, set for data-parallel runs whose data mixes choice and naming
    rows): a batch lacking a kind gets that kind's filler with loss weight 0. Under DDP each forward
    of the wrapped model is a collective (it broadcasts buffers), so every process must run the same
    forwards every step; without fillers a process whose batch had only choice items went to
    backward while another ran its naming forward, and both waited forever.
    """

    backend: Any  # spuriverse.models.hf.HFBackend
    objective: str = "option"
    strategy: str = "direct"
    fillers: dict[str, TrainExample] = field(default_factory=dict)
    _split_cache: dict[tuple[str, str], tuple[int, list[int]]] = field(default_factory=dict, repr=False)

    def request(self, ex: TrainExample) -> Request:
        """The eval request for a choice item; naming rows ask the bare question."""
        if ex.kind == "naming":
            return Request(system=None, prompt=ex.question, image=ex.image_input(), letters=())
        rp = render_prompt(ex.question, list(ex.options), self.strategy)
        return Request(system=rp.system, prompt=rp.user, image=ex.image_input(), letters=rp.letters)

    def choice_batch(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        """Scorer inputs + each item's letter ids (in context) and the answer's slot."""
        requests = [self.request(ex) for ex in examples]
        _, _, letter_ids, inputs = self.backend._prepare(requests)
        n = len(examples)
        ids = torch.zeros(n, len(LETTERS), dtype=torch.long)
        mask = torch.zeros(n, len(LETTERS), dtype=torch.bool)
        for row, lids in enumerate(letter_ids):
            ids[row, : len(lids)] = torch.tensor(lids)
            mask[row, : len(lids)] = True
        answer = torch.tensor([letters_for(len(ex.options)).index(ex.answer) for ex in examples])
        return {"inputs": inputs, "letter_ids": ids, "letter_mask": mask, "answer_index": answer}

    def completion_batch(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        """Prompt + target ("(X) option text", or a naming row's target) + EOS; labels on the
        assistant tokens only (the prompt and padding are -100)."""
        requests = [self.request(ex) for ex in examples]
        prompts = [self.backend.render(r) for r in requests]
        conts = [self._continuation(p, ex) for p, ex in zip(prompts, examples)]
        inputs = self.backend._inputs(requests, [p + c for p, c in zip(prompts, conts)])
        tok = self.backend.tokenizer
        eos = torch.full((len(examples), 1), tok.eos_token_id, dtype=inputs["input_ids"].dtype,
                         device=inputs["input_ids"].device)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], eos], dim=1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(eos)], dim=1)
        labels = torch.full_like(inputs["input_ids"], -100)
        for row, (p, c) in enumerate(zip(prompts, conts)):
            n = self._target_tokens(p, c, inputs["input_ids"][row, :-1])
            labels[row, -(n + 1):] = inputs["input_ids"][row, -(n + 1):]
        return {"inputs": inputs, "labels": labels}

    def _continuation(self, prompt: str, ex: TrainExample) -> str:
        if ex.kind == "naming":
            assert ex.target is not None, "a naming example has a target"
            text = ex.target
        else:
            assert ex.answer is not None, "a choice example has an answer"
            text = f"({ex.answer}) {ex.options[LETTERS.index(ex.answer)]}"
        # After "ASSISTANT:" a model writes " (A) ..."; after "assistant\n" it writes "(A) ...".
        return text if prompt[-1:].isspace() else " " + text

    def _target_tokens(self, prompt: str, cont: str, row_ids: torch.Tensor) -> int:
        n, full = self._target_split(prompt, cont)
        if n <= 0 or row_ids[-n:].tolist() != full[-n:]:
            raise CompletionUnsupported(
                "the processor changes the text after the prompt (e.g. PaliGemma appends a newline), so the "
                "completion objective cannot locate the target tokens; use --objective option"
            )
        return n

    def _target_split(self, prompt: str, cont: str) -> tuple[int, list[int]]:
        """(number of target tokens, token ids of prompt + continuation): tokenized once per distinct
        pair (naming prompts and targets repeat across a dataset; a tokenizer call per row was a third
        of the collation time)."""
        key = (prompt, cont)
        if key not in self._split_cache:
            if len(self._split_cache) >= 65536:
                self._split_cache.clear()
            tok = self.backend.tokenizer
            base = tok(prompt, add_special_tokens=False).input_ids
            full = tok(prompt + cont, add_special_tokens=False).input_ids
            common = next((k for k, (a, b) in enumerate(zip(base, full)) if a != b), min(len(base), len(full)))
            # a boundary merge moves the split left: a prompt char joins the target
            self._split_cache[key] = (len(full) - common, full)
        return self._split_cache[key]

    def __call__(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        """A training batch: the option objective on choice items (naming rows always use the
        completion loss); the completion objective on everything. `n` = examples in the batch."""
        batch: dict[str, Any] = {"n": torch.tensor(len(examples))}
        if self.objective != "option":
            batch["lm"] = self.completion_batch(list(examples))
            return batch
        for kind, key, build in (("choice", "choice", self.choice_batch), ("naming", "lm", self.completion_batch)):
            rows = [ex for ex in examples if ex.kind == kind]
            weight = 1.0
            if not rows and kind in self.fillers:
                rows, weight = [self.fillers[kind]], 0.0
            if rows:
                batch[key] = {**build(rows), "weight": torch.full((len(rows),), weight)}
        return batch

    def eval_batch(self, examples: Sequence[TrainExample]) -> dict[str, Any]:
        """Validation: choice items in their own order, scored like `spuriverse eval`."""
        return {"n": torch.tensor(len(examples)), "choice": self.choice_batch(examples)}


def mixed_fillers(examples: Sequence[TrainExample]) -> dict[str, TrainExample]:
    """The first example of each kind when `examples` mix choice items and naming rows, else {}
    (the `Batcher.fillers` a data-parallel option-objective run needs)."""
    first: dict[str, TrainExample] = {}
    for ex in examples:
        first.setdefault(ex.kind, ex)
    return first if len(first) > 1 else {}


# -- losses (per example; the batch loss is their sum over the batch size) -------------------
def option_logits(model: Any, part: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(letter logits [B, 6] with NEG in missing slots, full last-position logits [B, V])."""
    logits = model(**part["inputs"], logits_to_keep=1).logits[:, -1, :].float()
    letters = logits.gather(1, part["letter_ids"]).masked_fill(~part["letter_mask"], NEG)
    return letters, logits


def option_loss(model: Any, part: dict[str, Any], vocab_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the item's option letters at the answer position (+ `vocab_weight` x the
    full-vocabulary CE of the answer letter, so generation keeps emitting letters). Per example."""
    letters, logits = option_logits(model, part)
    return letter_loss(letters, logits, part, vocab_weight), letters


def letter_loss(letters: torch.Tensor, logits: torch.Tensor, part: dict[str, Any], vocab_weight: float = 0.0,
                offset: torch.Tensor | None = None) -> torch.Tensor:
    """`option_loss` from computed logits; `offset` [B, 6] is added to the letter logits inside the
    cross-entropy only (a training method's logit perturbation). Per example."""
    loss = F.cross_entropy(letters if offset is None else letters + offset, part["answer_index"], reduction="none")
    if vocab_weight:
        token = part["letter_ids"].gather(1, part["answer_index"][:, None])[:, 0]
        loss = loss + vocab_weight * F.cross_entropy(logits, token, reduction="none")
    return loss


def completion_loss(model: Any, part: dict[str, Any]) -> torch.Tensor:
    """Mean token cross-entropy over each example's target tokens. Only the last positions' logits
    are computed (targets sit at the end of left-padded rows)."""
    labels = part["labels"]
    keep = int((labels != -100).sum(1).max()) + 1
    logits = model(**part["inputs"], logits_to_keep=keep).logits.float()
    pred, gold = logits[:, :-1], labels[:, -keep + 1:]
    tok = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), gold.reshape(-1), ignore_index=-100, reduction="none")
    tok = tok.view(gold.shape)
    mask = gold != -100
    return (tok * mask).sum(1) / mask.sum(1).clamp(min=1)
