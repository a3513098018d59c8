"""Every provider profile against the loopback fake configured to behave like that provider: the
request shape each endpoint is sent, the key variable it is reached with, and what it rejects."""

from __future__ import annotations

import io
import json

import openai
import pytest
from PIL import Image

from helpers.fake_openai import FakeOpenAIServer
from helpers.fake_providers import BEHAVIOURS
from spuriverse.cli import main
from spuriverse.models.base import ImageInput, Request, UnsupportedRequest
from spuriverse.models.providers import MissingAPIKey, providers
from spuriverse.models.registry import build_model, registry, resolve_model

KEY = "sk-provider-test-0000"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0, "max_retries": 1}
# One registry alias per provider (every profile must have one here: see test_every_profile_is_tested).
ALIAS = {"openai": "gpt-4o", "openai-reasoning": "o3", "gemini": "gemini-2.0-flash",
         "anthropic": "claude-3.7-sonnet", "dashscope": "qwen-vl-max"}
SAMPLING = {"temperature": 1.5, "top_p": 0.9, "sample_seed": 42}
# What each endpoint must be sent for one generate request (max_new_tokens 16) with SAMPLING.
EXPECTED = {
    "openai": {"max_tokens": 16, "temperature": 1.5, "top_p": 0.9, "seed": 42, "logprobs": True, "top_logprobs": 20},
    "openai-reasoning": {"max_completion_tokens": 3000, "reasoning_effort": "medium", "seed": 42},
    "gemini": {"max_tokens": 16, "temperature": 1.5, "top_p": 0.9, "seed": 42},
    "anthropic": {"max_tokens": 16, "temperature": 1.0, "top_p": 0.9},  # capped at 1, seed is ignored there
    "dashscope": {"max_tokens": 16, "temperature": 1.5, "top_p": 0.9, "seed": 42},
}
SYSTEM_ROLE = {"openai": "system", "openai-reasoning": "developer", "gemini": "system", "anthropic": "system",
               "dashscope": "system"}


def _image(fmt: str) -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", (12, 10), (30, 140, 200)).save(buf, format=fmt)
    return ImageInput.from_bytes(buf.getvalue())


def _requests() -> list[Request]:
    prompt = "Question: what is shown?\nOptions:\n(A) sky\n(B) sea\nPlease select the correct answer."
    return [Request(system="Answer with the letter only.", prompt=prompt, image=_image(fmt), letters=("A", "B"),
                    max_new_tokens=16, key=fmt) for fmt in ("PNG", "BMP")]


@pytest.fixture(params=sorted(BEHAVIOURS))
def provider(request, monkeypatch):
    """A provider name, its fake endpoint (behaving like it, answering only its key variable's key)."""
    name = request.param
    behaviour = BEHAVIOURS[name]
    for other in {b.key_env for b in BEHAVIOURS.values()}:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(behaviour.key_env, KEY)
    with FakeOpenAIServer(require_key=KEY, **behaviour.server_kwargs()) as srv:
        yield name, srv


def test_every_profile_is_tested():
    assert set(providers()) == set(BEHAVIOURS) == set(ALIAS)
    for name, alias in ALIAS.items():
        assert registry()[alias].provider == name


def test_request_shape_per_provider(provider):
    name, srv = provider
    with build_model(resolve_model(ALIAS[name]), base_url=srv.base_url, **SAMPLING, **FAST) as be:
        out = dict(be.generate(_requests()))
    assert srv.status_counts[400] == 0 and srv.status_counts[401] == 0, srv.status_counts
    assert all(g.error is None and g.text for g in out.values()), out
    assert len(srv.requests) == 2
    for body in srv.requests:
        shaped = {k: v for k, v in body.items() if k not in ("model", "messages")}
        assert shaped == EXPECTED[name]
        assert body["model"] == registry()[ALIAS[name]].checkpoint
        system, user = body["messages"]
        assert system == {"role": SYSTEM_ROLE[name], "content": "Answer with the letter only."}
        image, text = user["content"]
        assert image["type"] == "image_url" and text["type"] == "text"
    mimes = sorted(b["messages"][1]["content"][0]["image_url"]["url"].split(";")[0] for b in srv.requests)
    # BMP is re-encoded as PNG for endpoints that do not take it.
    assert mimes == (["data:image/bmp", "data:image/png"] if name == "dashscope" else ["data:image/png"] * 2)
    if name == "openai-reasoning":  # hidden reasoning tokens are counted, and the answer still fits
        assert all(g.usage["reasoning_tokens"] == 192 and g.finish_reason == "stop" for g in out.values())
    assert be.info.provider == name


def test_greedy_defaults_per_provider(provider):
    """Without a preset: temperature 0 where the endpoint takes one, no seed, no top_p."""
    name, srv = provider
    with build_model(resolve_model(ALIAS[name]), base_url=srv.base_url, **FAST) as be:
        assert all(g.error is None for _, g in be.generate(_requests()[:1]))
    body = srv.requests[0]
    assert "seed" not in body and "top_p" not in body
    assert body.get("temperature") == (None if name == "openai-reasoning" else 0.0)
    assert be.generation["do_sample"] is (name == "openai-reasoning")  # o-series sample at their default


def test_the_fake_rejects_what_the_real_provider_rejects(provider):
    """The request every provider got before profiles existed: o-series and Gemini answer it 400."""
    name, srv = provider
    client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
    naive = {"model": "m", "messages": [{"role": "user", "content": "(A) x (B) y"}], "max_tokens": 16,
             "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
    if name in ("openai-reasoning", "gemini"):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**naive)
    else:
        assert client.chat.completions.create(**naive).choices[0].message.content
    client.close()


def test_missing_key_names_the_variable(provider, monkeypatch):
    name, srv = provider
    monkeypatch.delenv(BEHAVIOURS[name].key_env)
    with pytest.raises(MissingAPIKey, match=BEHAVIOURS[name].key_env) as ei:
        build_model(resolve_model(ALIAS[name]), base_url=srv.base_url)
    assert "--api-key" in str(ei.value) and srv.n_requests == 0


def test_logprob_scoring_only_where_the_endpoint_returns_them(provider):
    name, srv = provider
    with build_model(resolve_model(ALIAS[name]), base_url=srv.base_url, **FAST) as be:
        if name == "openai":
            scores = dict(be.score_options(_requests()))
            assert all(s.error is None and set(s.logprobs) <= {"A", "B"} for s in scores.values())
        else:
            assert not be.supports_logprobs
            with pytest.raises(UnsupportedRequest, match="--scoring generate"):
                list(be.score_options(_requests()))
    assert srv.status_counts[400] == 0


def test_cli_refuses_logprob_scoring_without_logprobs(small_benchmark, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with FakeOpenAIServer(require_key=KEY, **BEHAVIOURS["gemini"].server_kwargs()) as srv:
        code = main(["eval", "--model", "gemini-2.0-flash", "--dataset", str(small_benchmark), "--base-url",
                     srv.base_url, "--scoring", "logprob", "--output-dir", str(tmp_path / "r"), "--no-progress"])
        assert srv.n_requests == 0
    assert code == 2 and "--scoring generate" in capsys.readouterr().err


def test_provider_prefix_reaches_a_model_without_alias(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeOpenAIServer(require_key=KEY, **BEHAVIOURS["anthropic"].server_kwargs()) as srv:
        spec = resolve_model("anthropic:claude-sonnet-4-5")
        assert (spec.backend, spec.provider, spec.checkpoint) == ("openai", "anthropic", "claude-sonnet-4-5")
        with build_model(spec, base_url=srv.base_url, **FAST) as be:
            assert all(g.error is None for _, g in be.generate(_requests()[:1]))
        assert "logprobs" not in srv.requests[0] and srv.requests[0]["model"] == "claude-sonnet-4-5"


def test_paper_settings_end_to_end(small_benchmark, tmp_path, monkeypatch):
    """--paper-settings for Gemini: its temperature, top_p, 300 tokens and the run's seed are sent and
    recorded in run.json and results.json; without the preset the same run is a different config."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "paper"
    with FakeOpenAIServer(require_key=KEY, **BEHAVIOURS["gemini"].server_kwargs()) as srv:
        args = ["eval", "--model", "gemini-2.0-flash", "--dataset", str(small_benchmark), "--base-url", srv.base_url,
                "--limit", "4", "--seed", "42", "--output-dir", str(out), "--no-progress"]
        assert main([*args, "--paper-settings"]) == 0
        body = srv.requests[0]
        assert (body["temperature"], body["top_p"], body["seed"], body["max_tokens"]) == (0.7, 0.9, 42, 300)
        assert "logprobs" not in body
        assert main(args) == 2  # greedy defaults are another configuration: no silent resume
    result = json.loads((out / "results.json").read_text())
    gen = result["generation"]
    assert (gen["preset"], gen["temperature"], gen["top_p"], gen["seed"], gen["max_new_tokens"]) == (
        "paper", 0.7, 0.9, 42, 300)
    assert gen["do_sample"] is True and result["scoring"] == "generate"
    assert result["model"]["provider"] == "gemini"
    assert json.loads((out / "run.json").read_text())["config"]["preset"] == "paper"
    assert result["failures"]["n_failed"] == 0
