"""Shared scaffolding of the loopback fakes (chat API, images APIs): a threaded HTTP server on
127.0.0.1 with request counters, run on a daemon thread as a context manager."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections
    disable_nagle_algorithm = True  # else headers + body in two writes stall on delayed ACKs (~40 ms)
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def _send(self, status: int, payload: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        """Headers and body in one write (one write per response)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")  # end_headers() without its separate flush
        self.wfile.write(b"".join(self._headers_buffer) + payload)
        self._headers_buffer = []


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 stalls >= 8 concurrent clients for ~1 s
    allow_reuse_address = True
    owner: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, (BrokenPipeError, ConnectionResetError)):  # a client that timed out
            super().handle_error(request, client_address)


class LoopbackServer:
    """Counters: `n_requests`, `in_flight`, `max_in_flight`, `status_counts` (HTTP status -> count);
    `requests` holds every received request record in arrival order."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[Any] = []
        self.n_requests = self.in_flight = self.max_in_flight = 0
        self.status_counts: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._httpd = LoopbackHTTPServer((host, port), handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    def _enter_locked(self, record: Any) -> int:
        idx = self.n_requests
        self.n_requests += 1
        self.requests.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return idx

    def _enter(self, record: Any) -> int:
        with self._lock:
            return self._enter_locked(record)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _count(self, status: int) -> None:
        with self._lock:
            self.status_counts[status] += 1

    def start(self):  # -> Self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):  # -> Self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
