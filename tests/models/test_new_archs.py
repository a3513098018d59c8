"""Today's open families on tiny random-weight models of their real architectures, through the production
HF backend: batch 1 = batch 8, option letters tokenized after the real model input, the image reaches the
model, and generation returns new tokens only."""

from __future__ import annotations

import pytest

from helpers import tiny_archs
from helpers.bench_data import png_bytes
from spuriverse.eval.prompts import render_prompt
from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend
from spuriverse.models.registry import TESTED_ON_TINY

FAMILIES = ["qwen2_5_vl", "qwen3_vl", "mllama", "gemma3", "llava_onevision"]


@pytest.fixture(scope="module", params=FAMILIES)
def model_dir(request, tmp_path_factory):
    return getattr(tiny_archs, f"build_tiny_{request.param}")(tmp_path_factory.mktemp(request.param))


def make_requests(n: int, image_seed: int = 0) -> list[Request]:
    out = []
    for i in range(n):
        rp = render_prompt(f"What is in picture {i}?", ["cab", "train", "dog", "cat"][: 2 + i % 3], "direct")
        img = ImageInput.from_bytes(png_bytes(image_seed + i, (30 + 5 * i, 30 + 3 * (i % 4))))
        out.append(Request(system=rp.system, prompt=rp.user, image=img, letters=rp.letters, max_new_tokens=5,
                           key=str(i)))
    return out


def in_order(pairs):
    return [r for _, r in sorted(pairs, key=lambda x: x[0])]


def test_batch_of_eight_equals_one_at_a_time(model_dir):
    reqs = make_requests(10)
    one = in_order(HFBackend(str(model_dir), batch_size=1).score_options(reqs))
    eight = in_order(HFBackend(str(model_dir), batch_size=8).score_options(reqs))
    for a, b in zip(one, eight):
        assert a.error is None and b.error is None
        assert a.logprobs.keys() == b.logprobs.keys()
        assert max(a.logprobs, key=a.logprobs.get) == max(b.logprobs, key=b.logprobs.get)
        assert all(abs(a.logprobs[k] - b.logprobs[k]) <= 1e-5 for k in a.logprobs)


def test_letters_are_single_tokens_after_the_real_input(model_dir):
    backend = HFBackend(str(model_dir))
    _, texts, letter_ids, inputs = backend._prepare(make_requests(3))
    tok = backend.tokenizer
    tails = backend._input_tails(inputs)
    for text, tail, ids, letters in zip(texts, tails, letter_ids, [r.letters for r in make_requests(3)]):
        assert len(ids) == len(letters) == len(set(ids))
        for letter, tid in zip(letters, ids):
            assert tok.decode([tid]).strip() == letter
        # what the model sees ends with the template's generation prompt (the processor appended nothing)
        assert text.endswith(tail) and text.endswith(("assistant\n", "model\n", "<|end_header_id|>\n\n"))


def test_the_image_reaches_the_model(model_dir):
    backend = HFBackend(str(model_dir), batch_size=4)
    a = in_order(backend.score_options(make_requests(4, image_seed=0)))
    b = in_order(backend.score_options(make_requests(4, image_seed=100)))
    assert any(abs(x.logprobs[k] - y.logprobs[k]) > 1e-6 for x, y in zip(a, b) for k in x.logprobs)


def test_generation_returns_new_tokens_only(model_dir):
    gens = in_order(HFBackend(str(model_dir), batch_size=3).generate(make_requests(4)))
    for g in gens:
        assert g.error is None and g.text is not None
        assert "Please select" not in g.text
        assert 1 <= g.usage["completion_tokens"] <= 5 and g.usage["prompt_tokens"] > 20


def test_family_is_listed_as_tested_here(model_dir):
    """`spuriverse models` says "tiny model" for this architecture: it must be the one built here."""
    import json

    model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
    assert model_type in FAMILIES and model_type in TESTED_ON_TINY
