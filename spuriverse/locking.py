"""One writer per folder: an exclusive lock held for a whole run of a stage that writes a folder.

`folder_lock(folder, stage=...)` takes ``FOLDER/.spuriverse.lock`` (an OS file lock through
`filelock`, so it dies with its process: a lock left by a killed run is simply free again) and
records the holder (pid, host, start time, command) beside it in ``.spuriverse.lock.json``. A second
process fails at once with `FolderBusy`, naming the holder, or waits (`wait=True`). Taking over after a
dead holder prints a note naming it. A torn-line repair only ever happens under this lock, so it can
never cut a line another live writer is writing.

A folder the user cannot write (a finished run on a read-only disk) is not locked: nothing can
write there, and commands with nothing to do still report.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import threading
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from filelock import FileLock, Timeout

from spuriverse.persist import atomic_write_json, check_regular

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["LOCK_NAME", "FolderBusy", "folder_lock", "locks_folder"]

LOCK_NAME = ".spuriverse.lock"
_READ_ONLY = {errno.EACCES, errno.EROFS, errno.EPERM}
# Locks this thread holds: a nested stage on the same folder re-enters instead of deadlocking. Other
# threads (a second review app in one process) take the OS lock like any other process would.
_LOCAL = threading.local()


def _held() -> dict[Path, int]:
    if not hasattr(_LOCAL, "held"):
        _LOCAL.held = {}
    return _LOCAL.held


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


def _info_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".json")


def _holder(lock_path: Path) -> dict | None:
    try:
        data = json.loads(_info_path(lock_path).read_text("utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _describe(h: dict | None) -> str:
    if not h:
        return "another process (no holder record)"
    return (f"`{h.get('command', '?')}` (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
            f"since {h.get('started', '?')})")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rank_suffix() -> str:
    """Under data parallelism (torchrun / accelerate launch) every rank holds its own lock, rank 0 the
    plain one: ranks of one launch never block each other, and a second launch fails on every rank."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return ""
    return f".rank{rank}" if world > 1 and rank > 0 else ""


@contextmanager
def folder_lock(folder: str | Path, *, stage: str, wait: bool | float = False, name: str = LOCK_NAME) -> Iterator[bool]:
    """Hold `folder`'s lock for the block; yields False (no lock) only for a folder nobody can write.

    Under data parallelism each rank > 0 takes ``NAME.rankN`` instead (see `_rank_suffix`).
    `wait`: False fails at once, True waits for ever, a number waits that many seconds. Raises
    `FolderBusy` (naming the holder) when a live process holds it past that."""
    folder = Path(folder)
    lock_path = folder / (name + _rank_suffix())
    key, held = lock_path.resolve(), _held()
    if key in held:
        held[key] += 1
        try:
            yield True
        finally:
            held[key] -= 1
        return
    check_regular(lock_path)
    check_regular(_info_path(lock_path))
    timeout = -1 if wait is True else (0 if wait is False else float(wait))
    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusy(
            f"{folder} is in use by {_describe(_holder(lock_path))}; wait for it with --wait, or use another folder"
        ) from None
    except OSError as exc:
        if exc.errno in _READ_ONLY and not os.access(folder, os.W_OK):
            yield False
            return
        raise
    try:
        previous = _holder(lock_path)
        host = socket.gethostname()
        if previous and previous.get("pid") != os.getpid() and previous.get("host") == host \
                and not _alive(previous.get("pid")):
            print(f"spuriverse: note: {folder}: taking over the lock of {_describe(previous)}, which is no "
                  "longer running", file=sys.stderr)
        atomic_write_json(_info_path(lock_path), {
            "pid": os.getpid(), "host": host, "stage": stage,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(["spuriverse", *sys.argv[1:]]) if sys.argv[1:] else f"spuriverse {stage}",
        })
        held[key] = 1
        yield True
    finally:
        held.pop(key, None)
        try:
            _info_path(lock_path).unlink()
        except OSError:
            pass
        lock.release()


def locks_folder(arg: str, *, stage: str,
                 wait: bool | float = False) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: the function's folder argument `arg` is locked (`folder_lock`) while it runs."""

    def deco(fn: Callable[P, T]) -> Callable[P, T]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            folder = Path(sig.bind_partial(*args, **kwargs).arguments[arg])
            if not folder.is_dir():  # the stage's own check names what is missing
                return fn(*args, **kwargs)
            with folder_lock(folder, stage=stage, wait=wait):
                return fn(*args, **kwargs)

        return wrapper

    return deco
