"""JSONL files of the curation folder: validated reading, durable appends.

Every stage appends one line per finished unit and flushes it, so a killed stage loses at most the
line being written. Readers ignore a trailing partial line (the writer that owns the file repairs
it on its next append); a malformed line anywhere else is an error naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class CurationFileError(ValueError):
    pass


def read_jsonl(path: Path, model: type[M]) -> Iterator[M]:
    if not path.exists():
        return
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    complete = lines if data.endswith(b"\n") else lines[:-1]  # a partial last line: still being written
    for line_no, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            yield model.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise CurationFileError(f"{path}:{line_no}: invalid {model.__name__} ({where}: {first['msg']})") from None


def append_jsonl(path: Path, record: BaseModel) -> None:
    """Append one record durably; first drop a partial last line left by a killed writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                data = f.read()
                f.truncate(data.rfind(b"\n") + 1)
                f.seek(0, os.SEEK_END)
        f.write(record.model_dump_json().encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
