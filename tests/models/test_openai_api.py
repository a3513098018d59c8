"""OpenAIBackend against the loopback fake server: message shape, parsing, retries, concurrency."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2
import openai
import pytest
from PIL import Image

from spuriverse.models.base import LVLM, Generation, ImageInput, OptionScores, Request
from spuriverse.models.openai_api import NO_LOGPROBS, OpenAIBackend, _retry_after, letter_logprobs

from helpers.fake_openai import FakeOpenAIServer, default_answer

KEY = "sk-test-key-0000"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 2.0}


def _img(fmt: str, color: tuple[int, int, int] = (200, 30, 30)) -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buf, format=fmt)
    return ImageInput.from_bytes(buf.getvalue())


def _req(i: int = 0, *, image: ImageInput | None = None, system: str | None = "Be brief.",
         n: int = 4, max_new_tokens: int = 16, letters: tuple[str, ...] | None = None) -> Request:
    opts = "\n".join(f"({L}) option {L.lower()}" for L in "ABCDEF"[:n])
    return Request(system=system, prompt=f"Question {i}?\n{opts}\nAnswer:", image=image,
                   letters=letters or tuple("ABCDEF"[:n]), max_new_tokens=max_new_tokens)


def _run(backend: OpenAIBackend, reqs: list[Request], kind: str = "generate") -> dict:
    out = list(getattr(backend, "generate" if kind == "generate" else "score_options")(reqs))
    positions = [p for p, _ in out]
    assert sorted(positions) == list(range(len(reqs))), "every position exactly once"
    return dict(out)


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def backend(server):
    be = OpenAIBackend("fake-vlm", base_url=server.base_url, api_key=KEY, concurrency=8, **FAST)
    yield be
    be.close()


# ---------------------------------------------------------------- construction
def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as ei:
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    assert "--api-key" in str(ei.value)


def test_key_from_env_and_info(monkeypatch, server):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIBackend("fake-vlm", alias="fake", base_url=server.base_url, concurrency=3) as be:
        assert isinstance(be, LVLM)
        assert (be.info.backend, be.info.checkpoint, be.info.alias) == ("openai", "fake-vlm", "fake")
        assert be.chunk_size == 48 and be.supports_logprobs and not be.needs_pixels
        assert _run(be, [_req()])[0].error is None
    with pytest.raises(RuntimeError, match="closed"):
        list(be.generate([_req()]))
    be.close()  # idempotent


# ---------------------------------------------------------------- request shape
def test_data_url_and_mime_png_jpeg(backend, server):
    png, jpg = _img("PNG"), _img("JPEG")
    _run(backend, [_req(0, image=png), _req(1, image=jpg)])
    for body in server.requests:
        user = body["messages"][-1]
        img_part, text_part = user["content"]
        assert img_part["type"] == "image_url" and text_part["type"] == "text"
        url = img_part["image_url"]["url"]
        want = png if "Question 0" in text_part["text"] else jpg
        prefix = f"data:{want.mime};base64,"
        assert url.startswith(prefix)
        assert base64.b64decode(url[len(prefix):]) == want.data
    assert {png.mime, jpg.mime} == {"image/png", "image/jpeg"}


def test_system_then_user_and_params(backend, server):
    _run(backend, [_req(0, image=_img("PNG"), max_new_tokens=7)])
    body = server.requests[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == "Be brief."
    assert body["model"] == "fake-vlm" and body["max_tokens"] == 7 and body["temperature"] == 0
    assert body["logprobs"] is True and body["top_logprobs"] == 20


def test_blind_and_no_system(backend, server):
    _run(backend, [_req(0, image=None, system=None)])
    (msg,) = server.requests[0]["messages"]
    assert msg["role"] == "user" and [p["type"] for p in msg["content"]] == ["text"]


# ---------------------------------------------------------------- parsing
def test_generate_text_usage_and_letter_logprobs(backend, server):
    reqs = [_req(i, image=_img("PNG"), letters=("A", "B", "C")) for i in range(6)]  # prompt shows A-D
    res = _run(backend, reqs)
    for i, g in res.items():
        assert isinstance(g, Generation) and g.error is None and g.attempts == 1
        assert g.text == default_answer({"messages": [{"role": "user", "content": reqs[i].prompt}]})
        assert g.finish_reason == "stop" and g.latency_s is not None and g.latency_s >= 0
        assert set(g.usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
        assert all(isinstance(v, int) for v in g.usage.values())
        chosen = g.text.strip("()")
        others = [x for x in "ABCD" if x != chosen]
        expect = {x: -2.0 - others.index(x) for x in others if x in "ABC"}  # "(X" beats "X" (-0.5)
        if chosen in "ABC":
            expect[chosen] = -0.05
        assert g.logprobs == expect, "only the request's letters, max over spellings"


def test_generate_length_and_no_logprobs():
    with FakeOpenAIServer(logprobs=False, answer_fn=lambda b: "(B) because of the dog") as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, **FAST) as be:
            g = _run(be, [_req(0, max_new_tokens=2)])[0]
    assert g.error is None and g.text == "(B)" and g.finish_reason == "length" and g.logprobs is None


def test_logprobs_rejected_falls_back_once_and_remembers():
    with FakeOpenAIServer(logprobs="reject") as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, concurrency=1, **FAST) as be:
            res = _run(be, [_req(i) for i in range(3)])
            assert all(g.error is None and g.text for g in res.values())
            assert res[0].attempts == 2 and res[1].attempts == 1 and res[2].attempts == 1
            assert [bool(b.get("logprobs")) for b in srv.requests] == [True, False, False, False]
            s = _run(be, [_req(0)], "score")[0]  # scoring needs log-probs: an error, not a letter
            assert s.logprobs is None and s.error.type == "api" and "400" in s.error.message


def test_letter_logprobs_exact_letters_only():
    class Tok:
        def __init__(self, token: str, logprob: float, top=None):
            self.token, self.logprob, self.top_logprobs = token, logprob, top

    pos = Tok("(B", -0.1, [Tok(t, lp) for t, lp in
                           [("(B", -0.1), (" A", -1.0), ("A", -0.5), ("B)", -0.2), ("b", -0.3),
                            ("C.", -0.4), ("Cat", -0.6), ("D", -0.7), ("E", -0.8), ("A", float("-inf"))]])
    assert letter_logprobs(pos, ("A", "B", "C", "D")) == {"B": -0.1, "A": -0.5, "D": -0.7}


def test_score_options_letters(backend, server):
    reqs = [_req(i, image=_img("PNG"), n=3) for i in range(5)]
    res = _run(backend, reqs, "score")
    for i, s in res.items():
        assert isinstance(s, OptionScores) and s.error is None
        assert set(s.logprobs) == {"A", "B", "C"}
        chosen = default_answer({"messages": [{"role": "user", "content": reqs[i].prompt}]}).strip("()")
        assert max(s.logprobs, key=s.logprobs.get) == chosen
    assert all(b["max_tokens"] == 1 and b["logprobs"] is True for b in server.requests)


@pytest.mark.parametrize("kw", [{"logprobs": False}, {"answer_fn": lambda b: "Sure, here"}])
def test_score_options_without_letter_logprobs_is_an_error(kw):
    with FakeOpenAIServer(**kw) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, **FAST) as be:
            s = _run(be, [_req(0)], "score")[0]
            g = _run(be, [_req(0)])[0]
    assert s.logprobs is None and s.error.type == "api" and s.error.message == NO_LOGPROBS
    assert s.attempts == 1 and srv.n_requests == 2  # not retried
    assert g.error is None and g.logprobs is None


# ---------------------------------------------------------------- faults and retries
def test_faults_retried_and_budget_exhausted():
    """60 requests: each transient fault hits a prompt's first attempt only; one prompt always 500s."""
    kinds = ["429", "500", "503", "timeout", "garbage", "garbage_json", "empty_choices", "no_content"]
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def faults(i, body):
        text = body["messages"][-1]["content"][-1]["text"]
        if "Question 13?" in text:
            return "500"
        k = int(text.split("?")[0].split()[-1])
        with lock:
            seen[text] += 1
            first = seen[text] == 1
        return kinds[k % len(kinds)] if first and k % 3 == 0 else None

    reqs = [_req(i, image=_img("PNG")) for i in range(60)]
    with FakeOpenAIServer(latency=0.005, faults=faults, hang_s=1.0, retry_after_ms=20) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, concurrency=16, max_retries=3,
                           backoff_base=0.01, backoff_max=0.05, timeout=0.4) as be:
            res = _run(be, reqs)
        n_bad = sum("Question 13?" in b["messages"][-1]["content"][-1]["text"] for b in srv.requests)
    assert n_bad == 4  # max_retries + 1
    bad = res[13]
    assert bad.text is None and bad.error.type == "api" and bad.attempts == 4
    assert "500" in bad.error.message and "4 attempts" in bad.error.message
    for i, g in res.items():
        if i == 13:
            continue
        assert g.error is None and g.text, (i, g.error)
        assert g.attempts == (2 if i % 3 == 0 else 1), (i, g.attempts)
    assert {429, 500, 503} <= set(srv.status_counts)


@pytest.mark.parametrize("fault,status", [("400", 400), ("401", 401), ("404", 404)])
def test_client_errors_not_retried(fault, status):
    with FakeOpenAIServer(faults=lambda i, b: fault) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, max_retries=5, **FAST) as be:
            g = _run(be, [_req(0)])[0]
            s = _run(be, [_req(1)], "score")[0]
    assert srv.n_requests == 2
    for r in (g, s):
        assert r.error.type == "api" and r.attempts == 1 and f"HTTP {status}" in r.error.message


def test_retry_after_headers():
    def exc(headers: dict) -> openai.RateLimitError:
        req = httpx2.Request("POST", "http://x/v1/chat/completions")
        return openai.RateLimitError("slow down", response=httpx2.Response(429, headers=headers, request=req), body=None)

    assert _retry_after(exc({"retry-after-ms": "250"}), cap=20) == pytest.approx(0.25)
    assert _retry_after(exc({"retry-after": "3"}), cap=20) == pytest.approx(3.0)
    assert _retry_after(exc({"retry-after": "3600"}), cap=20) == 20  # bounded
    assert _retry_after(exc({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}), cap=20) == 0.0
    assert _retry_after(exc({"retry-after": "soon"}), cap=20) is None
    assert _retry_after(exc({}), cap=20) is None


# ---------------------------------------------------------------- ordering, concurrency, cancel
def test_completion_order_yields_every_position_once():
    def slow_first(body):
        k = int(body["messages"][-1]["content"][-1]["text"].split("?")[0].split()[-1])
        time.sleep(0.02 * (10 - k))  # later positions finish first
        return "(A)"

    with FakeOpenAIServer(answer_fn=slow_first) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, concurrency=10, **FAST) as be:
            order = [p for p, _ in be.generate([_req(i) for i in range(10)])]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert order[-1] == 0


def test_concurrency_bound_respected():
    with FakeOpenAIServer(latency=0.02) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, concurrency=4, **FAST) as be:
            _run(be, [_req(i) for i in range(40)])
            _run(be, [_req(i) for i in range(20)], "score")
    assert srv.n_requests == 60 and 2 <= srv.max_in_flight <= 4


def test_early_stop_cancels_pending_and_backend_stays_usable():
    with FakeOpenAIServer(latency=0.05) as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=KEY, concurrency=2, **FAST) as be:
            for k, _ in enumerate(be.generate([_req(i) for i in range(50)])):
                if k == 2:
                    break
            time.sleep(0.2)
            assert srv.n_requests < 10  # the other ~45 were cancelled, never sent
            assert len(_run(be, [_req(i) for i in range(5)])) == 5


# ---------------------------------------------------------------- secrets
def test_api_key_never_leaks():
    secret = "sk-DISTINCTIVE-7f3a9c-do-not-leak"
    # The fake echoes the key it received in its 401 message, as some servers do.
    with FakeOpenAIServer(require_key="sk-the-right-one") as srv:
        with OpenAIBackend("m", base_url=srv.base_url, api_key=secret, **FAST) as be:
            g = _run(be, [_req(0)])[0]
            s = _run(be, [_req(1)], "score")[0]
            texts = [repr(be), str(be), repr(be.info), g.error.message, s.error.message, repr(g), repr(s)]
    assert g.error.type == "api" and "401" in g.error.message and g.attempts == 1
    assert all(secret not in t for t in texts)
    assert all(secret not in v for v in vars(be).values() if isinstance(v, str))


# ---------------------------------------------------------------- separate-process server
def test_fake_server_runs_as_a_process():
    script = Path(__file__).resolve().parents[1] / "helpers" / "fake_openai.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--latency", "0.01"],
                            stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with OpenAIBackend("m", base_url=base_url, api_key=KEY, **FAST) as be:
            res = _run(be, [_req(i, image=_img("PNG")) for i in range(4)])
        assert all(g.error is None and g.logprobs for g in res.values())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
