"""The judge degrades gracefully on servers without structured outputs: a 400 naming
`response_format`, or a reply with no JSON under a strict schema, steps down to `json_object` with the
schema in the prompt, then to the prompt alone; pydantic validates every verdict either way, and
judge_summary.json records the modes used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers.curate_data import make_curation_dir
from helpers.fake_openai import FakeOpenAIServer, user_text

from spuriverse.data.curation import latest
from spuriverse.curate.judge import JUDGE_SUMMARY, JUDGMENTS, judge_errors
from spuriverse.curate.judge_backends import OUTPUT_MODES, OpenAIJudge
from spuriverse.demo.judge_server import demo_verdict
from spuriverse.schema import JudgeSummary, Judgment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _errors_dir(root: Path, n: int = 3) -> Path:
    make_curation_dir(root, n=n)
    (root / "judgments.jsonl").unlink()
    (root / "reviews.jsonl").unlink()
    return root


def _judge(srv: FakeOpenAIServer) -> OpenAIJudge:
    return OpenAIJudge("judge-x", base_url=srv.base_url, api_key="sk-test", backoff_base=0.005, backoff_max=0.05,
                       max_retries=3)


def _verdict(body: dict) -> str:
    return json.dumps(demo_verdict(user_text(body)))


def _format(body: dict) -> str | None:
    return (body.get("response_format") or {}).get("type")


def test_a_server_that_rejects_json_schema_gets_json_object_with_the_schema_in_the_prompt(tmp_path):
    d = _errors_dir(tmp_path / "c", n=3)
    with FakeOpenAIServer(answer_fn=_verdict,
                          faults=lambda i, b: "400_response_format" if _format(b) == "json_schema" else None) as srv:
        s = judge_errors(d, _judge(srv), concurrency=1, progress=False)
        bodies = [r["body"] if "body" in r else r for r in srv.requests]
    assert (s.judged, s.failed) == (3, 0)
    assert s.output_modes == {"json_object": 3}
    assert [_format(b) for b in bodies] == ["json_schema", "json_object", "json_object", "json_object"]
    system = bodies[1]["messages"][0]["content"]
    assert "It must validate against this JSON Schema" in system and '"spurious_attributes"' in system
    summary = JudgeSummary.model_validate_json((d / JUDGE_SUMMARY).read_text())
    assert summary.output_modes == {"json_object": 3}


def test_a_server_that_rejects_every_response_format_gets_the_schema_in_the_prompt_alone(tmp_path):
    d = _errors_dir(tmp_path / "c", n=2)
    with FakeOpenAIServer(answer_fn=_verdict,
                          faults=lambda i, b: "400_response_format" if _format(b) else None) as srv:
        s = judge_errors(d, _judge(srv), concurrency=1, progress=False)
    assert (s.judged, s.failed, s.output_modes) == (2, 0, {"prompt": 2})


def test_a_server_that_ignores_the_schema_and_answers_prose(tmp_path):
    d = _errors_dir(tmp_path / "c", n=3)

    def answer(body):  # ignores json_schema (prose), honours json_object + schema in the prompt
        return "The error is spurious, the bags mislead it." if _format(body) == "json_schema" else _verdict(body)

    with FakeOpenAIServer(answer_fn=answer) as srv:
        s = judge_errors(d, _judge(srv), concurrency=1, progress=False)
    assert (s.judged, s.failed, s.output_modes) == (3, 0, {"json_object": 3})
    j = latest(d / JUDGMENTS, Judgment)
    assert [x.attempts for _, x in sorted(j.items())] == [2, 1, 1]


def test_a_server_that_honours_json_schema_stays_on_it(tmp_path):
    d = _errors_dir(tmp_path / "c", n=3)
    with FakeOpenAIServer(answer_fn=_verdict) as srv:
        s = judge_errors(d, _judge(srv), progress=False)
    assert s.output_modes == {"json_schema": 3} and OUTPUT_MODES[0] == "json_schema"


def test_other_400s_are_not_mistaken_for_a_missing_feature(tmp_path):
    d = _errors_dir(tmp_path / "c", n=1)
    with FakeOpenAIServer(answer_fn=_verdict, faults=lambda i, b: "400") as srv:
        s = judge_errors(d, _judge(srv), progress=False)
        n = srv.n_requests
    assert (s.failed, n, s.output_modes) == (1, 1, {"json_schema": 1})
