"""Start and stop a real OpenAI-compatible server: `transformers serve` on a loopback port.

`serve(folder)` is a context manager yielding the base URL (``http://127.0.0.1:PORT/v1``) of a
`transformers serve` process that has `folder` preloaded (served under the folder's path as its
model name). It raises `ServeUnavailable` (with the server's last log lines) when the server cannot
start here, so a test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


class ServeUnavailable(RuntimeError):
    """`transformers serve` could not start on this machine."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("transformers")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("transformers")
    if found is None:
        raise ServeUnavailable("the `transformers` command is not installed beside this Python")
    return [found]


@contextlib.contextmanager
def serve(folder: Path, log: Path, *, startup_s: float = 90.0) -> Iterator[str]:
    """`transformers serve FOLDER` on a free loopback port, stopped (and reaped) on exit."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*_cli(), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise ServeUnavailable(f"`transformers serve` exited with {proc.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServeUnavailable(f"`transformers serve` did not answer /health in {startup_s:.0f} s")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
