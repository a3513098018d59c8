"""The HF backend on tiny real architectures: letters in context, prompt formats, isolation, workers."""

from __future__ import annotations

import pytest

from helpers.bench_data import png_bytes
from spuriverse.eval.prompts import render_prompt
from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend
from spuriverse.models.registry import TESTED_ON_TINY


def requests(n: int, blind: bool = False) -> list[Request]:
    out = []
    for i in range(n):
        rp = render_prompt(f"What is in picture {i}?", ["cab", "train", "dog", "cat"][: 2 + i % 3], "direct")
        img = None if blind else ImageInput.from_bytes(png_bytes(i, (30 + 5 * i, 30)))
        out.append(Request(system=rp.system, prompt=rp.user, image=img, letters=rp.letters, max_new_tokens=5,
                           key=str(i)))
    return out


def by_pos(pairs):
    return [r for _, r in sorted(pairs, key=lambda x: x[0])]


def test_letters_are_tokenized_after_the_real_model_input(tiny_llava, tiny_paligemma):
    llava = HFBackend(str(tiny_llava))
    tok = llava.tokenizer
    prepared = llava._prepare(requests(1))
    assert prepared[1][0].endswith("ASSISTANT:")
    # after "ASSISTANT:" the model writes " A": the space-prefixed token
    assert prepared[2][0] == [tok.convert_tokens_to_ids("Ġ" + x) for x in "AB"]

    pg = HFBackend(str(tiny_paligemma))
    assert pg.prompt_format == "raw"  # no chat template: detected, not configured
    _, texts, letter_ids, inputs = pg._prepare(requests(1))
    assert "labels" not in inputs
    assert pg._input_tails(inputs)[0].endswith("\n")  # the processor appended a newline
    assert letter_ids[0] == [pg.tokenizer.convert_tokens_to_ids(x) for x in "AB"]  # so "A", not " A"


@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_llava_next", "tiny_paligemma", "tiny_idefics3"])
def test_batched_equals_one_at_a_time(fixture, request):
    path = str(request.getfixturevalue(fixture))
    reqs = requests(10)
    ref_backend = HFBackend(path, batch_size=1)
    assert ref_backend.model.config.model_type in TESTED_ON_TINY  # what `spuriverse models` calls tested here
    ref = by_pos(ref_backend.score_options(reqs))
    for bs in (4, 16):
        got = by_pos(HFBackend(path, batch_size=bs).score_options(reqs))
        for a, b in zip(got, ref):
            assert a.error is None and a.logprobs.keys() == b.logprobs.keys()
            assert all(abs(a.logprobs[k] - b.logprobs[k]) <= 1e-5 for k in a.logprobs)


def test_worker_threads_do_not_change_results(tiny_llava):
    reqs = requests(12)
    one = by_pos(HFBackend(str(tiny_llava), batch_size=2, workers=1).score_options(reqs))
    two = by_pos(HFBackend(str(tiny_llava), batch_size=2, workers=3).score_options(reqs))
    for a, b in zip(one, two):
        assert all(abs(a.logprobs[k] - b.logprobs[k]) <= 1e-5 for k in a.logprobs)
    g1 = by_pos(HFBackend(str(tiny_llava), batch_size=3, workers=1).generate(reqs))
    g2 = by_pos(HFBackend(str(tiny_llava), batch_size=3, workers=2).generate(reqs))
    assert [g.text for g in g1] == [g.text for g in g2]


def test_generation_returns_new_tokens_only(tiny_llava):
    gens = by_pos(HFBackend(str(tiny_llava), batch_size=4).generate(requests(4)))
    for g in gens:
        assert g.error is None and g.text is not None
        assert "Please select" not in g.text and "ASSISTANT" not in g.text
        assert 1 <= g.usage["completion_tokens"] <= 5 and g.usage["prompt_tokens"] > 20
        assert g.finish_reason in ("stop", "length") and set(g.logprobs) == {"A", "B"} | set(g.logprobs)


def test_blind_requests_carry_no_image(tiny_llava):
    backend = HFBackend(str(tiny_llava))
    _, texts, _, inputs = backend._prepare(requests(2, blind=True))
    assert "pixel_values" not in inputs and all("<image>" not in t for t in texts)
    assert all(r.error is None for r in by_pos(backend.score_options(requests(2, blind=True))))


def test_a_failing_request_costs_one_error_record_not_the_batch(tiny_llava, monkeypatch):
    backend = HFBackend(str(tiny_llava), batch_size=4, workers=1)
    reqs = requests(8)
    real = backend._inputs

    def flaky(batch, texts):
        if any(r.key == "5" for r in batch):
            raise RuntimeError("processor exploded on item 5")
        return real(batch, texts)

    monkeypatch.setattr(backend, "_inputs", flaky)
    results = by_pos(backend.score_options(reqs))
    assert [r.error is None for r in results] == [True] * 5 + [False] + [True] * 2
    assert "processor exploded" in results[5].error.message and results[5].logprobs is None


def test_cpu_runs_in_float32(tiny_llava):
    b = HFBackend(str(tiny_llava), dtype="bfloat16")
    assert b.info.dtype == "float32" and b.info.device == "cpu" and b.info.backend == "hf"
