"""samples.jsonl: crash repair, hostile lines, duplicates, canonical order."""

from __future__ import annotations

import pytest

from spuriverse.eval.samples import (
    SampleWriter,
    SamplesFileError,
    canonicalize_in_place,
    read_run_samples,
    read_samples,
    repair_tail,
    write_canonical,
)
from spuriverse.schema import Sample


def sample(index: int, item_id: str | None = None, rotation: int | None = None) -> Sample:
    return Sample(index=index, item_id=item_id or f"i{index}", rotation=rotation, group_id="g", variant="anchor",
                  n_options=2, answer="A", prediction="A", correct=True, parse_status="strict", scoring="generate",
                  prompt_hash="h")


def test_partial_last_line_is_repaired_and_complete_lines_kept(tmp_path):
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as w:
        w.write(sample(0))
        w.write(sample(1))
    with open(path, "a") as f:
        f.write('{"index": 2, "item_id": "i2", "gro')
    assert repair_tail(path) > 0
    assert [s.index for s in read_samples(path)] == [0, 1]
    assert repair_tail(path) == 0  # idempotent


def test_a_file_that_is_only_a_partial_line_becomes_empty(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"index": 0')
    assert [s for s in read_samples(path, repair=True)] == []
    assert path.read_bytes() == b""


def test_a_malformed_line_in_the_middle_is_an_error_not_a_silent_drop(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(sample(0).model_dump_json() + "\n{not json}\n" + sample(1).model_dump_json() + "\n")
    with pytest.raises(SamplesFileError, match=r"samples.jsonl:2: invalid sample"):
        list(read_samples(path, repair=True))


def test_a_line_violating_the_schema_names_the_field(tmp_path):
    bad = sample(0).model_dump()
    bad["prediction"], bad["correct"] = None, True  # "correct" without a prediction
    path = tmp_path / "samples.jsonl"
    path.write_text(Sample.model_construct(**bad).model_dump_json() + "\n")
    with pytest.raises(SamplesFileError, match="invalid sample"):
        list(read_samples(path))


def test_duplicates_across_shards_are_rejected(tmp_path):
    with SampleWriter(tmp_path / "samples.jsonl") as w:
        w.write(sample(0))
    with SampleWriter(tmp_path / "samples.rank1.jsonl") as w:
        w.write(sample(0))
    with pytest.raises(SamplesFileError, match="duplicate sample for item 'i0'"):
        read_run_samples(tmp_path)


def test_canonical_rewrite_orders_by_index_and_rotation_and_merges_shards(tmp_path):
    with SampleWriter(tmp_path / "samples.rank0.jsonl") as w:
        for s in (sample(2, rotation=1), sample(0, rotation=0)):
            w.write(s)
    with SampleWriter(tmp_path / "samples.rank1.jsonl") as w:
        for s in (sample(2, rotation=0), sample(1, rotation=0)):
            w.write(s)
    write_canonical(tmp_path, read_run_samples(tmp_path))
    got = [(s.index, s.rotation) for s in read_samples(tmp_path / "samples.jsonl")]
    assert got == [(0, 0), (1, 0), (2, 0), (2, 1)]
    assert not list(tmp_path.glob("samples.rank*.jsonl")) and not list(tmp_path.glob("*.tmp"))


def test_in_place_canonical_rewrite_matches_the_in_memory_one(tmp_path):
    """Mining canonicalizes without holding samples: same bytes as write_canonical, partial tail repaired,
    duplicates still refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        with SampleWriter(d / "samples.jsonl") as w:
            for s in (sample(3), sample(1)):
                w.write(s)
        with SampleWriter(d / "samples.rank1.jsonl") as w:
            for s in (sample(2, rotation=1), sample(0), sample(2, rotation=0)):
                w.write(s)
        with open(d / "samples.jsonl", "a") as f:
            f.write('{"index": 9, "item_')  # a killed writer's partial line
    write_canonical(a, read_run_samples(a, repair=True))
    canonicalize_in_place(b)
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
    assert not list(b.glob("samples.rank*.jsonl")) and not list(b.glob("*.tmp"))
    with SampleWriter(b / "samples.rank2.jsonl") as w:
        w.write(sample(1))
    with pytest.raises(SamplesFileError, match="duplicate sample for item 'i1'"):
        canonicalize_in_place(b)
