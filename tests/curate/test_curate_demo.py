"""`make curate-demo`: the whole curation chain offline, exactly as the Makefile runs it, then again (resume)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spuriverse.data.curation import REVIEWS, latest
from spuriverse.schema import ReviewDecision, SourceSpec, Verification

REPO = Path(__file__).resolve().parents[2]
STAGE_FILES = ("errors.jsonl", "judgments.jsonl", "reviews.jsonl", "verification.jsonl", "source.json")


def _make(out: Path) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed (the README's set-up needs it)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(["make", "-s", "-C", str(REPO), "curate-demo", f"CURATE_DEMO={out}",
                           f"VENV={sys.prefix}"], capture_output=True, text=True, env=env, timeout=900)


def test_make_curate_demo_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "demo"
    first = _make(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in ("1. mine", "2. judge", "3. review", "4. synthesize", "5. verify", "6. publish", "eval on"):
        assert f"== {stage}" in first.stdout
    build = out / "curation"
    SourceSpec.model_validate_json((build / "source.json").read_text())
    errors = (build / "errors.jsonl").read_text().splitlines()
    assert errors, "the random-weight model should get some questions wrong"
    judged = (build / "judgments.jsonl").read_text().splitlines()
    assert len(judged) == len(errors)
    accepted = [r for r in latest(build / REVIEWS, ReviewDecision).values() if r.decision == "accept"]
    assert accepted
    assert len(list((build / "images").glob("*/spurious/*.png"))) == 2 * len(accepted)
    verdicts = [Verification.model_validate_json(line) for line in (build / "verification.jsonl").read_text().splitlines()]
    assert {v.candidate_id for v in verdicts} == {r.candidate_id for r in accepted}
    kept = [v for v in verdicts if v.kept]
    assert kept, "threshold 0 with policy any should keep at least one candidate"

    # The published folder loads with datasets and was evaluated by spuriverse eval.
    import datasets

    ds = datasets.load_dataset(str(out / "dataset"), split="test")
    assert isinstance(ds.features["image"], datasets.Image)
    variants = set(ds["variant"])
    assert {"anchor", "spurious", "counter", "control"} <= variants
    assert len(set(ds["group_id"]) - {g for g, v in zip(ds["group_id"], ds["variant"]) if v == "control"}) == len(kept)
    result = json.loads((out / "eval" / "results.json").read_text())
    assert result["benchmark"]["counts"]["anchor"] == len(kept)
    n_samples = len((out / "eval" / "samples.jsonl").read_text().splitlines())
    assert n_samples == len(ds)

    # Re-running resumes every stage: nothing changes.
    before = {name: (build / name).read_bytes() for name in STAGE_FILES}
    images = sorted(p.relative_to(build) for p in (build / "images").rglob("*"))
    second = _make(out)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert {name: (build / name).read_bytes() for name in STAGE_FILES} == before
    assert sorted(p.relative_to(build) for p in (build / "images").rglob("*")) == images
