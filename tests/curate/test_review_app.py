"""The review web app (`spuriverse curate review DIR`) over HTTP: uvicorn on a free loopback port in a
thread, driven with urllib (httpx, which FastAPI's TestClient needs, is not installed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.curate_data import anchor_png, make_curation_dir
from spuriverse.data.curation import read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.curate.review_app import CSP, BackgroundServer, create_app, is_loopback
from spuriverse.schema import ErrorRecord, Judgment, ReviewDecision, SynthProvenance

EVIL_Q = "<script>window.__pwned=1</script>What <b>is</b> this?"
EVIL_R = "<img src=x onerror=\"window.__pwned=2\">because"
OPTIONS = ["waiting", "running", "eating", "sleeping"]


def _error(cid: str, question: str = "What is it?", image: str | None = None) -> ErrorRecord:
    return ErrorRecord(candidate_id=cid, source="aokvqa", question_id=cid, question=question, options=OPTIONS,
                       answer="A", prediction="C", raw="(C) eating", image=image)


def _judgment(cid: str, **kw) -> Judgment:
    base = dict(candidate_id=cid, judge="fake-judge", prompt_hash="h", spurious=True, rationale="a cue",
                core_attributes=["the person"], spurious_attributes=["bags"], positive="pos", negative="neg")
    return Judgment(**{**base, **kw})


def _synth(root: Path, cid: str, variant: str, k: int, ok: bool = True) -> None:
    folder = root / "images" / cid / variant
    if ok:
        anchor_png(folder / f"{k}.png", k)
    prov = SynthProvenance(
        candidate_id=cid, variant=variant, k=k, status="ok" if ok else "refused", message=None if ok else "nsfw",
        backend="text2img", model_id="tiny-sd", prompt=f"{variant} <b>prompt</b> {k}", seed=100 + k, width=64,
        height=48, steps=2, guidance=7.5, safety_checker="none", image_file=f"{k}.png" if ok else None,
        created="2026-11-22T00:00:00Z")
    (folder / f"{k}.json").write_text(prov.model_dump_json(), "utf-8")


def make_review_dir(root: Path) -> Path:
    """aokvqa-1000..1002 (spurious, undecided), aokvqa-2000 (hostile text), aokvqa-3000 (not spurious),
    aokvqa-4000 (judge failed), aokvqa-5000 (anchor outside DIR), an error with no judgment, and
    synthesized images for aokvqa-1000."""
    root.mkdir(parents=True, exist_ok=True)
    make_curation_dir(root, n=3)
    (root / "reviews.jsonl").unlink()
    anchor_png(root / "anchors/evil.png", 5)
    append_jsonl(root / "errors.jsonl", _error("aokvqa-2000", EVIL_Q, "anchors/evil.png"))
    append_jsonl(root / "judgments.jsonl", _judgment("aokvqa-2000", rationale=EVIL_R, positive="<i>pos</i>"))
    append_jsonl(root / "errors.jsonl", _error("aokvqa-3000"))
    append_jsonl(root / "judgments.jsonl", _judgment("aokvqa-3000", spurious=False, spurious_attributes=[]))
    append_jsonl(root / "errors.jsonl", _error("aokvqa-4000"))
    append_jsonl(root / "judgments.jsonl", _judgment("aokvqa-4000", spurious=None, error="timeout after 3 tries"))
    anchor_png(root.parent / "secret.png", 1)
    append_jsonl(root / "errors.jsonl", _error("aokvqa-5000", image="../secret.png"))
    append_jsonl(root / "judgments.jsonl", _judgment("aokvqa-5000"))
    append_jsonl(root / "errors.jsonl", _error("aokvqa-6000"))  # not judged yet: not listed
    for k in range(2):
        _synth(root, "aokvqa-1000", "spurious", k)
        _synth(root, "aokvqa-1000", "counter", k, ok=k == 0)
    return root


def _req(url: str, method: str = "GET", body=None, headers: dict | None = None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture()
def served(tmp_path):
    build = make_review_dir(tmp_path / "b")
    app = create_app(build, "alice", token="tok-123")
    with BackgroundServer(app) as srv:
        yield build, srv.url.rstrip("/")


def _post(base: str, cid: str, body, token: str = "tok-123", **headers):
    h = {"Content-Type": "application/json", "X-Review-Token": token, **headers}
    return _req(f"{base}/api/candidates/{cid}/decision", "POST", body, h)


def _reviews(build: Path) -> list[ReviewDecision]:
    return list(read_jsonl(build / "reviews.jsonl", ReviewDecision))


def test_list_and_detail(served):
    build, base = served
    status, headers, body = _req(f"{base}/api/candidates")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["content-security-policy"] == CSP and headers["x-content-type-options"] == "nosniff"
    data = json.loads(body)
    ids = [c["candidate_id"] for c in data["candidates"]]
    assert ids == ["aokvqa-1000", "aokvqa-1001", "aokvqa-1002", "aokvqa-2000", "aokvqa-5000"]
    assert (data["total"], data["decided"], data["reviewer"]) == (5, 0, "alice")
    every = json.loads(_req(f"{base}/api/candidates?show=all")[2])
    assert [c["candidate_id"] for c in every["candidates"]][-3:] == ["aokvqa-3000", "aokvqa-4000", "aokvqa-5000"]
    assert every["total"] == 7 and _req(f"{base}/api/candidates?show=bogus")[0] == 422

    d = json.loads(_req(f"{base}/api/candidates/aokvqa-1000")[2])
    assert d["error"]["question"] == "What is happening 0?" and d["error"]["raw"] == "(B) running"
    assert d["judgment"]["spurious_attributes"] == ["bags beside the man"] and d["review"] is None
    assert d["current"]["positive"] == "a man waiting at a curb with bags" and d["edited"] == []
    assert d["anchor_url"] == "/api/candidates/aokvqa-1000/anchor"
    images = {(i["variant"], i["k"]): i for i in d["images"]}
    assert set(images) == {("spurious", 0), ("spurious", 1), ("counter", 0), ("counter", 1)}
    assert images[("spurious", 1)]["seed"] == 101 and images[("spurious", 1)]["prompt"] == "spurious <b>prompt</b> 1"
    assert images[("counter", 1)]["url"] is None and images[("counter", 1)]["status"] == "refused"
    status, headers, png = _req(base + images[("spurious", 1)]["url"])
    assert status == 200 and headers["content-type"] == "image/png" and png.startswith(b"\x89PNG")
    status, headers, png = _req(f"{base}{d['anchor_url']}")
    assert status == 200 and png == (build / "anchors/aokvqa-1000.png").read_bytes()
    failed = json.loads(_req(f"{base}/api/candidates/aokvqa-4000")[2])
    assert failed["judgment"]["spurious"] is None and failed["judgment"]["error"] == "timeout after 3 tries"


def test_decision_is_durable_and_last_one_wins(served):
    build, base = served
    status, _, body = _post(base, "aokvqa-1001", {"decision": "accept"})
    assert status == 200
    [rec] = _reviews(build)  # on disk before the response came back
    assert (rec.candidate_id, rec.decision, rec.reviewer) == ("aokvqa-1001", "accept", "alice")
    assert rec.edits.model_dump(exclude_none=True) == {} and re.match(r"\d{4}-\d\d-\d\dT.*\+00:00$", rec.timestamp)
    assert json.loads(body)["decided"] == 1

    # the person sends every field back; only what differs from the judgment is stored as an edit
    d = json.loads(_req(f"{base}/api/candidates/aokvqa-1000")[2])
    values = {**d["current"], "negative": "  a man at an empty curb ", "core_attributes": ["the person", " ", "a curb"]}
    values.pop("mask_box")
    status, _, body = _post(base, "aokvqa-1000", {"decision": "reject", **values})
    assert status == 200
    assert _reviews(build)[-1].edits.model_dump(exclude_none=True) == {
        "negative": "a man at an empty curb", "core_attributes": ["the person", "a curb"]}
    status, _, body = _post(base, "aokvqa-1000", {"decision": "accept", **values, "negative": d["current"]["negative"]})
    out = json.loads(body)
    assert out["saved"]["decision"] == "accept" and out["candidate"]["edited"] == ["core_attributes"]
    assert (out["decided"], out["counts"]) == (2, {"accept": 2, "reject": 0, "skip": 0})

    # untouched but for white space: no edit
    status, _, body = _post(base, "aokvqa-1002", {"decision": "skip", "positive": " a woman  holding a tennis racket "
                                                  "in a park\n", "spurious_attributes": ["a tennis racket", ""]})
    assert status == 200 and json.loads(body)["candidate"]["edited"] == []
    lines = (build / "reviews.jsonl").read_text().splitlines()[:3]
    assert len(lines) == 3 and all(json.loads(x)["reviewer"] == "alice" for x in lines)
    d = json.loads(_req(f"{base}/api/candidates/aokvqa-1000")[2])  # a reload shows the last decision
    assert d["review"]["decision"] == "accept" and d["current"]["core_attributes"] == ["the person", "a curb"]
    assert d["current"]["negative"] == "a man waiting at a curb"
    listed = {c["candidate_id"]: c["decision"] for c in json.loads(_req(f"{base}/api/candidates")[2])["candidates"]}
    assert listed["aokvqa-1000"] == "accept" and listed["aokvqa-1001"] == "accept" and listed["aokvqa-1002"] == "skip"


def test_unknown_candidate_and_bad_bodies(served):
    build, base = served
    assert _post(base, "aokvqa-9999", {"decision": "accept"})[0] == 404
    assert _post(base, "aokvqa-6000", {"decision": "accept"})[0] == 404  # an error without a judgment
    assert _post(base, "Not_An_Id", {"decision": "accept"})[0] == 404
    assert _req(f"{base}/api/candidates/aokvqa-9999")[0] == 404
    for bad in ({"decision": "maybe"}, {}, {"decision": "accept", "extra": 1}, {"decision": "accept", "positive": 3},
                {"decision": "accept", "spurious_attributes": ["a", "b", "c"]}, ["accept"]):
        assert _post(base, "aokvqa-1000", bad)[0] == 422, bad
    h = {"Content-Type": "application/json", "X-Review-Token": "tok-123"}
    assert _req(f"{base}/api/candidates/aokvqa-1000/decision", "POST", raw=b"{not json", headers=h)[0] == 422
    assert not (build / "reviews.jsonl").exists()


def test_traversal_refused(served):
    build, base = served
    (build / "anchors" / "evil.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>")
    os.symlink(build.parent / "secret.png", build / "images" / "aokvqa-1000" / "counter" / "7.png")
    for path in ("/api/candidates/aokvqa-5000/anchor",  # errors.jsonl points outside DIR
                 "/api/candidates/aokvqa-1000/images/counter/7",  # a symlink out of DIR
                 "/api/candidates/aokvqa-1000/images/counter/1",  # refused: no PNG
                 "/api/candidates/..%2F..%2Fsecret/anchor", "/api/candidates/%2E%2E/anchor",
                 "/api/candidates/aokvqa-1000/images/..%2F..%2F..%2Fsecret/0",
                 "/api/candidates/aokvqa-1000/images/spurious/..%2F0", "/static/..%2Freview_app.py",
                 "/static/index.html", "/../secret.png", "/api/candidates/aokvqa-3000/anchor"):
        status, _, body = _req(base + path)
        assert status in (404, 422), (path, status)
        assert not body.startswith(b"\x89PNG"), path
    assert _req(f"{base}/static/review.js")[0] == 200


def test_cross_origin_and_tokenless_posts_refused(served):
    build, base = served
    host = base.split("//")[1]
    assert _post(base, "aokvqa-1000", {"decision": "accept"}, Origin="http://evil.example")[0] == 403
    assert _post(base, "aokvqa-1000", {"decision": "accept"}, Origin="null")[0] == 403
    assert _post(base, "aokvqa-1000", {"decision": "accept"}, **{"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert _post(base, "aokvqa-1000", {"decision": "accept"}, token="")[0] == 403
    assert _post(base, "aokvqa-1000", {"decision": "accept"}, token="wrong")[0] == 403
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Review-Token": "tok-123"}
    assert _req(f"{base}/api/candidates/aokvqa-1000/decision", "POST", raw=b"decision=accept", headers=form)[0] == 415
    # DNS rebinding: a foreign Host name is refused, on GETs too
    assert _req(f"{base}/api/candidates", headers={"Host": "evil.example"})[0] == 400
    assert not (build / "reviews.jsonl").exists()
    assert _post(base, "aokvqa-1000", {"decision": "skip"}, Origin=f"http://{host}")[0] == 200


def test_hostile_text_is_data(served):
    build, base = served
    status, headers, page = _req(base + "/")
    assert status == 200 and headers["content-security-policy"] == CSP
    assert headers["content-type"].startswith("text/html")
    html = page.decode()
    assert "<script" not in html.replace('<script src="/static/review.js" defer></script>', "")
    assert 'content="tok-123"' in html and "__pwned" not in html  # the page carries no candidate text
    js = _req(f"{base}/static/review.js")[2].decode()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    status, headers, body = _req(f"{base}/api/candidates/aokvqa-2000")
    assert headers["content-type"] == "application/json"  # never HTML: served as data, escaped by JSON
    d = json.loads(body)
    assert d["error"]["question"] == EVIL_Q and d["judgment"]["rationale"] == EVIL_R


def test_cli_serves_on_a_free_port_and_auto_accept_still_works(tmp_path):
    build = make_review_dir(tmp_path / "b")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spuriverse", "curate", "review", str(build), "--port", "0",
                             "--reviewer", "bob"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
        assert m and m.group(2) != "0", line
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                status, _, page = _req(m.group(1))
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert status == 200
        token = re.search(r'name="review-token" content="([^"]+)"', page.decode()).group(1)
        assert _post(m.group(1).rstrip("/"), "aokvqa-1002", {"decision": "reject"}, token=token)[0] == 200
        assert _reviews(build)[-1].reviewer == "bob"
    finally:
        proc.terminate()
        proc.wait(10)
    assert "warning" not in proc.stderr.read().lower()
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.org"]))
    from spuriverse.cli import main

    assert main(["curate", "review", str(tmp_path / "nothing-here"), "--port", "0"]) == 2

    assert main(["curate", "review", str(build), "--auto-accept"]) == 0
    assert {r.candidate_id for r in _reviews(build) if r.reviewer == "auto-accept"} == {
        "aokvqa-1000", "aokvqa-1001", "aokvqa-2000", "aokvqa-5000"}
