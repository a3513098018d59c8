"""The review web app served for tests: a curation folder with errors, judgments and images, uvicorn on a
free loopback port in a thread, and urllib request helpers (shared by the review app's test files)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.curate_data import anchor_png, make_curation_dir
from spuriverse.data.curation import read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.curate.review_app import BackgroundServer, create_app
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
