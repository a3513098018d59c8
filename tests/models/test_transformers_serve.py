"""End to end against a real OpenAI-compatible server: `transformers serve` (installed with
transformers) serving the tiny random-weight LLaVA folder on a loopback port.

The API backend is run the way a user runs it (`spuriverse eval --model openai:NAME --base-url ...`),
and the LLM judge (`curate judge`, structured output) asks the same server. Skipped, with the
server's own message, only where `transformers serve` cannot start (it needs fastapi + uvicorn,
which `transformers[serving]` and spuriverse's dev extra install).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.curate_data import make_curation_dir
from helpers.hf_serve import ServeUnavailable, serve

from spuriverse.data.curation import latest
from spuriverse.curate.judge import JUDGMENTS, judge_errors
from spuriverse.curate.judge_backends import OUTPUT_MODES, OpenAIJudge
from spuriverse.schema import Judgment

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "spuriverse" / "data" / "spuriverse-mini"


@pytest.fixture(scope="module")
def served(tiny_llava, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    try:
        with serve(tiny_llava, log) as base_url:
            yield tiny_llava, base_url
    except ServeUnavailable as exc:
        pytest.skip(f"transformers serve cannot start here: {exc}")


def _eval(model: str, base_url: str, out: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "OPENAI_API_KEY": "local-no-key"}
    p = subprocess.run(
        [sys.executable, "-m", "spuriverse", "eval", "--model", f"openai:{model}", "--base-url", base_url,
         "--dataset", str(MINI), "--output-dir", str(out), "--limit", "8", "--no-progress", *extra],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_eval_through_a_real_server_sends_images_and_records_usage(served, tmp_path):
    folder, base_url = served
    seen = _eval(str(folder), base_url, tmp_path / "seen")
    blind = _eval(str(folder), base_url, tmp_path / "blind", "--blind")
    assert len(seen) == len(blind) == 8
    for s in seen + blind:  # every sample is answered (parsed or recorded unparsed) or a recorded failure
        assert (s["error"] is None) == (s["parse_status"] is not None), s
        assert s["error"] is None, s["error"]  # a healthy local server: no failure expected at all
        assert s["usage"]["prompt_tokens"] > 0 and s["usage"]["completion_tokens"] > 0, s
    # the images arrive: each prompt with its image is longer than the same prompt without it, by
    # the same number of image tokens (the tiny LLaVA's fixed patch grid)
    extra = {a["item_id"]: a["usage"]["prompt_tokens"] - b["usage"]["prompt_tokens"] for a, b in zip(seen, blind)}
    assert len(set(extra.values())) == 1 and next(iter(extra.values())) > 0, extra
    results = json.loads((tmp_path / "seen" / "results.json").read_text())
    assert results["metrics"]["failed_rate"]["value"] == 0.0 and results["model"]["backend"] == "openai"


def test_judge_through_a_real_server_validates_or_records_every_verdict(served, tmp_path):
    folder, base_url = served
    d = make_curation_dir(tmp_path / "c", n=2)
    (d / "judgments.jsonl").unlink()
    (d / "reviews.jsonl").unlink()
    judge = OpenAIJudge(str(folder), base_url=base_url, api_key="local-no-key", max_retries=2, max_tokens=48,
                        backoff_base=0.01, backoff_max=0.05)
    s = judge_errors(d, judge, concurrency=1, progress=False)
    j = latest(d / JUDGMENTS, Judgment)
    assert len(j) == 2 and s.judged + s.failed == 2
    for x in j.values():  # pydantic-validated verdict, or a recorded failure: never a half verdict
        assert (x.spurious is None) == (x.error is not None), x
    assert sum(s.output_modes.values()) == 2 and set(s.output_modes) <= set(OUTPUT_MODES)
    if s.failed:  # a random-weight model writes no JSON: the judge must have stepped down, not looped
        assert set(s.output_modes) - {"json_schema"}, s.output_modes
        assert all(x.attempts <= 3 for x in j.values())
