"""`samples.jsonl`: appended and flushed one line per finished sample; safe to kill at any time.

A process killed mid-write leaves at most one partial last line: reading repairs it (truncates the
partial line) and the sample is simply redone. A malformed line anywhere else is an error, never
silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from spuriverse.schema import Sample

SAMPLES = "samples.jsonl"
SampleKey = tuple[str, int | None]


class SamplesFileError(ValueError):
    pass


def sample_key(s: Sample) -> SampleKey:
    return (s.item_id, s.rotation)


def _order_key(s: Sample) -> tuple[int, int]:
    return (s.index, -1 if s.rotation is None else s.rotation)


def repair_tail(path: Path) -> int:
    """Drop a trailing partial line left by a killed writer; return the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # Scan back to the last newline.
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        else:
            keep = 0
        f.truncate(keep)
        return size - keep


def read_samples(path: Path, *, repair: bool = False) -> Iterator[Sample]:
    """Validated samples of one file (missing file = none)."""
    if not path.exists():
        return
    if repair:
        repair_tail(path)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Sample.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise SamplesFileError(f"{path}:{line_no}: invalid sample ({where}: {first['msg']})") from None


def shard_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("samples.rank*.jsonl"))


def read_run_samples(run_dir: Path, *, repair: bool = False) -> list[Sample]:
    """All samples of a run folder (main file + unmerged per-rank shards), duplicates rejected."""
    seen: set[SampleKey] = set()
    out = []
    for path in [run_dir / SAMPLES, *shard_files(run_dir)]:
        for s in read_samples(path, repair=repair):
            k = sample_key(s)
            if k in seen:
                raise SamplesFileError(f"{path}: duplicate sample for item {s.item_id!r} rotation {s.rotation}")
            seen.add(k)
            out.append(s)
    return out


class SampleWriter:
    """Append-only writer: one JSON line per sample, flushed immediately."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[str] = open(path, "a", encoding="utf-8")

    def write(self, sample: Sample) -> None:
        self._f.write(sample.model_dump_json() + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_canonical(run_dir: Path, samples: Iterable[Sample]) -> Path:
    """Atomically rewrite `samples.jsonl` in benchmark order (index, rotation) and remove merged
    shards, so identical runs give identical files whatever the completion order or process count."""
    ordered = sorted(samples, key=_order_key)
    target = run_dir / SAMPLES
    tmp = run_dir / (SAMPLES + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for s in ordered:
            f.write(s.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    for shard in shard_files(run_dir):
        shard.unlink()
    return target




def canonicalize_in_place(run_dir: Path) -> Path:
    """`write_canonical` without holding the samples in memory (for runs too large to score in
    memory, e.g. mining a whole source benchmark): every line is validated once and only its order
    key and byte range are kept; the lines are then copied in benchmark order. Same bytes as
    `write_canonical(run_dir, read_run_samples(run_dir))`."""
    files = [run_dir / SAMPLES, *shard_files(run_dir)]
    seen: set[SampleKey] = set()
    spans: list[tuple[tuple[int, int], int, int, int]] = []
    for fi, path in enumerate(files):
        if not path.exists():
            continue
        repair_tail(path)
        with open(path, "rb") as f:
            offset = 0
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        s = Sample.model_validate_json(line)
                    except ValidationError as exc:
                        raise SamplesFileError(f"{path}:{line_no}: invalid sample ({exc.errors()[0]['msg']})") from None
                    if sample_key(s) in seen:
                        raise SamplesFileError(f"{path}: duplicate sample for item {s.item_id!r} rotation {s.rotation}")
                    seen.add(sample_key(s))
                    spans.append((_order_key(s), fi, offset, len(line.rstrip(b"\n"))))
                offset += len(line)
    spans.sort()
    target, tmp = run_dir / SAMPLES, run_dir / (SAMPLES + ".tmp")
    handles = [open(p, "rb") if p.exists() else None for p in files]
    try:
        with open(tmp, "wb") as out:
            for _, fi, offset, length in spans:
                f = handles[fi]
                assert f is not None
                f.seek(offset)
                out.write(f.read(length) + b"\n")
            out.flush()
            os.fsync(out.fileno())
    finally:
        for f in handles:
            if f is not None:
                f.close()
    os.replace(tmp, target)
    for shard in shard_files(run_dir):
        shard.unlink()
    return target
