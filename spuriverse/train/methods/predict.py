"""Predictions of a trained model folder on choice items, scored exactly as `spuriverse eval
--scoring logprob` scores them (the backend's own scorer; the highest letter log-prob, ties to the
earliest letter). A failed item is recorded as a failure (None), never as a letter. JTT's error set
and `compare-methods` use it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spuriverse.train.batching import Batcher
from spuriverse.train.data import TrainExample


def load_scorer(model: str, *, device: str | None = None, batch_size: int = 32) -> Any:
    """The HF backend of a trained folder (adapter folders load as base + adapter)."""
    from spuriverse.models.registry import build_model, resolve_model

    spec = resolve_model(model, None)
    overrides: dict[str, Any] = {"batch_size": batch_size}
    if device:
        overrides["device"] = device
    return build_model(spec, **overrides)


def predict_letters(backend: Any, examples: Sequence[TrainExample], strategy: str = "direct") -> list[str | None]:
    """The predicted letter of each choice item (None where scoring failed)."""
    batcher = Batcher(backend, strategy=strategy)
    requests = [batcher.request(ex) for ex in examples]
    out: list[str | None] = [None] * len(examples)
    for i, scores in backend.score_options(requests):
        lps = scores.logprobs or {}
        if scores.error is None and lps:
            out[i] = max(lps, key=lambda k: (lps[k], -ord(k)))
    return out


__all__ = ["load_scorer", "predict_letters"]
