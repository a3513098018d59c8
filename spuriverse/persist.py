"""The one persistence layer: every JSON / JSONL file spuriverse writes goes through here.

One rule for every file, whichever stage owns it:

- **Durable append** (`JsonlAppender`, `append_jsonl`): each record is written as one line (one
  `write` system call: from then on it is the kernel's, so a killed process keeps it), then fsynced
  before `append` returns. A killed (or power-cut) run keeps every record whose `append` returned; at
  most the line being written is lost. A batch (`append_many`) is fsynced once, after its last line.
  One fsync per record is small next to a judge's verdict or a synthesized image, but not next to a fast
  model's answer (an fsync costs ~5 ms here, a tiny model's answer ~8 ms, an API answer at concurrency 32
  ~3 ms): a writer for such records may group its fsyncs (`sync_every_s`): every line is still written
  at once (a killed process loses nothing it appended), the fsync comes at most `sync_every_s` later
  and at `close`, so a power cut loses at most that much of the last records.
- **Repair of a torn last line** happens in one place: when a file is opened for appending
  (`repair_torn_tail`). Readers never modify a file; they skip a trailing partial line (a writer may
  still be writing it) and treat a malformed line anywhere else as an error naming file and line.
- **Atomic rewrite** (`atomic_write_bytes`, `atomic_writer`, ...): a temporary file in the same folder,
  flushed, fsynced and renamed over the target with `os.replace`. A crash leaves the old file or the
  new one, never half of one.

Safety rules, for every file spuriverse rewrites, appends to or verifies:

- **No symlinks, only regular files** (`check_regular`): a link or a device at a path spuriverse would
  write is refused (`UnsafeFile`) before anything is touched, so a link to a file outside the project
  can never be truncated or replaced. Appends open with ``O_NOFOLLOW`` (no race between check and use).
- **A failed write leaves nothing half-done**: an append that fails (full disk, quota, file-size
  limit) is cut back to the last complete line; a failed atomic rewrite removes its temporary file.
  Both re-raise an `OSError` that names the path.
- **Normal permissions**: an atomic rewrite ends with the mode a plain ``open(path, "w")`` would give
  (the old file's mode, else ``0o666`` under the umask), not ``mkstemp``'s ``0o600``.

This module sits at the bottom of the layers (beside `schema`) and imports nothing from spuriverse.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

__all__ = ["JsonlAppender", "JsonlFileError", "UnsafeFile", "check_regular", "new_file_mode", "append_jsonl", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_jsonl", "atomic_write_text", "atomic_writer", "iter_complete_lines", "parse_jsonl_line",
           "read_jsonl", "repair_torn_tail"]


class JsonlFileError(ValueError):
    """A malformed line in a JSONL file (not the trailing partial one)."""


class UnsafeFile(ValueError):
    """A path spuriverse would write or verify is a symlink or not a regular file."""


def check_regular(path: Path, *, what: str = "file") -> None:
    """Refuse a `path` that exists as a symlink or as anything but a regular file (missing is fine)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFile(f"{path}: is a symbolic link; spuriverse never writes through or verifies a link "
                         f"(replace it with a regular {what})")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{path}: is not a regular file")


def _named(exc: OSError, path: Path) -> OSError:
    """The same OSError, naming `path` (os.write's errors name no file)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno or 0), str(path))


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
        return old


def new_file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` leaves: the existing file's, else 0o666 under the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


# --- atomic rewrite -------------------------------------------------------------------------------


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` atomically when the block ends without an exception."""
    path = Path(path)
    check_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _named(exc, path) from exc
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_jsonl(path: Path, records: Iterable[BaseModel]) -> None:
    """Replace `path` with one compact JSON line per record, atomically (streams the records)."""
    with atomic_writer(path) as f:
        for r in records:
            f.write(r.model_dump_json().encode("utf-8") + b"\n")


def atomic_write_json(path: Path, data: Any, *, sort_keys: bool = False) -> None:
    """Replace `path` with `data` as indented JSON (``json.dumps(indent=2)`` + newline), atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


# --- torn tails and appends -----------------------------------------------------------------------


def _truncate_torn_tail(f: IO[bytes]) -> int:
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return 0
    pos, keep = size, 0
    while pos > 0:  # scan back, a chunk at a time, to the last newline
        step = min(65536, pos)
        f.seek(pos - step)
        nl = f.read(step).rfind(b"\n")
        if nl >= 0:
            keep = pos - step + nl + 1
            break
        pos -= step
    f.truncate(keep)
    f.seek(0, os.SEEK_END)
    return size - keep


def repair_torn_tail(path: Path) -> int:
    """Drop a trailing partial line left by a killed writer; return the bytes removed (0 if none or
    no file). Called when a file is opened for appending; readers never call it."""
    path = Path(path)
    check_regular(path)
    if not path.exists():
        return 0
    with _open_append(path) as f:
        return _truncate_torn_tail(f)


def _open_append(path: Path) -> IO[bytes]:
    """Unbuffered read/append handle that never follows a symlink and refuses non-regular files."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path}: is a symbolic link; spuriverse never writes through a link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path}: is not a regular file")
    return os.fdopen(fd, "rb+", buffering=0)


A = TypeVar("A", bound="JsonlAppender")


class JsonlAppender:
    """Durable JSONL appender: repairs a torn last line at open, then writes and fsyncs every record
    (`append`) or batch (`append_many`) before returning; with `sync_every_s` > 0 the fsyncs are
    grouped (at most that long after a write, and at `close`; see the module docstring)."""

    def __init__(self, path: Path, *, sync_every_s: float = 0.0) -> None:
        self.path = Path(path)
        check_regular(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[bytes] = _open_append(self.path)
        _truncate_torn_tail(self._f)
        self.sync_every_s = sync_every_s
        self._synced_at = time.monotonic()
        self._unsynced = False

    def append_many(self, records: Iterable[BaseModel]) -> None:
        """Append the records, then fsync once. A failed write (full disk, quota, size limit) is cut
        back to the last complete line before the error (naming the file) is raised."""
        data = b"".join(r.model_dump_json().encode("utf-8") + b"\n" for r in records)
        fd = self._f.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._unsynced = True
            if time.monotonic() - self._synced_at >= self.sync_every_s:
                self.sync()
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise _named(exc, self.path) from exc

    def append(self, record: BaseModel) -> None:
        """Append one record durably."""
        self.append_many((record,))

    def sync(self) -> None:
        """fsync what was appended since the last fsync."""
        if self._unsynced:
            os.fsync(self._f.fileno())
            self._unsynced = False
        self._synced_at = time.monotonic()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._f.close()

    def __enter__(self: A) -> A:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl(path: Path, record: BaseModel) -> None:
    """Append one record durably (open, repair a torn tail, write, fsync, close)."""
    with JsonlAppender(path) as a:
        a.append(record)


# --- reading --------------------------------------------------------------------------------------


def iter_complete_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line_no, byte_offset, line)`` of every complete, non-blank line of `path` (the newline
    stripped); a trailing partial line is skipped, a missing file has none. Streams. A symlink is
    refused (`UnsafeFile`): these are spuriverse's own files, which it may rewrite next."""
    path = Path(path)
    check_regular(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        offset = 0
        for line_no, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return  # a partial last line: still being written, or torn by a kill
            if line.strip():
                yield line_no, offset, line[:-1]
            offset += len(line)


def parse_jsonl_line(path: Path, line_no: int, line: bytes, model: type[M], *, what: str | None = None,
                     error: type[JsonlFileError] = JsonlFileError) -> M:
    """Validate one line as `model`; a bad line raises `error` naming file, line and field."""
    try:
        return model.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "line"
        raise error(f"{path}:{line_no}: invalid {what or model.__name__} ({where}: {first['msg']})") from None


def read_jsonl(path: Path, model: type[M], *, what: str | None = None,
               error: type[JsonlFileError] = JsonlFileError) -> Iterator[M]:
    """Validated records of a JSONL file (missing file = none; a trailing partial line is skipped)."""
    for line_no, _, line in iter_complete_lines(path):
        yield parse_jsonl_line(path, line_no, line, model, what=what, error=error)
