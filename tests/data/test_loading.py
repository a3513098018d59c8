"""Benchmark loading: layouts, validation messages, fingerprints, corrupt images, sources."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from helpers.bench_data import long_rows, png_bytes, write_long_dataset, write_wide_dataset
from spuriverse.data import BenchmarkError, load_benchmark


def test_long_layout_loads_with_counts_and_images(small_benchmark):
    bench = load_benchmark(str(small_benchmark))
    info = bench.info()
    assert info.layout == "long"
    assert info.n_items == 36 and info.n_groups == 6
    assert info.counts == {"anchor": 6, "spurious": 18, "counter": 6, "control": 6}
    items = list(bench.iter_items())
    assert [li.index for li in items] == list(range(36))
    assert all(li.image is not None and li.image.mime == "image/png" for li in items)
    assert items[0].image.pil().size == (40, 30)
    # option counts are the items' own (2..4), never padded
    assert {len(li.item.options) for li in items} == {2, 3, 4}


def test_same_data_through_every_source_kind_has_one_fingerprint(small_benchmark):
    a = load_benchmark(str(small_benchmark))
    b = load_benchmark(str(small_benchmark / "data" / "test-00000.parquet"))
    c = load_benchmark(str(small_benchmark / "data" / "*.parquet"))
    assert a.fingerprint == b.fingerprint == c.fingerprint
    assert a.fingerprint.startswith("sha256:")


def test_fingerprint_is_order_independent_and_content_sensitive(tmp_path):
    rows = long_rows(n_groups=3, n_controls=2)
    base = load_benchmark(str(write_long_dataset(tmp_path / "a", rows))).fingerprint
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert load_benchmark(str(write_long_dataset(tmp_path / "b", shuffled))).fingerprint == base
    changed_answer = [dict(r) for r in rows]
    changed_answer[0]["answer"] = "B" if rows[0]["answer"] == "A" else "A"
    assert load_benchmark(str(write_long_dataset(tmp_path / "c", changed_answer))).fingerprint != base
    changed_image = [dict(r) for r in rows]
    changed_image[3]["image"] = png_bytes(999)
    assert load_benchmark(str(write_long_dataset(tmp_path / "d", changed_image))).fingerprint != base


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r.update(answer="E"), "row 2 (item_id='g000/spurious_2'): field 'answer'"),
        (lambda r: r.update(variant="bogus"), "field 'variant'"),
        (lambda r: r.update(options=["only one"]), "field 'options'"),
        (lambda r: r.update(options=["x", " "]), "option B is empty"),
        (lambda r: r.update(question=""), "field 'question'"),
        (lambda r: r.update(item_id="g000/anchor_0"), "duplicate item_id 'g000/anchor_0'"),
    ],
)
def test_bad_rows_name_the_row_and_field(tmp_path, mutate, expected):
    rows = long_rows(n_groups=2, n_controls=1)
    mutate(rows[2])
    with pytest.raises(BenchmarkError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_benchmark(str(write_long_dataset(tmp_path / "bad", rows)))


def test_corrupt_and_missing_images_become_error_records(tmp_path):
    rows = long_rows(n_groups=2, n_controls=1)
    good = rows[1]["image"]
    rows[1]["image"] = good[: len(good) // 2]  # truncated PNG
    rows[2]["image"] = b"this is not an image"
    bench = load_benchmark(str(write_long_dataset(tmp_path / "corrupt", rows)))
    items = list(bench.iter_items())
    assert len(items) == len(rows)
    assert items[0].image is not None and items[0].image_error is None
    assert items[1].image is None and "cannot decode image" in items[1].image_error
    assert items[2].image is None and "cannot decode image" in items[2].image_error


def test_jpeg_keeps_its_mime_type(tmp_path):
    rows = long_rows(n_groups=1, n_controls=0)
    rows[0]["image"] = png_bytes(3, fmt="JPEG")
    li = next(load_benchmark(str(write_long_dataset(tmp_path / "jpg", rows))).iter_items())
    assert li.image.mime == "image/jpeg"


def test_want_skips_items_without_decoding_them(small_benchmark):
    bench = load_benchmark(str(small_benchmark))
    got = [li.index for li in bench.iter_items(lambda i, item: item.variant == "anchor")]
    assert got == [0, 5, 10, 15, 20, 25]


def _wide_rows(with_text: bool) -> list[dict]:
    rows = []
    for g, (bench, qid) in enumerate([("aokvqa", "299207"), ("seedbench", "101669"), ("naturalbench", "6")]):
        r = {"image_id": qid, "benchmark": bench, "image": png_bytes(g)}
        for k in range(1, 4 if g != 2 else 3):  # the last row has only 2 synthetic images
            r[f"spurious_group_{k}"] = png_bytes(100 * g + k)
        if with_text:
            r.update(question=f"Q{g}?", A="yes", B="no", C="" if g == 2 else "maybe", answer="B")
        rows.append(r)
    return rows


def test_wide_layout_with_text_in_rows(tmp_path):
    path = write_wide_dataset(tmp_path / "wide", _wide_rows(True), n_images=3)
    bench = load_benchmark(str(path))
    assert bench.layout == "wide"
    items = list(bench.items())
    assert len(items) == 3 + (3 + 3 + 2)
    assert items[0].item_id == "aokvqa/299207/anchor" and items[0].variant == "anchor"
    assert items[1].item_id == "aokvqa/299207/spurious_1" and items[1].group_id == "aokvqa/299207"
    assert items[-1].options == ["yes", "no"]  # empty option cell dropped: no "(C) nan"
    assert bench.info().counts == {"anchor": 3, "spurious": 8}
    loaded = list(bench.iter_items())
    assert loaded[1].image.data == _wide_rows(True)[0]["spurious_group_1"]


def test_wide_layout_joined_from_side_tables(tmp_path):
    path = write_wide_dataset(tmp_path / "wide", _wide_rows(False), n_images=3)
    # The reference's meta CSV shape: A-OKVQA keys by COCO image id and one image has 2 questions.
    (tmp_path / "aok.csv").write_text(
        "index,question,answer,A,B,C,D\n"
        "299207,What is the man by the bags awaiting?,D,skateboarder,train,delivery,cab\n"
        "299207,What colour are the bags?,A,red,blue,green,black\n"
    )
    (tmp_path / "seed.csv").write_text("index,answer,question,A,B,C,D\n101669,A,How many towels?,One,Two,Three,Four\n")
    (tmp_path / "nb.csv").write_text("index,question,answer,A,B,C,D\n6,Is there tape?,B,Yes,No,,\n")
    sides = [f"seedbench={tmp_path / 'seed.csv'}", f"naturalbench={tmp_path / 'nb.csv'}", f"aokvqa={tmp_path / 'aok.csv'}"]
    with pytest.raises(BenchmarkError, match=r"matches 2 questions.*add a 'question'"):
        load_benchmark(str(path), side_tables=sides)
    rows = _wide_rows(False)
    rows[0]["question"] = "What is the man by the bags awaiting?"
    path2 = write_wide_dataset(tmp_path / "wide2", rows, n_images=3)
    items = list(load_benchmark(str(path2), side_tables=sides).items())
    assert items[0].options == ["skateboarder", "train", "delivery", "cab"] and items[0].answer == "D"
    assert items[4].question == "How many towels?" and items[4].answer == "A"
    assert items[-1].options == ["Yes", "No"]


def test_wide_layout_without_text_or_side_table_is_a_clear_error(tmp_path):
    path = write_wide_dataset(tmp_path / "wide", _wide_rows(False), n_images=3)
    with pytest.raises(BenchmarkError, match=r"row 0 \(aokvqa/299207\): no question/options/answer.*side table"):
        load_benchmark(str(path))


def test_unreachable_hub_fails_fast_with_a_hint():
    with pytest.raises(BenchmarkError, match="local dataset folder"):
        load_benchmark("no-such-owner/no-such-dataset")


def test_missing_local_path_is_named():
    with pytest.raises(BenchmarkError, match="no such file or folder"):
        load_benchmark("./does/not/exist.parquet")


def test_image_paths_relative_to_the_dataset_folder(tmp_path):
    """Rows may reference image files instead of embedding bytes."""
    import json

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "imgs" / "a.png")
    row = {"item_id": "x", "group_id": "g", "variant": "anchor", "question": "q?", "options": ["a", "b"],
           "answer": "A", "image": "imgs/a.png"}
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n")
    li = next(load_benchmark(str(tmp_path / "data.jsonl")).iter_items())
    assert li.image is not None and li.image.pil().getpixel((0, 0)) == (1, 2, 3)
    buf = io.BytesIO()
    li.image.pil().save(buf, format="PNG")


def test_encoded_only_mode_keeps_no_pixels_but_still_validates(tmp_path):
    rows = long_rows(n_groups=1, n_controls=0)
    rows[1]["image"] = rows[1]["image"][:30]
    bench = load_benchmark(str(write_long_dataset(tmp_path / "d", rows)))
    items = list(bench.iter_items(keep_pixels=False))
    assert items[0].image._pil is None and items[0].image.pil().size == (40, 30)  # decoded on demand
    assert items[1].image is None and "cannot decode" in items[1].image_error


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({}, r"not a dataset folder \(the folder is empty\)"),
        ({"notes.txt": b"hi", "a.png": b"x"}, r"not a dataset folder \(found 2 file\(s\): 1 \.png, 1 \.txt"),
        ({".cache/x.parquet": b"PAR1", "sub/readme.md": b"# hi"}, r"not a dataset folder \(found 1 file\(s\): 1 \.md"),
    ],
    ids=["empty", "text-and-images", "hidden-data-only"],
)
def test_a_folder_that_is_not_a_dataset_says_what_it_found(tmp_path, files, needle):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with pytest.raises(BenchmarkError, match=needle) as err:
        load_benchmark(str(tmp_path))
    assert "A dataset folder holds a README.md card" in str(err.value)


def test_wrong_dataset_folder_is_one_clear_cli_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("hi")
    p = subprocess.run([sys.executable, "-m", "spuriverse", "eval", "--model", "random", "--dataset", str(tmp_path),
                        "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "not a dataset folder (found 1 file(s): 1 .txt" in p.stderr
    assert not (tmp_path / "out" / "samples.jsonl").exists()
