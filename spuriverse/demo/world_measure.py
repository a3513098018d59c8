"""What a model learned on spuriverse-world, on held-out items only: multiple-choice accuracy on
cue-aligned, cue-conflicting and cue-free items (per family), which answer it gives when wrong on a
cue-conflicting item (the cue's?), and
its core knowledge as open-ended naming accuracy, each with a 95 % Wilson interval.

Items come from the world's `test` split of a training config (`OUT/train`, config `balanced` by
default: cue and answer independent, so 1/4 of the multiple-choice items are aligned). Multiple choice
is scored exactly like `spuriverse eval --scoring logprob` (the evaluator's prompt, the top option
letter); a naming item is scored by the log-probability of each of its family's four class words as
the answer (the top one is the model's answer), with the prompt the training stage renders for naming
rows. Never measure on the splits a model trained on or was chosen on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from spuriverse.data.world import FAMILY_BY_NAME
from spuriverse.train.batching import Batcher, option_logits
from spuriverse.train.data import TrainExample

Z95 = 1.959963984540054
META = ("kind", "family", "answer_class", "cue_kind", "cue_class", "aligned")


@dataclass(frozen=True)
class Rate:
    """k of n, with a 95 % Wilson score interval."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        p, n, z2 = self.k / self.n, self.n, Z95 ** 2
        mid = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, mid - half), min(1.0, mid + half)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval or (None, None)
        return {"value": self.value, "ci_low": lo, "ci_high": hi, "k": self.k, "n": self.n}

    def __str__(self) -> str:
        if not self.n:
            return "- (n=0)"
        lo, hi = self.interval or (0.0, 0.0)
        return f"{100 * self.k / self.n:5.1f} % [{100 * lo:4.1f}, {100 * hi:4.1f}] (n={self.n})"


def read_split(world: Path, config: str = "balanced", split: str = "test") -> list[tuple[TrainExample, dict]]:
    """(example, ground truth) for every row of `world/train`'s `config`/`split`; naming rows keep
    their family's classes as options (the candidates)."""
    import datasets

    path = Path(world) / "train" / "data" / config / f"{split}-00000.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the world with `python -m spuriverse.data.world --out {world}`")
    ds = datasets.Dataset.from_parquet(str(path)).cast_column("image", datasets.Image(decode=False))
    ds = ds.select_columns(["item_id", "question", "options", "answer", "image", *META])
    out = []
    for row in ds:
        ex = TrainExample(row["item_id"], row["question"], row["image"]["bytes"], tuple(row["options"]),
                          row["answer"])
        out.append((ex, {k: row[k] for k in META}))
    return out


def _choice_predictions(batcher: Batcher, examples: Sequence[TrainExample], batch_size: int) -> list[int]:
    preds: list[int] = []
    for i in range(0, len(examples), batch_size):
        part = batcher.choice_batch(examples[i : i + batch_size])
        letters, _ = option_logits(batcher.backend.model, part)
        preds += letters.argmax(1).tolist()
    return preds


def _sequence_logprob(batcher: Batcher, examples: Sequence[TrainExample]) -> torch.Tensor:
    """log P(target tokens + EOS | naming prompt) per example (the completion objective's tokens)."""
    part = batcher.completion_batch(examples)
    labels = part["labels"]
    keep = int((labels != -100).sum(1).max()) + 1
    logits = batcher.backend.model(**part["inputs"], logits_to_keep=keep).logits.float()
    gold = labels[:, -keep + 1 :]
    tok = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=-100,
                          reduction="none").view(gold.shape)
    return -(tok * (gold != -100)).sum(1)


def _naming_predictions(batcher: Batcher, items: Sequence[tuple[TrainExample, dict]], batch_size: int) -> list[str]:
    preds: list[str] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        classes = [FAMILY_BY_NAME[m["family"]].classes for _, m in chunk]
        scores = torch.stack([
            _sequence_logprob(batcher, [replace(ex, options=(), answer=None, target=cls[c])
                                        for (ex, _), cls in zip(chunk, classes)])
            for c in range(4)], 1)
        preds += [cls[j] for cls, j in zip(classes, scores.argmax(1).tolist())]
    return preds


def measure_model(model: str | Path, world: Path, *, config: str = "balanced", split: str = "test",
                  batch_size: int = 64, limit: int | None = None) -> dict[str, Any]:
    """The figures of one model on the world's held-out `config`/`split` items (see the module docstring)."""
    from spuriverse.models.hf import HFBackend
    from spuriverse.models.registry import build_model, resolve_model

    backend = build_model(resolve_model(str(model)), device="cpu", dtype="float32", batch_size=batch_size)
    if not isinstance(backend, HFBackend):
        raise ValueError(f"{model}: not a local HF model")
    backend.model.eval()
    batcher = Batcher(backend)
    items = read_split(world, config, split)[:limit]
    choice = [(ex, m) for ex, m in items if m["kind"] == "mc"]
    naming = [(ex, m) for ex, m in items if m["kind"] == "naming"]
    with torch.inference_mode():
        mc_pred = _choice_predictions(batcher, [ex for ex, _ in choice], batch_size)
        nm_pred = _naming_predictions(batcher, naming, batch_size)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def add(key: str, ok: bool) -> None:
        counts[key][0] += int(ok)
        counts[key][1] += 1

    for (ex, m), p in zip(choice, mc_pred):
        cond = "no_cue" if m["cue_kind"] == "none" else "aligned" if m["aligned"] else "conflicting"
        ok = "ABCDEF"[p] == ex.answer
        for key in (f"mc/{cond}", f"mc/{cond}/{m['family']}"):
            add(key, ok)
        if cond == "conflicting" and not ok:
            add("mc/conflicting_errors_to_cue", ex.options[p] == m["cue_class"])
    for (_, m), name in zip(naming, nm_pred):
        for key in ("naming", f"naming/{m['family']}"):
            add(key, name == m["answer_class"])
    return {"model": str(model), "world": str(world), "config": config, "split": split,
            "rates": {k: Rate(*v).as_dict() for k, v in sorted(counts.items())}}


def format_rates(figures: dict[str, Any]) -> str:
    """One line per figure, with its interval."""
    lines = [f"{figures['model']} on {figures['config']}/{figures['split']} (held out):"]
    for key, rate in figures["rates"].items():
        lines.append(f"  {key:<34} {Rate(rate['k'], rate['n'])}")
    return "\n".join(lines)
