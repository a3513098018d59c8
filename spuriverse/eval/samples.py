"""`samples.jsonl`: one durable line per finished sample; safe to kill at any time.

Written through `spuriverse.persist` (the one persistence rule): every sample is written, flushed
and fsynced before the next one starts, so a killed run keeps every finished sample. A kill
mid-write leaves at most one partial last line: readers skip it, the next writer to open the file
repairs it, and the sample is simply redone. A malformed line anywhere else is an error, never
silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from spuriverse.persist import (
    JsonlAppender,
    JsonlFileError,
    atomic_write_jsonl,
    atomic_writer,
    iter_complete_lines,
    parse_jsonl_line,
    repair_torn_tail,
)
from spuriverse.schema import Sample

SAMPLES = "samples.jsonl"
SampleKey = tuple[str, int | None]

# The persist layer's repair, under the name this module has always exported.
repair_tail = repair_torn_tail


class SamplesFileError(JsonlFileError):
    pass


def sample_key(s: Sample) -> SampleKey:
    return (s.item_id, s.rotation)


def _order_key(s: Sample) -> tuple[int, int]:
    return (s.index, -1 if s.rotation is None else s.rotation)


def _lines(path: Path) -> Iterator[tuple[int, int, Sample]]:
    """``(byte offset, line length, sample)`` of every complete line of one file."""
    for line_no, offset, line in iter_complete_lines(path):
        yield offset, len(line), parse_jsonl_line(path, line_no, line, Sample, what="sample", error=SamplesFileError)


def read_samples(path: Path, *, repair: bool = False) -> Iterator[Sample]:
    """Validated samples of one file (missing file = none; a trailing partial line is skipped).
    `repair`: first drop that partial line from the file, as the next writer would."""
    if repair:
        repair_torn_tail(path)
    for _, _, s in _lines(path):
        yield s


def shard_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("samples.rank*.jsonl"))


def _run_files(run_dir: Path) -> list[Path]:
    return [run_dir / SAMPLES, *shard_files(run_dir)]


def _check_new(seen: set[SampleKey], s: Sample, path: Path) -> None:
    k = sample_key(s)
    if k in seen:
        raise SamplesFileError(f"{path}: duplicate sample for item {s.item_id!r} rotation {s.rotation}")
    seen.add(k)


def read_run_samples(run_dir: Path, *, repair: bool = False) -> list[Sample]:
    """All samples of a run folder (main file + unmerged per-rank shards), duplicates rejected."""
    seen: set[SampleKey] = set()
    out = []
    for path in _run_files(run_dir):
        for s in read_samples(path, repair=repair):
            _check_new(seen, s, path)
            out.append(s)
    return out


class SampleWriter(JsonlAppender):
    """Append-only writer: one JSON line per sample, written at once (a killed run keeps every sample
    `write` returned), fsynced at most `SYNC_EVERY_S` later and at close (grouped: a fast model answers
    faster than this disk fsyncs; see `spuriverse.persist`)."""

    SYNC_EVERY_S = 1.0

    def __init__(self, path: Path) -> None:
        super().__init__(path, sync_every_s=self.SYNC_EVERY_S)

    def write(self, sample: Sample) -> None:
        self.append(sample)


def _drop_shards(run_dir: Path) -> None:
    for shard in shard_files(run_dir):
        shard.unlink()


def write_canonical(run_dir: Path, samples: Iterable[Sample]) -> Path:
    """Atomically rewrite `samples.jsonl` in benchmark order (index, rotation) and remove merged
    shards, so identical runs give identical files whatever the completion order or process count."""
    target = run_dir / SAMPLES
    ordered: list[Sample] = sorted(samples, key=_order_key)
    atomic_write_jsonl(target, ordered)
    _drop_shards(run_dir)
    return target


def canonicalize_in_place(run_dir: Path) -> Path:
    """`write_canonical` without holding the samples in memory (for runs too large to score in
    memory, e.g. mining a whole source benchmark): every line is validated once and only its order
    key and byte range are kept; the lines are then copied in benchmark order. Same bytes as
    `write_canonical(run_dir, read_run_samples(run_dir))`."""
    files = _run_files(run_dir)
    seen: set[SampleKey] = set()
    spans: list[tuple[tuple[int, int], int, int, int]] = []
    for fi, path in enumerate(files):
        for offset, length, s in _lines(path):
            _check_new(seen, s, path)
            spans.append((_order_key(s), fi, offset, length))
    spans.sort()
    target = run_dir / SAMPLES
    handles = [open(p, "rb") if p.exists() else None for p in files]
    try:
        with atomic_writer(target) as out:
            for _, fi, offset, length in spans:
                f = handles[fi]
                assert f is not None
                f.seek(offset)
                out.write(f.read(length) + b"\n")
    finally:
        for f in handles:
            if f is not None:
                f.close()
    _drop_shards(run_dir)
    return target
