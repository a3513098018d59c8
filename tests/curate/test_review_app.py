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

from helpers.review_server import EVIL_Q, EVIL_R, _post, _req, _reviews, make_review_dir
from spuriverse.curate.review_app import CSP, is_loopback


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
