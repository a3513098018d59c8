"""A SCRIPTED STAND-IN for the LLM judge: a loopback OpenAI-compatible chat-completions server.

THIS IS NOT A REAL JUDGE. It never looks at the image and understands nothing: every request gets
the same kind of canned verdict, built deterministically from the request's text (``spurious`` is
always true; the spurious attribute is "a cue suggesting <the wrong option>"; the scene descriptions
are made from the right and wrong options). It exists so that `make curate-demo` and the
tests can run stage 2 (`spuriverse curate judge --judge demo-judge --base-url URL`) offline, through
the same HTTP client, structured-output request, validation and bookkeeping a real judge gets.

    python -m spuriverse.demo.judge_server --port 0 --url-file PATH [--latency S]

writes its base URL (``http://127.0.0.1:PORT/v1``) to PATH once it listens and serves until killed.
Only the standard library is used; it binds to 127.0.0.1 only. In-process::

    with DemoJudgeServer(latency=0.05) as srv:
        srv.base_url, srv.n_requests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["DemoJudgeServer", "demo_verdict", "main"]

_PATHS = ("/v1/chat/completions", "/chat/completions")


def _line(text: str, prefix: str) -> str | None:
    m = re.search(rf"^{re.escape(prefix)}\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


def _strip_letter(option: str) -> str:
    return re.sub(r"^\([A-Z]\)\s*", "", option).strip()


def demo_verdict(user_text: str) -> dict[str, Any]:
    """The canned, schema-valid verdict for one judge prompt (see the module docstring)."""
    right = _strip_letter(_line(user_text, "Correct answer:") or "the correct answer")
    wrong = _strip_letter(_line(user_text, "The model answered:") or "another answer")
    return {
        "spurious": True,
        "rationale": f"Scripted demo judge (not a real judgment): the model chose {wrong!r} instead of {right!r}.",
        "core_attributes": [f"the evidence that the answer is {right}"],
        "spurious_attributes": [f"a cue suggesting {wrong}"],
        # Short: CLIP reads at most 77 tokens (the demo's tiny tokenizer is nearly byte-level).
        "positive": f"{right}, with {wrong} beside it",
        "negative": f"{right}, plain background",
    }


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A plausible count: ~4 characters per text token, 85 tokens per image (OpenAI's low-detail price)."""
    chars, images = 0, 0
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            chars += len(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict):
                chars += len(part.get("text") or "")
                images += part.get("type") == "image_url"
    return chars // 4 + 85 * images + 1


def _user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        assert isinstance(self.server, _Server)
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] not in _PATHS:
            self._send(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        with owner.lock:
            owner.n_requests += 1
            idx = owner.n_requests
        if owner.latency:
            time.sleep(owner.latency)
        content = json.dumps(demo_verdict(_user_text(body)), sort_keys=True)
        n_prompt = _prompt_tokens(body)
        n_completion = len(content) // 4 + 1
        self._send(200, {
            "id": f"chatcmpl-demo-judge-{idx}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "demo-judge"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                      "total_tokens": n_prompt + n_completion},
        })


class _Server(ThreadingHTTPServer):
    owner: DemoJudgeServer  # the handlers' way back to the counters and the latency


class DemoJudgeServer:
    """The scripted judge on a daemon thread (a context manager); `n_requests` counts requests."""

    def __init__(self, port: int = 0, latency: float = 0.0) -> None:
        self.latency, self.n_requests, self.lock = latency, 0, threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.1)

    def start(self) -> DemoJudgeServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DemoJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spuriverse.demo.judge_server",
        description="Scripted stand-in for an LLM judge (NOT a real judge): a loopback OpenAI-compatible "
        "chat-completions server answering every request with a canned, schema-valid verdict.")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--url-file", type=Path, help="write the base URL here once listening")
    p.add_argument("--latency", type=float, default=0.0, help="seconds to sleep per request")
    a = p.parse_args(argv)
    srv = DemoJudgeServer(port=a.port, latency=a.latency)
    if a.url_file is not None:
        tmp = a.url_file.with_name(f".{a.url_file.name}.{os.getpid()}.tmp")
        tmp.write_text(srv.base_url + "\n")
        os.replace(tmp, a.url_file)  # readers never see half a URL
    print(srv.base_url, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv._httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
