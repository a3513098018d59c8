"""Column mapping: source benchmark rows (any column names, list or column options, letter / index /
text answers, image cells / bytes / paths) -> control items; CSV, JSONL, parquet sources."""

from __future__ import annotations

import json

import pytest

from helpers.bench_data import png_bytes
from spuriverse.data import BenchmarkError, load_benchmark, mapped_item
from spuriverse.data.mapping import parse_map_overrides
from spuriverse.schema import ColumnMapping

DEFAULT = ColumnMapping()


def _row(**kw):
    return {"question_id": "q1", "question": "What is it?", "options": ["cat", "dog", "bus"], "answer": "B", **kw}


def test_list_options_letter_answer_and_item_fields():
    item = mapped_item(0, _row(category="animals"), DEFAULT, "toy")
    assert item.item_id == item.group_id == item.source_id == "q1"
    assert item.variant == "control" and item.source_benchmark == "toy" and item.category == "animals"
    assert item.options == ["cat", "dog", "bus"] and item.answer == "B"


def test_option_columns_drop_trailing_blanks():
    m = ColumnMapping(options=None, option_columns=["choice_a", "choice_b", "choice_c", "choice_d"])
    row = {"question_id": 7, "question": "Q?", "choice_a": "x", "choice_b": "y", "choice_c": "", "choice_d": None,
           "answer": "b"}
    item = mapped_item(3, row, m, "s")
    assert item.item_id == "7" and item.options == ["x", "y"] and item.answer == "B"
    # the options column is optional: absent from the row -> the option columns are used
    row2 = {"question_id": "a", "question": "Q?", "A": "x", "B": "y", "answer": "A"}
    assert mapped_item(0, row2, DEFAULT, "s").options == ["x", "y"]


@pytest.mark.parametrize("fmt, answer, expected", [
    ("letter", "C", "C"), ("letter", "(b)", "B"),
    ("index", 0, "A"), ("index", "2", "C"), ("index", 1.0, "B"),
    ("text", "dog", "B"), ("text", " bus ", "C"),
    ("auto", "A", "A"), ("auto", 2, "C"), ("auto", "dog", "B"),
])
def test_answer_formats(fmt, answer, expected):
    m = ColumnMapping(answer_format=fmt)
    assert mapped_item(0, _row(answer=answer), m, "s").answer == expected


@pytest.mark.parametrize("mapping, row, expected", [
    (DEFAULT, _row(options=["x", "", "z"]), "row 4 (question_id='q1'): field 'options': option B is blank"),
    (ColumnMapping(options=None), {"question_id": "q1", "question": "Q", "A": "x", "B": "", "C": "z", "answer": "A"},
     "option B is blank but a later option is not"),
    (DEFAULT, _row(options=["only"]), "1 option(s), need 2 to 6"),
    (DEFAULT, _row(options="not a list"), "field 'options' must be a list"),
    (ColumnMapping(options=None, option_columns=["a", "b"]), _row(options=None), "none of the column(s) 'a', 'b'"),
    (ColumnMapping(answer_format="letter"), _row(answer="D"), "field 'answer' (answer, letter): 'D' is not one of A, B, C"),
    (ColumnMapping(answer_format="index"), _row(answer=3), "is not a 0-based index below 3"),
    (ColumnMapping(answer_format="text"), _row(answer="cow"), "is not the text of exactly one option"),
    (DEFAULT, _row(answer="cow"), "(answer, auto): 'cow' is not a letter A-C"),
    (DEFAULT, _row(options=["1", "2", "3"], answer="2"), "is both index 2 (C) and the text of option B"),
    (DEFAULT, _row(answer=""), "field 'answer' (answer) is empty"),
    (DEFAULT, {"question": "Q", "options": ["a", "b"], "answer": "A"}, "row 4: missing field 'question_id'"),
    (DEFAULT, _row(question="  "), "field 'question' (question) is empty"),
    (ColumnMapping(answer="label"), _row(), "missing field 'label' (answer)"),
])
def test_malformed_rows_name_row_and_field(mapping, row, expected):
    with pytest.raises(BenchmarkError) as exc:
        mapped_item(4, row, mapping, "s")
    assert expected in str(exc.value)


def test_auto_ambiguity_resolved_by_explicit_format():
    row = _row(options=["1", "2", "3"], answer="2")
    assert mapped_item(0, row, ColumnMapping(answer_format="index"), "s").answer == "C"
    assert mapped_item(0, row, ColumnMapping(answer_format="text"), "s").answer == "B"


def test_parse_map_overrides():
    m = parse_map_overrides(["question=q,answer=label", "option_columns=a|b|c,options=none,answer_format=index"])
    assert (m.question, m.answer, m.options, m.option_columns, m.answer_format) == ("q", "label", None,
                                                                                     ["a", "b", "c"], "index")
    with pytest.raises(ValueError, match=r"unknown key 'questoin' \(valid keys: question_id, question, options"):
        parse_map_overrides("questoin=q")
    with pytest.raises(ValueError, match="is not key=column"):
        parse_map_overrides("question")
    with pytest.raises(ValueError, match="answer_format"):
        parse_map_overrides("answer_format=roman")


# -- whole sources -----------------------------------------------------------------------------


def _images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:03d}.png").write_bytes(png_bytes(i))


def test_csv_source_with_image_paths_and_string_ids(tmp_path):
    _images(tmp_path / "imgs", 3)
    (tmp_path / "q.csv").write_text(
        "qid,q,c1,c2,c3,label,path\n"
        "007,Which?,red,blue,,1,imgs/000.png\n"
        "008,Which one?,1,2,3,0,imgs/001.png\n"
        "009,What?,x,y,z,2,missing.png\n"
    )
    m = parse_map_overrides("question_id=qid,question=q,options=none,option_columns=c1|c2|c3,answer=label,"
                            "answer_format=index,image=path,category=none")
    bench = load_benchmark(str(tmp_path / "q.csv"), mapping=m, source_name="toy")
    items = list(bench.iter_items())
    assert [li.item.item_id for li in items] == ["007", "008", "009"]  # leading zeros kept
    assert items[0].item.options == ["red", "blue"] and items[0].item.answer == "B"
    assert items[1].item.options == ["1", "2", "3"] and items[1].item.answer == "A"
    assert items[0].image is not None and items[0].image.data == png_bytes(0)
    assert items[2].image is None and "missing" in items[2].image_error
    assert bench.info().counts == {"control": 3}


def test_jsonl_source_with_image_root(tmp_path):
    _images(tmp_path / "pics", 2)
    rows = [{"question_id": f"a{i}", "question": f"Q{i}?", "options": ["x", "y"], "answer": "y", "image": f"{i:03d}.png",
             "category": "cat"} for i in range(2)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = ColumnMapping(image_root=str(tmp_path / "pics"))
    bench = load_benchmark(str(tmp_path / "data" / "q.jsonl"), mapping=m, source_name="j")
    items = list(bench.iter_items())
    assert [li.image.data for li in items] == [png_bytes(0), png_bytes(1)]
    assert {li.item.answer for li in items} == {"B"} and items[0].item.category == "cat"
    # without image_root, relative paths resolve beside the file: not there
    assert all(li.image is None for li in load_benchmark(str(tmp_path / "data" / "q.jsonl"), mapping=ColumnMapping(),
                                                         source_name="j").iter_items())


def test_parquet_image_cells_and_fingerprint_depends_on_name(tmp_path):
    from datasets import Dataset, Features, Image, List, Value

    feats = Features({"id": Value("int64"), "text": Value("string"), "choices": List(Value("string")),
                      "idx": Value("int64"), "img": Image()})
    Dataset.from_list([{"id": i, "text": f"Q{i}", "choices": ["a", "b", "c"], "idx": i % 3,
                        "img": {"bytes": png_bytes(i), "path": None}} for i in range(4)],
                      features=feats).to_parquet(str(tmp_path / "s.parquet"))
    m = ColumnMapping(question_id="id", question="text", options="choices", answer="idx", answer_format="index",
                      image="img")
    a = load_benchmark(str(tmp_path / "s.parquet"), mapping=m, source_name="p")
    assert [li.item.answer for li in a.iter_items()] == ["A", "B", "C", "A"]
    assert [li.image.data for li in a.iter_items()] == [png_bytes(i) for i in range(4)]
    assert [it.item_id for it in a.items()] == ["0", "1", "2", "3"]
    b = load_benchmark(str(tmp_path / "s.parquet"), mapping=m, source_name="other")
    assert a.fingerprint != b.fingerprint


def test_source_level_errors(tmp_path):
    (tmp_path / "q.jsonl").write_text(json.dumps(_row(image="x.png")) + "\n" + json.dumps(_row(image="y.png")) + "\n")
    with pytest.raises(BenchmarkError, match="duplicate item_id 'q1'"):
        load_benchmark(str(tmp_path / "q.jsonl"), mapping=DEFAULT, source_name="s")
    with pytest.raises(BenchmarkError, match="no image column 'picture'"):
        load_benchmark(str(tmp_path / "q.jsonl"), mapping=ColumnMapping(image="picture"), source_name="s")
