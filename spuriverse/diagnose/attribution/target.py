"""What is attributed: a score of the item's option letters at the answer position.

The default score is the **log-softmax over the item's option letters** of the same last-position
logits the log-prob scorer reads (`spuriverse eval --scoring logprob`). It is invariant to adding any
input-dependent amount t(x) to every vocabulary logit (Lerma & Lucas, arXiv 2307.03305: such a shift
leaves every probability unchanged but adds grad t to every gradient attribution of a raw, pre-softmax
logit, so raw-logit maps can be painted at will). Raw letter logits are available only on request
(`raw=True`) and every output marks them "not shift-invariant".

Targets, as a weight vector over the option letters (`target_weights`):
- `predicted`: the model's answer (the highest-scoring letter; ties to the earliest, like eval);
- `answer`: the correct letter;
- `contrast`: the correct letter minus its strongest rival (the prediction when the model is wrong, the
  runner-up when it is right): positive attribution is evidence for the right answer over the rival.
  A difference of letter logits is itself shift-invariant, raw or not.
"""

from __future__ import annotations

import torch

TARGETS = ("predicted", "answer", "contrast")
NEG = -1e9  # a letter slot the item does not have (finite, so masked arithmetic stays finite)


def letter_score(logits: torch.Tensor, letter_ids: torch.Tensor, letter_mask: torch.Tensor,
                 weights: torch.Tensor, raw: bool = False) -> torch.Tensor:
    """[B] scores from last-position logits [B, V]: the letters' log-softmax (or raw logits) dotted
    with `weights` [B, K]. `letter_ids` [B, K] are the letters' token ids, `letter_mask` [B, K] marks
    the item's own letters."""
    z = logits.float().gather(1, letter_ids).masked_fill(~letter_mask, NEG)
    s = z if raw else torch.log_softmax(z, dim=-1)
    return (s.masked_fill(~letter_mask, 0.0) * weights).sum(-1)


def option_logprobs(logits: torch.Tensor, letter_ids: torch.Tensor, letter_mask: torch.Tensor) -> torch.Tensor:
    """[B, K] log-softmax over each item's option letters (NEG in slots it does not have)."""
    z = logits.float().gather(1, letter_ids).masked_fill(~letter_mask, NEG)
    return torch.log_softmax(z, dim=-1).masked_fill(~letter_mask, NEG)


def predicted_index(logprobs: torch.Tensor) -> torch.Tensor:
    """[B] the highest-scoring letter slot; ties go to the earliest letter (argmax returns the first)."""
    return logprobs.argmax(-1)


def target_weights(kind: str, logprobs: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """[B, K] weights of `kind` given the option log-probs [B, K] and the correct slots [B]."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r} ({', '.join(TARGETS)})")
    n, k = logprobs.shape
    w = torch.zeros(n, k)
    rows = torch.arange(n)
    if kind == "predicted":
        w[rows, predicted_index(logprobs)] = 1.0
    elif kind == "answer":
        w[rows, answer] = 1.0
    else:
        others = logprobs.clone()
        others[rows, answer] = float("-inf")
        w[rows, answer] = 1.0
        w[rows, others.argmax(-1)] = -1.0
    return w


def invariance_note(kind: str, raw: bool) -> str:
    """How the score reacts to a shift of every vocabulary logit by t(x) (stated in every report)."""
    if not raw:
        return "shift-invariant (log-softmax over the option letters)"
    if kind == "contrast":
        return "shift-invariant (a difference of raw letter logits)"
    return "not shift-invariant (raw pre-softmax letter logit)"
