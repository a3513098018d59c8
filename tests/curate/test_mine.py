"""Tests for `spuriverse curate` stage 1 (mine from precomputed predictions) and the verdict ingest.

Full-data findings (reference CSVs in ``../shared/data/spuriverse-reference-meta``, skipped when
absent), parser 1.0:

- Reference mode (``use_reference_parsed=True``, the reference's own error rule: ``parsed``
  non-empty and != answer) reproduces its errors exactly: A-OKVQA 2,263 · SEED-Bench 3,568 ·
  NaturalBench 1,425, and the verdict ingest its spurious judgments: 767 · 329 · 260 (every error
  has a verdict; no verdict sits on a non-error).
- Our-parser mode: 2,276 · 3,576 · 1,425. The differences are exactly the unanswered rows ("I
  don't know", "None of the options", ...): 13 A-OKVQA and 8 SEED-Bench rows that both parsers
  leave empty. We count an unparsed answer as an error (the model did not give the right answer);
  the reference's ``isError`` left them out. Letters disagree on only 3 rows (NaturalBench 2721,
  3506, 7123: GPT-4o answered "(C) nan" to a 2-option item; the reference records C, we record
  unparsed) -- both sides count those as errors, so NaturalBench's count is the same.
- All 17,056 A-OKVQA rows are kept as distinct candidates: 516 images carry two questions, and 5
  of them the *same* question twice with different options, hence the question id hashes the
  question with its options.
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pytest

from spuriverse.data.curation import read_jsonl
from spuriverse.curate.mine import ERRORS, EMPTY_OPTION, SUMMARY, MineSummary, candidate_id, mine_predictions
from spuriverse.curate.verdicts import JUDGMENTS, ingest_verdicts
from spuriverse.schema import ErrorRecord, Judgment

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "data" / "spuriverse-reference-meta"
FILES = {"aokvqa": "aokvqa_train_meta.csv", "seedbench": "seedbench_meta.csv",
         "naturalbench": "naturalbench_meta.csv"}

ROWS = {"aokvqa": 17056, "seedbench": 14232, "naturalbench": 7600}
REF_ERRORS = {"aokvqa": 2263, "seedbench": 3568, "naturalbench": 1425}
REF_SPURIOUS = {"aokvqa": 767, "seedbench": 329, "naturalbench": 260}
UNANSWERED = {"aokvqa": 13, "seedbench": 8, "naturalbench": 0}  # empty `parsed`, unparsed by us too
OUR_ERRORS = {k: REF_ERRORS[k] + UNANSWERED[k] for k in REF_ERRORS}  # 2276 / 3576 / 1425
OUR_UNPARSED = {"aokvqa": 13, "seedbench": 8, "naturalbench": 3}  # NaturalBench: the 3 "(C) nan"
EMPTY_OPTION_ROWS = {"aokvqa": 6, "seedbench": 230, "naturalbench": 8}

needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(),
    reason=f"reference GPT-4o answers not found at {REFERENCE} (shared data not in this checkout)",
)


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> dict[tuple[str, bool], tuple[Path, MineSummary, dict]]:
    out = {}
    for bench, name in FILES.items():
        for ref in (True, False):
            d = tmp_path_factory.mktemp(f"{bench}-{'ref' if ref else 'ours'}")
            summary = mine_predictions(REFERENCE / name, bench, d, use_reference_parsed=ref)
            verdicts = ingest_verdicts(REFERENCE / name, bench, d)
            out[bench, ref] = (d, summary, verdicts)
    return out


@needs_reference
@pytest.mark.parametrize("bench", FILES)
def test_reference_mode_reproduces_reference(mined, bench: str) -> None:
    d, s, v = mined[bench, True]
    assert s.rows == ROWS[bench] and s.invalid_rows == 0
    assert s.errors == s.appended == REF_ERRORS[bench]
    assert s.rows_with_empty_options == EMPTY_OPTION_ROWS[bench]
    assert s.unparsed == OUR_UNPARSED[bench] and s.unparsed_errors == 0
    assert sum(s.errors_per_category.values()) == s.errors
    records = list(read_jsonl(d / ERRORS, ErrorRecord))
    assert len(records) == len({r.candidate_id for r in records}) == REF_ERRORS[bench]
    assert all(r.prediction != r.answer and r.source == bench for r in records)
    assert json.loads((d / SUMMARY).read_text())["errors"] == REF_ERRORS[bench]
    assert MineSummary.from_json((d / SUMMARY).read_text()) == s
    assert v["judged"] == REF_ERRORS[bench] and v["spurious"] == REF_SPURIOUS[bench]
    assert v["skipped_not_error"] == v["errors_without_verdict"] == 0
    judgments = list(read_jsonl(d / JUDGMENTS, Judgment))
    assert sum(j.spurious for j in judgments) == REF_SPURIOUS[bench]
    assert all(j.prompt_hash == "reference" and j.judge == "reference:gpt-4o" for j in judgments)


@needs_reference
@pytest.mark.parametrize("bench", FILES)
def test_our_parser_mode_and_agreement(mined, bench: str) -> None:
    d, s, v = mined[bench, False]
    assert s.errors == OUR_ERRORS[bench]
    assert s.unparsed == s.unparsed_errors == OUR_UNPARSED[bench]
    a = s.agreement
    assert a is not None and a == mined[bench, True][1].agreement  # computed whichever mode
    assert a.letter_disagreements == (3 if bench == "naturalbench" else 0)
    assert (a.errors_ours, a.errors_reference) == (OUR_ERRORS[bench], REF_ERRORS[bench])
    assert (a.errors_only_ours, a.errors_only_reference) == (UNANSWERED[bench], 0)
    # The unanswered errors have no reference verdict; all the others keep theirs.
    assert v["judged"] == REF_ERRORS[bench] and v["spurious"] == REF_SPURIOUS[bench]
    assert v["errors_without_verdict"] == UNANSWERED[bench]
    # The only disagreeing rows: NaturalBench "(C) nan", recorded as unparsed.
    if bench == "naturalbench":
        nan = {r.question_id: r for r in read_jsonl(d / ERRORS, ErrorRecord) if r.prediction is None}
        assert set(nan) == {"2721", "3506", "7123"}
        assert all(r.raw == "(C) nan" and len(r.options) == 2 for r in nan.values())


@needs_reference
def test_aokvqa_keeps_every_question_of_shared_images(mined) -> None:
    from spuriverse.curate.mine import iter_rows, row_item
    from spuriverse.curate.presets import prediction_layout

    ids, images = set(), {}
    for layout, row in iter_rows(REFERENCE / FILES["aokvqa"], prediction_layout("aokvqa")):
        item = row_item(layout, row, "aokvqa")
        ids.add(item.candidate_id)
        images[row["index"]] = images.get(row["index"], 0) + 1
    assert len(ids) == 17056
    assert sum(n == 2 for n in images.values()) == 516
    # Errors on both questions of one image are both present.
    records = list(read_jsonl(mined["aokvqa", True][0] / ERRORS, ErrorRecord))
    by_image: dict[str, int] = {}
    for r in records:
        by_image[r.question_id.split("-")[0]] = by_image.get(r.question_id.split("-")[0], 0) + 1
    assert any(n == 2 for n in by_image.values())
    # Empty option cells keep their letter.
    empty = [r for r in records if EMPTY_OPTION in r.options]
    assert all(len(r.options) == 4 for r in empty)


# -- synthetic --------------------------------------------------------------------------------

HEADER = ["index", "question", "answer", "A", "B", "C", "D", "category", "prediction", "parsed",
          "spuriousAttr"]


def _write_csv(path: Path, n: int) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            answer = "ABCD"[i % 4]
            pred = "ABCD"[(i * 7) % 4] if i % 11 else "I don't know"
            d_text = "" if i % 13 == 0 else "NA"  # an empty cell; "NA" must stay a literal text
            verdict = ("Yes, the cue ..." if i % 3 == 0 else "No, ...") if pred != answer else ""
            w.writerow([str(1000 + i), f"What is object {i}?", answer, "None", "cat", "dog", d_text,
                        f"cat{i % 3}", f"({pred}) text" if len(pred) == 1 else pred,
                        pred if len(pred) == 1 else "", verdict])
    return path


def test_synthetic_rows_options_and_verdicts(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "s.csv", 200)
    s = mine_predictions(src, "seedbench", tmp_path / "b", source_name="Toy Bench")
    records = list(read_jsonl(tmp_path / "b" / ERRORS, ErrorRecord))
    assert s.errors == len(records) > 0
    r = records[0]
    assert r.candidate_id == candidate_id("Toy Bench", r.question_id) == f"toy-bench-{r.question_id}"
    assert r.options[0] == "None" and r.options[3] in ("NA", EMPTY_OPTION)
    assert r.image == f"sources/seedbench/{r.question_id}.jpg"
    assert s.rows_with_empty_options == len(range(0, 200, 13))
    assert s.unparsed == s.unparsed_errors == len([i for i in range(200) if i % 11 == 0])
    v = ingest_verdicts(src, "seedbench", tmp_path / "b", source_name="Toy Bench")
    # "I don't know" rows carry no verdict in this file: those errors stay unjudged.
    assert v["judged"] + v["errors_without_verdict"] == s.errors
    assert v["appended"] == v["judged"] and v["skipped_not_error"] == 0
    again = ingest_verdicts(src, "seedbench", tmp_path / "b", source_name="Toy Bench")
    assert again["appended"] == 0 and again["already_judged"] == v["judged"]
    assert len(list(read_jsonl(tmp_path / "b" / JUDGMENTS, Judgment))) == v["judged"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "s.csv", 300)
    mine_predictions(src, "seedbench", tmp_path / "full")
    full = (tmp_path / "full" / ERRORS).read_bytes()
    lines = full.splitlines(keepends=True)
    assert len(lines) > 20
    # A killed run: some complete lines and half of the next one.
    killed = tmp_path / "killed"
    killed.mkdir()
    partial = b"".join(lines[:10]) + lines[10][: len(lines[10]) // 2]
    (killed / ERRORS).write_bytes(partial)
    s = mine_predictions(src, "seedbench", killed)
    assert (killed / ERRORS).read_bytes() == full
    assert s.already_present == 10 and s.appended == len(lines) - 10
    # Running again changes nothing.
    s2 = mine_predictions(src, "seedbench", killed)
    assert (killed / ERRORS).read_bytes() == full
    assert s2.appended == 0 and s2.already_present == s2.errors == len(lines)


def test_generic_preset_options_list(tmp_path: Path) -> None:
    src = tmp_path / "g.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "question", "options", "answer", "prediction", "image"])
        w.writerow(["Q/1", "Which?", json.dumps(["x", "y", "z"]), "C", "(A) x", "imgs/1.png"])
        w.writerow(["Q/2", "Which?", json.dumps(["x", "y", ""]), "B", "The answer is (B)", ""])
        w.writerow(["Q/3", "Which?", json.dumps(["x"]), "A", "B", ""])  # 1 option: invalid
        w.writerow(["Q/4", "Which?", json.dumps(["x", "y"]), "B", "hmm", ""])
    s = mine_predictions(src, "generic", tmp_path / "b", source_name="mine")
    assert (s.rows, s.invalid_rows, s.errors, s.unparsed) == (4, 1, 2, 1)
    assert s.agreement is None  # no `parsed` column
    recs = {r.question_id: r for r in read_jsonl(tmp_path / "b" / ERRORS, ErrorRecord)}
    assert recs["Q/1"].candidate_id == "mine-q-1" and recs["Q/1"].prediction == "A"
    assert recs["Q/1"].image == "imgs/1.png" and recs["Q/4"].prediction is None
    with pytest.raises(ValueError, match="reference column"):
        mine_predictions(src, "generic", tmp_path / "c", use_reference_parsed=True)
    with pytest.raises(ValueError, match="unknown preset"):
        mine_predictions(src, "nope", tmp_path / "c")


def test_streaming_memory_is_flat(tmp_path: Path) -> None:
    """50k rows (~5 MB of CSV) with no errors: peak traced memory stays far below the file size
    (loading it whole, as dicts, would take tens of MB)."""
    src = tmp_path / "big.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(50_000):
            w.writerow([str(i), f"What is in picture number {i}, exactly?", "B", "a cat", "a dog",
                        "a bird", "a fish", "c", "(B) a dog", "B", ""])
    size = src.stat().st_size
    assert size > 4_000_000
    tracemalloc.start()
    try:
        s = mine_predictions(src, "seedbench", tmp_path / "b")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.rows == 50_000 and s.errors == 0
    assert peak < 2_000_000, peak
