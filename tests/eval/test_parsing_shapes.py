"""The answer shapes today's models give, as a regression table (`tests/data/answer_shapes.csv`).

Each row: a shape, the options (JSON), a real-style answer, the expected letter (empty = none) and
parse status. Parser 1.1 reads yes/no answers that begin with an option's text, reasoning traces,
and LaTeX ``\\boxed{}``; parser 1.0 stays reachable so a run scored with it still verifies.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from spuriverse.eval.parsing import PARSER_FEATURES, PARSER_VERSION, UnknownParserVersion, parse_answer

from helpers.parsing_cases import CASES

TABLE = Path(__file__).resolve().parents[1] / "data" / "answer_shapes.csv"


def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["shape"])
def test_answer_shapes(row: dict[str, str]) -> None:
    got = parse_answer(row["answer"], json.loads(row["options"]))
    assert (got.letter or "", got.status) == (row["letter"], row["status"]), got


def test_table_covers_the_new_shapes() -> None:
    shapes = {r["shape"].split()[0] for r in _rows()}
    assert {"yes/no", "reasoning", "latex", "markdown", "bare"} <= shapes
    assert len(_rows()) >= 30


@pytest.mark.parametrize("version", sorted(PARSER_FEATURES))
@pytest.mark.parametrize(("text", "options", "letter", "status"), CASES)
def test_old_cases_hold_in_every_version(version: str, text: str | None, options: list[str],
                                         letter: str | None, status: str) -> None:
    got = parse_answer(text, options, version=version)
    assert (got.letter, got.status) == (letter, status), got


def test_version_1_0_keeps_its_rules() -> None:
    # what 1.0 read differently: a trace's letters counted, leading option text did not
    assert parse_answer("<think>I lean to (A)", ["x", "y"], version="1.0").letter == "A"
    assert parse_answer("<think>I lean to (A)", ["x", "y"]).rule == "unterminated_trace"
    assert parse_answer("No, the bench is not red.", ["Yes", "No"], version="1.0").letter is None
    assert PARSER_VERSION == max(PARSER_FEATURES, key=lambda v: tuple(map(int, v.split("."))))


def test_unknown_version_is_refused() -> None:
    with pytest.raises(UnknownParserVersion, match="'0.9'.*known: 1.0, 1.1"):
        parse_answer("A", ["x", "y"], version="0.9")


REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "spuriverse-reference-meta"


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference GPT-4o answers not found at {REFERENCE}")
def test_reference_answers_read_the_same_in_1_0_and_1_1() -> None:
    """No real GPT-4o answer changes letter or status between parser 1.0 and 1.1 (38,888 rows)."""
    pd = pytest.importorskip("pandas")
    changed, total = [], 0
    for name, cols in (("aokvqa_train_meta.csv", "ABCD"), ("seedbench_meta.csv", "ABCD"),
                       ("naturalbench_meta.csv", "AB")):
        for row in pd.read_csv(REFERENCE / name, keep_default_na=False, dtype=str).to_dict("records"):
            options = [row[c] or "" for c in cols]
            old = parse_answer(row["prediction"], options, version="1.0")
            new = parse_answer(row["prediction"], options)
            total += 1
            if (old.letter, old.status) != (new.letter, new.status):
                changed.append((name, row["prediction"], old, new))
    assert total == 38888
    assert not changed, changed[:5]
