"""Stage 2 of curation with an LLM judge: `spuriverse curate judge DIR --judge M`.

Offline: the judge is the fake OpenAI server (faults, scripted answers), the packaged scripted
demo judge, or the tiny random-weight LLaVA through the real HF path.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.curate_data import make_curation_dir
from helpers.fake_openai import FakeOpenAIServer, user_text

from spuriverse.data.curation import latest, read_jsonl
from spuriverse.demo.judge_server import DemoJudgeServer, demo_verdict
from spuriverse.curate.judge import (
    JUDGE_SUMMARY,
    JUDGMENTS,
    JudgeTemplate,
    judge_errors,
    load_template,
    render_prompt,
)
from spuriverse.curate.judge_backends import HFJudge, OpenAIJudge, extract_json, judge_schema, parse_output
from spuriverse.cli import main
from spuriverse.schema import ErrorRecord, Judgment

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def errors_dir(root: Path, n: int = 3) -> Path:
    """A curation folder with `n` errors (anchor images) and nothing judged yet."""
    make_curation_dir(root, n=n)
    (root / "judgments.jsonl").unlink()
    (root / "reviews.jsonl").unlink()
    return root


def verdict_json(body: dict, **changes) -> str:
    return json.dumps({**demo_verdict(user_text(body)), **changes})


def judge(srv, **kw) -> OpenAIJudge:
    kw = {"api_key": "sk-test", "backoff_base": 0.005, "backoff_max": 0.05, **kw}
    return OpenAIJudge("judge-x", base_url=srv.base_url, **kw)


def cid_of(body: dict) -> str:
    return user_text(body).split("What is happening ")[1][0]  # "0", "1", ... of make_curation_dir


# ---------------------------------------------------------------- prompt template (snapshot)
SNAPSHOT_SYSTEM = (
    "You audit the mistakes of a vision-language model on multiple-choice questions about images. You are shown "
    "the image, the question, its options, the option the model chose (which is wrong) and the correct answer. "
    "Decide whether the model's error is primarily caused by a spurious correlation: a feature of the image (an "
    "object, a background, text, a colour, a context) that often co-occurs with the wrong option but does not "
    "determine the correct answer. Reply with one JSON object only, no other text.")
SNAPSHOT_USER = """Question: Why is the man standing at the curb?
Options:
(A) waiting for a bus
(B) going to the beach
(C) selling bags
Correct answer: (A) waiting for a bus
The model answered: (C) selling bags

1. "spurious": true if the model's error is primarily caused by a spurious correlation in the image, else false; \
"rationale": one or two sentences explaining why.
2. "core_attributes": what in the image actually determines the correct answer.
3. "spurious_attributes": the top 2 spurious attributes that pointed the model to its wrong answer, most important \
first (an empty list if the error is not spurious).
4. Two one-line scene descriptions for a text-to-image model: "positive", a scene whose correct answer is still \
(A) waiting for a bus but which contains the spurious attributes; "negative", the same scene without them.

Reply with one JSON object with exactly these keys: spurious, rationale, core_attributes, spurious_attributes, \
positive, negative."""
SNAPSHOT_HASH = "7a0404ecab18c498"  # changes with any word of templates/judge.toml or the schema


def test_prompt_template_snapshot():
    e = ErrorRecord(candidate_id="aokvqa-1", source="aokvqa", question_id="1",
                    question="Why is the man standing at the curb?",
                    options=["waiting for a bus", "going to the beach", "selling bags"], answer="A", prediction="C",
                    raw="(C) selling bags", image="a.png")
    assert render_prompt(e) == (SNAPSHOT_SYSTEM, SNAPSHOT_USER)
    assert load_template().hash == SNAPSHOT_HASH
    # an unparsed prediction and the no-image note
    _, user = render_prompt(e.model_copy(update={"prediction": None, "raw": "I cannot tell."}), image=False)
    assert "The model answered: an answer matching none of the options: 'I cannot tell.'" in user
    assert user.endswith("\n\n" + load_template().no_image_note)
    # the hash is of the template, not of the item; any change of the template changes it
    t = load_template()
    assert JudgeTemplate(t.version, t.system, t.user + " ", t.no_image_note).hash != t.hash


def test_schema_and_parsing():
    schema = judge_schema()
    assert schema["additionalProperties"] is False and schema["type"] == "object"
    assert sorted(schema["required"]) == sorted(schema["properties"])
    assert "title" not in json.dumps(schema)
    ok = json.dumps(demo_verdict("Question: q?\nCorrect answer: (A) x\nThe model answered: (B) y"))
    assert parse_output(f"Sure! ```json\n{ok}\n``` hope this helps {{").spurious is True
    assert extract_json("no { json } here {\"a\": 1} tail") == '{"a": 1}'
    for bad, why in [("", "empty"), ("yes", "no JSON object"), ('{"spurious": true}', "schema violation")]:
        with pytest.raises(ValueError, match=why):
            parse_output(bad)


# ---------------------------------------------------------------- requests and verdicts
def test_structured_request_with_image_and_verdicts(tmp_path):
    d = errors_dir(tmp_path / "b", n=3)
    with FakeOpenAIServer(answer_fn=verdict_json, latency=0.05) as srv:
        s = judge_errors(d, judge(srv), concurrency=2, progress=False)
    assert srv.n_requests == 3 and srv.max_in_flight <= 2
    body = srv.requests[0]
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == judge_schema()
    assert body["model"] == "judge-x" and body["temperature"] == 0.0
    system, user = body["messages"]
    assert system == {"role": "system", "content": load_template().system}
    image_part, text_part = user["content"]
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    anchors = {(d / "anchors" / f"aokvqa-100{i}.png").read_bytes() for i in range(3)}
    assert base64.b64decode(url.split(",", 1)[1]) in anchors
    assert text_part["text"].startswith("Question: What is happening")

    judged = latest(d / JUDGMENTS, Judgment)
    assert sorted(judged) == ["aokvqa-1000", "aokvqa-1001", "aokvqa-1002"]
    j = judged["aokvqa-1001"]
    assert j.spurious is True and j.judge == "judge-x" and j.prompt_hash == load_template().hash
    assert j.spurious_attributes == ["a cue suggesting running"] and j.positive == "waiting, with running beside it"
    assert j.attempts == 1 and j.error is None
    # tokens: per judgment from the response's usage, summed in the summary and judge_summary.json
    assert s.judged == 3 and s.failed == 0 and s.cached == 0 and s.spurious == 3 and s.requests == 3
    assert s.prompt_tokens == sum(x.usage["prompt_tokens"] for x in judged.values()) > 0
    assert s.completion_tokens == sum(x.usage["completion_tokens"] for x in judged.values()) > 0
    assert json.loads((d / JUDGE_SUMMARY).read_text())["total_tokens"] == s.total_tokens == (
        s.prompt_tokens + s.completion_tokens)
    # canonical order on disk
    assert [x.candidate_id for x in read_jsonl(d / JUDGMENTS, Judgment)] == sorted(judged)


def test_invalid_output_retried_then_failed(tmp_path):
    d = errors_dir(tmp_path / "b", n=4)
    seen: dict[str, int] = {}

    def answer(body):
        c = cid_of(body)
        seen[c] = seen.get(c, 0) + 1
        if c == "0":
            return "I think the answer is yes."  # not JSON
        if c == "1":  # valid JSON, breaks the schema: 3 spurious attributes
            return verdict_json(body, spurious_attributes=["a", "b", "c"])
        if c == "2" and seen[c] == 1:  # invalid once, then fine
            return verdict_json(body, spurious="maybe")
        return verdict_json(body)

    with FakeOpenAIServer(answer_fn=answer) as srv:
        s = judge_errors(d, judge(srv, max_retries=2), progress=False)
    j = latest(d / JUDGMENTS, Judgment)
    assert seen == {"0": 3, "1": 3, "2": 2, "3": 1}
    assert j["aokvqa-1000"].spurious is None and "invalid output: no JSON object" in j["aokvqa-1000"].error
    assert j["aokvqa-1001"].spurious is None and "schema violation" in j["aokvqa-1001"].error
    assert j["aokvqa-1000"].attempts == 3 and "after 3 attempts" in j["aokvqa-1000"].error
    assert j["aokvqa-1002"].spurious is True and j["aokvqa-1002"].attempts == 2
    assert j["aokvqa-1000"].usage["completion_tokens"] > 0  # paid tokens of failed attempts are counted
    assert (s.judged, s.failed, s.requests) == (2, 2, 9)
    assert s.prompt_tokens == sum(x.usage["prompt_tokens"] for x in j.values())


def test_api_faults_retried_or_recorded(tmp_path):
    d = errors_dir(tmp_path / "b", n=7)
    plan = {"0": ["429", "500", None], "1": ["timeout", None], "2": ["garbage", "empty_choices", None],
            "3": ["400"], "4": ["503"] * 9, "5": ["refusal", None], "6": ["401"]}
    count: dict[str, int] = {}

    def faults(i, body):
        c = cid_of(body)
        count[c] = count.get(c, 0) + 1
        return plan[c][min(count[c], len(plan[c])) - 1]

    with FakeOpenAIServer(answer_fn=verdict_json, faults=faults, hang_s=1.0) as srv:
        s = judge_errors(d, judge(srv, max_retries=2, timeout=0.3), concurrency=4, progress=False)
    j = latest(d / JUDGMENTS, Judgment)
    for c, attempts in [("0", 3), ("1", 2), ("2", 3), ("5", 2)]:
        assert j[f"aokvqa-100{c}"].spurious is True and j[f"aokvqa-100{c}"].attempts == attempts, c
    assert j["aokvqa-1003"].spurious is None and "HTTP 400" in j["aokvqa-1003"].error and j["aokvqa-1003"].attempts == 1
    assert "HTTP 503" in j["aokvqa-1004"].error and j["aokvqa-1004"].attempts == 3
    assert "HTTP 401" in j["aokvqa-1006"].error and j["aokvqa-1006"].attempts == 1
    assert (s.judged, s.failed) == (4, 3)
    assert json.loads((d / JUDGE_SUMMARY).read_text())["failed"] == 3


def test_missing_image_fail_or_text(tmp_path):
    d = errors_dir(tmp_path / "b", n=2)
    (d / "anchors" / "aokvqa-1001.png").unlink()
    with FakeOpenAIServer(answer_fn=verdict_json) as srv:
        s = judge_errors(d, judge(srv), progress=False)
        assert srv.n_requests == 1 and (s.judged, s.failed) == (1, 1)
        j = latest(d / JUDGMENTS, Judgment)["aokvqa-1001"]
        assert j.spurious is None and "anchor image not found" in j.error and j.attempts == 0
        s = judge_errors(d, judge(srv), missing_image="text", progress=False)  # the failure is retried
        assert srv.n_requests == 2 and (s.cached, s.judged, s.failed) == (1, 1, 0)
        content = srv.requests[1]["messages"][1]["content"]
        assert [p["type"] for p in content] == ["text"] and "The image is not available" in content[0]["text"]


# ---------------------------------------------------------------- cache and re-judging
def test_cache_rerun_and_rejudge(tmp_path):
    d = errors_dir(tmp_path / "b", n=3)
    flaky = {"on": True}

    def faults(i, body):
        return "400" if flaky["on"] and cid_of(body) == "2" else None

    with FakeOpenAIServer(answer_fn=verdict_json, faults=faults) as srv:
        s1 = judge_errors(d, judge(srv), progress=False)
        assert (s1.judged, s1.failed, srv.n_requests) == (2, 1, 3)
        flaky["on"] = False
        s2 = judge_errors(d, judge(srv), progress=False)  # only the failed one is asked again
        assert (s2.cached, s2.judged, srv.n_requests) == (2, 1, 4)
        before = (d / JUDGMENTS).read_bytes()
        s3 = judge_errors(d, judge(srv), progress=False)  # everything cached: no request, same file
        assert (s3.cached, s3.judged, s3.requests, srv.n_requests) == (3, 0, 0, 4)
        assert (d / JUDGMENTS).read_bytes() == before and s3.spurious == 3
        # another prompt template: re-judged and appended; the last line per candidate wins
        t = load_template()
        other = JudgeTemplate(t.version + 1, t.system, t.user, t.no_image_note)
        s4 = judge_errors(d, judge(srv), template=other, progress=False)
        assert (s4.cached, s4.judged, srv.n_requests) == (0, 3, 7)
        # another judge: re-judged too
        s5 = OpenAIJudge("judge-y", base_url=srv.base_url, api_key="sk-test")
        assert judge_errors(d, s5, progress=False).judged == 3 and srv.n_requests == 10
    lines = list(read_jsonl(d / JUDGMENTS, Judgment))
    assert len(lines) == 4 + 3 + 3  # history kept (incl. the failure), sorted by candidate, stable
    assert [x.candidate_id for x in lines] == sorted(x.candidate_id for x in lines)
    assert {j.judge for j in latest(d / JUDGMENTS, Judgment).values()} == {"judge-y"}
    assert [x.judge for x in lines if x.candidate_id == "aokvqa-1000"] == ["judge-x", "judge-x", "judge-y"]


def test_limit(tmp_path):
    d = errors_dir(tmp_path / "b", n=3)
    with FakeOpenAIServer(answer_fn=verdict_json) as srv:
        s = judge_errors(d, judge(srv), limit=2, progress=False)
    assert (s.judged, s.not_attempted) == (2, 1) and sorted(latest(d / JUDGMENTS, Judgment)) == [
        "aokvqa-1000", "aokvqa-1001"]


# ---------------------------------------------------------------- CLI
def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["curate", "judge", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--judge", "--base-url", "--api-key", "--concurrency", "--max-retries", "--verdicts", "--preset"):
        assert flag in out


def test_cli_judge_and_verdicts_exclusive(tmp_path, capsys):
    d = errors_dir(tmp_path / "b", n=1)
    with pytest.raises(SystemExit) as exc:
        main(["curate", "judge", str(d), "--judge", "x", "--verdicts", "v.csv", "--preset", "aokvqa"])
    assert exc.value.code == 2
    assert main(["curate", "judge", str(d), "--verdicts", "v.csv"]) == 2
    assert "--verdicts needs --preset" in capsys.readouterr().err
    assert main(["curate", "judge", str(tmp_path / "nothing"), "--judge", "x", "--base-url", "http://x"]) == 2


def test_cli_key_never_written(tmp_path, capsys, monkeypatch):
    secret = "sk-very-secret-0123456789"
    d = errors_dir(tmp_path / "b", n=2)
    # a server that rejects the key and echoes it back in its error message
    with FakeOpenAIServer(answer_fn=verdict_json, require_key="another-key") as srv:
        rc = main(["curate", "judge", str(d), "--judge", "judge-x", "--base-url", srv.base_url, "--api-key", secret,
                   "--no-progress"])
    assert rc == 1
    assert all("HTTP 401" in j.error for j in latest(d / JUDGMENTS, Judgment).values())
    # then the right key, from the environment
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with FakeOpenAIServer(answer_fn=verdict_json, require_key=secret) as srv:
        rc = main(["curate", "judge", str(d), "--judge", "judge-x", "--base-url", srv.base_url, "--no-progress"])
    assert rc == 0
    out = capsys.readouterr()
    assert "judged 2 (2 spurious in all), failed 0, cached 0 of 2 errors" in out.out
    assert secret not in out.out + out.err
    for f in d.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_kill_and_resume_gives_the_same_file(tmp_path):
    url_file = tmp_path / "judge.url"
    server = subprocess.Popen([PY, "-m", "spuriverse.demo.judge_server", "--port", "0", "--url-file", str(url_file),
                               "--latency", "0.2"], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if url_file.exists() and url_file.read_text().strip():
                break
            time.sleep(0.05)
        url = url_file.read_text().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        env = {**os.environ, "OPENAI_API_KEY": "demo-key"}
        args = ["curate", "judge", "--judge", "demo-judge", "--base-url", url, "--concurrency", "2", "--no-progress"]
        run = [PY, "-m", "spuriverse", *args[:2]]

        whole = errors_dir(tmp_path / "whole", n=12)
        subprocess.run([*run, str(whole), *args[2:]], cwd=REPO, env=env, check=True, capture_output=True)

        killed = errors_dir(tmp_path / "killed", n=12)
        proc = subprocess.Popen([*run, str(killed), *args[2:]], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        path = killed / JUDGMENTS
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 3 <= path.read_bytes().count(b"\n") < 12, "the kill must land mid-run"
        assert not (killed / JUDGE_SUMMARY).exists()
        done = subprocess.run([*run, str(killed), *args[2:]], cwd=REPO, env=env, check=True, capture_output=True,
                              text=True)
        assert "cached" in done.stdout
        assert path.read_bytes() == (whole / JUDGMENTS).read_bytes()
        summary = json.loads((killed / JUDGE_SUMMARY).read_text())
        assert summary["cached"] >= 3 and summary["cached"] + summary["judged"] == 12
    finally:
        server.kill()
        server.wait()


def test_demo_judge_in_process(tmp_path):
    d = errors_dir(tmp_path / "b", n=2)
    with DemoJudgeServer() as srv:
        s = judge_errors(d, OpenAIJudge("demo-judge", base_url=srv.base_url, api_key="k"), progress=False)
    assert srv.n_requests == 2 and s.judged == 2 and s.spurious == 2


# ---------------------------------------------------------------- local HF judge
def test_hf_judge_tiny_model_records_failures(tmp_path, tiny_llava):
    d = errors_dir(tmp_path / "b", n=2)
    backend = HFJudge(str(tiny_llava), max_retries=1, max_new_tokens=8, device="cpu")
    try:
        s = judge_errors(d, backend, progress=False)
    finally:
        backend.close()
    j = latest(d / JUDGMENTS, Judgment)
    assert (s.judged, s.failed) == (0, 2)  # random weights: garbage, recorded after the retry
    for x in j.values():
        assert x.spurious is None and "invalid output" in x.error and x.attempts == 2
        assert x.judge == str(tiny_llava) and x.usage["prompt_tokens"] > 0
    assert s.prompt_tokens == sum(x.usage["prompt_tokens"] for x in j.values())
