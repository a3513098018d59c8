"""API models through the whole runner, against a loopback OpenAI-compatible server with faults."""

from __future__ import annotations

import json

import pytest

from helpers.fake_openai import FakeOpenAIServer, user_text
from spuriverse.eval.runner import EvalOptions, run_eval

KEY = "sk-test-DO-NOT-LEAK-0123456789"


def _faults(always_fail: set[str]):
    """Prompts in `always_fail` fail every attempt; every other request fails its first attempt
    with a rotating transient fault (429, 500, timeout, garbage, empty choices) or succeeds."""
    attempts: dict[str, int] = {}
    kinds = ["429", "500", "timeout", "garbage", "empty_choices", None]

    def fault(i, body):
        text = user_text(body)
        if any(q in text for q in always_fail):
            return "500"
        key = json.dumps(body["messages"], sort_keys=True)
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] > 1:
            return None
        return kinds[len(attempts) % len(kinds)]

    return fault


def test_api_faults_are_retried_and_permanent_failures_recorded_not_scored(small_benchmark, tmp_path):
    # every item of group g001 shares one question: that question always fails
    with FakeOpenAIServer(faults=_faults({"picture 1?"}), require_key=KEY, hang_s=1.0) as srv:
        result = run_eval(EvalOptions(
            model="openai:fake-vlm", dataset=str(small_benchmark), output_dir=tmp_path / "r",
            n_bootstrap=100, progress=False, report=True,
            backend_options={"base_url": srv.base_url, "api_key": KEY, "concurrency": 8,
                             "max_retries": 3, "timeout": 0.5, "backoff_base": 0.01, "backoff_max": 0.05},
        ))
    lines = [json.loads(x) for x in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 36 and [s["index"] for s in lines] == list(range(36))
    failed = [s for s in lines if s["error"] is not None]
    assert {s["group_id"] for s in failed} == {"g001"} and len(failed) == 5
    for s in failed:
        assert s["error_type"] == "api" and s["prediction"] is None and s["correct"] is False
        assert s["parse_status"] is None and s["attempts"] == 4
    ok = [s for s in lines if s["error"] is None]
    assert all(s["parse_status"] == "strict" and s["prediction"] in "ABCD" for s in ok)
    assert any(s["attempts"] > 1 for s in ok), "transient faults should have been retried"
    assert result.failures.n_failed == 5 and result.failures.by_type == {"api": 5}
    assert result.metrics["failed_rate"].value == pytest.approx(5 / 36)
    # the key is in no file the run wrote
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path.name


def test_api_run_resumes_only_failed_free_gaps(small_benchmark, tmp_path):
    """A re-run asks only missing items; recorded failures stay recorded (no silent re-scoring)."""
    with FakeOpenAIServer() as srv:
        opts = dict(model="openai:fake-vlm", dataset=str(small_benchmark), output_dir=tmp_path / "r",
                    n_bootstrap=50, progress=False, report=False,
                    backend_options={"base_url": srv.base_url, "api_key": KEY})
        run_eval(EvalOptions(limit=10, **opts))
        assert srv.n_requests == 10
        run_eval(EvalOptions(**opts))
        assert srv.n_requests == 36
        run_eval(EvalOptions(**opts))
        assert srv.n_requests == 36


def test_images_reach_the_api_as_data_urls(small_benchmark, tmp_path):
    with FakeOpenAIServer() as srv:
        run_eval(EvalOptions(model="openai:fake-vlm", dataset=str(small_benchmark), output_dir=tmp_path / "r",
                             limit=2, n_bootstrap=0, progress=False, report=False,
                             backend_options={"base_url": srv.base_url, "api_key": KEY}))
        body = srv.requests[0]
    parts = body["messages"][-1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert body["messages"][0]["role"] == "system"
