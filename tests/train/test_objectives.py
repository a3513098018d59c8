"""The training objectives are the evaluator's own computation: same prompt, same position, same letters."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from spuriverse.eval.prompts import render_prompt
from spuriverse.models.base import Request
from spuriverse.models.hf import HFBackend
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train.batching import Batcher, completion_loss, option_loss, shuffle_options
from spuriverse.train.data import load_examples


@pytest.fixture(scope="module")
def backend(tiny_llava) -> HFBackend:
    return HFBackend(str(tiny_llava), batch_size=4)


@pytest.fixture(scope="module")
def examples(train_data):
    return load_examples([TrainDataSpec(source=str(train_data))])


def _scorer_ce(backend: HFBackend, batcher: Batcher, exs) -> list[float]:
    """Restricted cross-entropy from what `spuriverse eval --scoring logprob` records."""
    scores = dict(backend.score_options([batcher.request(ex) for ex in exs]))
    out = []
    for i, ex in enumerate(exs):
        lp = scores[i].logprobs
        out.append(-lp[ex.answer] + math.log(sum(math.exp(v) for v in lp.values())))
    return out


def test_option_loss_equals_scorer_cross_entropy(backend, examples):
    batcher = Batcher(backend)
    choice = [shuffle_options(ex, 3, 0) for ex in examples if ex.kind == "choice"]
    assert len({len(ex.options) for ex in choice}) > 1  # mixed option counts in one batch
    with torch.no_grad():
        loss, letters = option_loss(backend.model, batcher.choice_batch(choice))
    ref = _scorer_ce(backend, batcher, choice)
    assert loss.tolist() == pytest.approx(ref, abs=1e-5)
    # the letter slots an item does not have never win
    for row, ex in enumerate(choice):
        assert int(letters[row].argmax()) < len(ex.options)


def test_train_and_eval_render_the_same_user_turn(backend, examples):
    """The runner builds its Request from render_prompt(question, options, strategy) with the image;
    training must send exactly that, so the chat text (image first) is identical."""
    batcher = Batcher(backend, strategy="direct")
    for ex in [e for e in examples if e.kind == "choice"][:4]:
        rp = render_prompt(ex.question, list(ex.options), "direct")
        eval_req = Request(system=rp.system, prompt=rp.user, image=ex.image_input(), letters=rp.letters)
        train_req = batcher.request(ex)
        assert (train_req.system, train_req.prompt, train_req.letters) == (rp.system, rp.user, rp.letters)
        text = backend.render(train_req)
        assert text == backend.render(eval_req)
        assert text.index("<image>") < text.index(ex.question)  # the image comes before the text


def test_completion_labels_cover_exactly_the_assistant_answer(backend, examples):
    batcher = Batcher(backend, objective="completion")
    exs = [examples[0], next(e for e in examples if e.kind == "naming")]
    batch = batcher.completion_batch(exs)
    ids, labels = batch["inputs"]["input_ids"], batch["labels"]
    tok = backend.tokenizer
    first = tok.decode(ids[0][labels[0] != -100])
    assert first == f" ({exs[0].answer}) {exs[0].answer_text}</s>"
    assert tok.decode(ids[1][labels[1] != -100]) == f" {exs[1].target}</s>"
    # the prompt before the target is what the scorer sees
    prompt = backend.render(batcher.request(exs[0]))
    assert tok.decode(ids[0][batch["inputs"]["attention_mask"][0].bool()], skip_special_tokens=False).startswith(
        tok.decode(tok(prompt, add_special_tokens=False).input_ids[:5]))
    with torch.no_grad():
        per_example = completion_loss(backend.model, batch)
        full = backend.model(**batch["inputs"]).logits.float()
    # equals a plain shifted token CE over the labelled positions, example by example
    for row in range(2):
        lab = labels[row, 1:]
        ce = torch.nn.functional.cross_entropy(full[row, :-1], lab, ignore_index=-100)
        assert float(per_example[row]) == pytest.approx(float(ce), abs=1e-5)


def test_option_shuffle_is_seeded_balanced_and_keeps_the_answer(examples):
    ex = next(e for e in examples if e.kind == "choice" and len(e.options) == 4)
    seen = Counter()
    for epoch in range(400):
        s = shuffle_options(ex, 0, epoch)
        assert s.answer_text == ex.answer_text and sorted(s.options) == sorted(ex.options)
        assert s == shuffle_options(ex, 0, epoch)  # deterministic
        seen[s.answer] += 1
    assert set(seen) == {"A", "B", "C", "D"} and min(seen.values()) > 60  # no letter favoured
    assert len({shuffle_options(ex, seed, 0).options for seed in range(10)}) > 1  # the seed matters
