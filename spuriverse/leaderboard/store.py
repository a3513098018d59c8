"""Leaderboard storage: atomic writes under a file lock, safe names.

Every file is written to a temporary file in the same folder, flushed, fsynced and renamed over the
target, while the board's lock is held: concurrent submits all land, and a crash never leaves a
half-written file.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


BOARD_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SLUG_BAD = re.compile(r"[^a-z0-9._-]+")
LOCK_TIMEOUT_S = 120


class UnsafeName(ValueError):
    pass


def check_board_name(name: str) -> str:
    if not BOARD_NAME.match(name) or ".." in name:
        raise UnsafeName(f"leaderboard name {name!r} must match {BOARD_NAME.pattern} (no '..')")
    return name


def slugify(model: str, config_key: str, max_len: int = 60) -> str:
    """A folder name derived from the model name: ASCII letters, digits, '.', '_', '-'; no path
    separators, no '..', no leading dot; bounded length; unique per (model, configuration) through
    a suffix of the configuration hash. The same model and configuration always get the same slug."""
    text = unicodedata.normalize("NFKD", model).encode("ascii", "ignore").decode().lower()
    base = _SLUG_BAD.sub("-", text)
    base = re.sub(r"\.{2,}", ".", base)
    base = re.sub(r"-{2,}", "-", base).strip("-._")[: max_len - 9] or "model"
    return f"{base}-{config_key[:8]}"


def clean_text(text: str, max_len: int = 200) -> str:
    """A display string: NFC, no control or format characters (bidi overrides, zero-width),
    whitespace collapsed, bounded length. It is still only ever rendered escaped."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text
                   if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())[:max_len]


def config_key(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()


@contextmanager
def board_lock(board_dir: Path) -> Iterator[None]:
    board_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(board_dir / ".lock"), timeout=LOCK_TIMEOUT_S):
        yield


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (no timestamp, no file name)."""
    return gzip.compress(data, compresslevel=6, mtime=0)
