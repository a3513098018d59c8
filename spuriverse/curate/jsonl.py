"""JSONL files of the curation folder: validated reading, durable appends (`spuriverse.persist`).

Every stage appends one line per finished unit, fsynced, so a killed stage loses at most the line
being written. Readers skip a trailing partial line (the next append repairs it); a malformed line
anywhere else is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from spuriverse import persist
from spuriverse.persist import JsonlFileError, append_jsonl

__all__ = ["CurationFileError", "append_jsonl", "read_jsonl"]

M = TypeVar("M", bound=BaseModel)


class CurationFileError(JsonlFileError):
    pass


def read_jsonl(path: Path, model: type[M]) -> Iterator[M]:
    """Validated records of a curation JSONL file (missing file = none)."""
    return persist.read_jsonl(path, model, error=CurationFileError)
