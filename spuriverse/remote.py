"""One retry policy for every remote call (model endpoints, judges, image APIs).

A backend writes one *attempt* and classifies its outcome by raising:

- `Transient(what, delay=None, kind="api")`: worth another try. `delay` is the server's requested
  wait (`retry-after-ms` / `retry-after`, see `retry_after`); without one we back off exponentially
  (`backoff_base * 2**(n-1)`, capped at `backoff_max`) with jitter in [0.5, 1.0] of that. Each `kind`
  has its own budget of `max_retries` failures (a judge's API faults and its invalid answers are
  counted apart); `kind=None` retries without spending budget (a parameter the server rejected and
  we dropped).
- `Permanent(what)`: fails at once (400/401/403/404, a refusal, ...).

`call_async` / `call_sync` run the attempts on tenacity and turn a final failure into one typed
`RemoteFailure(what, attempts)`, which each backend maps to its own error record. The HTTP clients'
own retries must be off (`max_retries=0`) so that every attempt is counted once, here.

`openai_transient` classifies the `openai` client's exceptions the same way for every backend; the
module imports nothing from `spuriverse` stages (it sits beside `schema`/`data`).
"""

from __future__ import annotations

import base64
import email.utils
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
from tenacity import AsyncRetrying, Retrying, RetryCallState, retry_if_exception_type

__all__ = ["RETRY_STATUS", "Permanent", "RemoteFailure", "RetryPolicy", "Transient", "call_async", "call_sync",
           "data_url", "openai_transient", "retry_after", "retryable_status"]

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx; other 4xx fail at once


class Transient(Exception):
    """A failed attempt worth retrying."""

    def __init__(self, what: str, delay: float | None = None, kind: str | None = "api") -> None:
        super().__init__(what)
        self.what, self.delay, self.kind = what, delay, kind


class Permanent(Exception):
    """A failed attempt that must not be retried."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class RemoteFailure(Exception):
    """The final failure of a remote call: what went wrong last, after how many attempts."""

    def __init__(self, what: str, attempts: int) -> None:
        self.what, self.attempts = what, attempts
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.what[:400]} (after {self.attempts} attempt{'s' if self.attempts != 1 else ''})"


def retryable_status(status: int) -> bool:
    """408/409/429 and 5xx are retried; every other status fails at once."""
    return status >= 500 or status in RETRY_STATUS


def retry_after(headers: Mapping[str, str], cap: float) -> float | None:
    """Server-requested delay in seconds from `retry-after-ms` / `retry-after` (seconds or an HTTP
    date), clamped to [0, cap]; None when absent or unreadable."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return min(max(float(ms) / 1000.0, 0.0), cap)
        if (sec := headers.get("retry-after")) is not None:
            try:
                val = float(sec)
            except ValueError:
                val = email.utils.parsedate_to_datetime(sec).timestamp() - time.time()
            return min(max(val, 0.0), cap)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def data_url(data: bytes, mime: str) -> str:
    """An image's bytes as a `data:` URL (what chat endpoints take in an `image_url` part)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def openai_transient(exc: BaseException, cap: float) -> Transient | Permanent | None:
    """The policy's verdict on an `openai` client exception (None: not an API fault; let it raise)."""
    if isinstance(exc, openai.APIStatusError):
        what = f"HTTP {exc.status_code} {type(exc).__name__}: {exc.message}"
        if not retryable_status(exc.status_code):
            return Permanent(what)
        return Transient(what, retry_after(exc.response.headers, cap))
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return Transient(f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError)):
        return Transient(f"invalid response ({type(exc).__name__}: {exc})")
    return None


@dataclass
class RetryPolicy:
    """Attempt budget and backoff for one backend; its jitter RNG is seeded and thread-safe."""

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._rng = random.Random(self.seed)

    def backoff(self, failures: int) -> float:
        """Exponential backoff for the `failures`-th failure, with jitter in [0.5, 1] of it."""
        with self._lock:
            jitter = 0.5 + 0.5 * self._rng.random()
        return min(self.backoff_max, self.backoff_base * 2 ** (failures - 1)) * jitter

    def _controls(self) -> dict[str, Any]:
        """tenacity's stop/wait/retry for one call; the per-kind failure counts live in the closure."""
        counts: dict[str, int] = {}

        def _stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            kind = getattr(exc, "kind", None)
            if kind is None:
                return False
            counts[kind] = counts.get(kind, 0) + 1
            return counts[kind] > self.max_retries

        def _wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if not isinstance(exc, Transient) or exc.kind is None:
                return 0.0
            # tenacity computes the wait before the stop check, so this failure is not counted yet
            return exc.delay if exc.delay is not None else self.backoff(counts.get(exc.kind, 0) + 1)

        return {"stop": _stop, "wait": _wait, "retry": retry_if_exception_type(Transient), "reraise": True}


async def call_async(policy: RetryPolicy, attempt: Callable[[int], Awaitable[T]]) -> T:
    """Run `attempt(n)` (n = 1, 2, ...) under `policy`; raise `RemoteFailure` when it finally fails."""
    n = 0

    async def _once() -> T:
        nonlocal n
        n += 1
        return await attempt(n)

    try:
        return await AsyncRetrying(**policy._controls())(_once)
    except (Transient, Permanent) as exc:
        raise RemoteFailure(exc.what, n) from None


def call_sync(policy: RetryPolicy, attempt: Callable[[int], T]) -> T:
    """`call_async` for blocking code (a thread pool's worker)."""
    n = 0

    def _once() -> T:
        nonlocal n
        n += 1
        return attempt(n)

    try:
        return Retrying(sleep=time.sleep, **policy._controls())(_once)
    except (Transient, Permanent) as exc:
        raise RemoteFailure(exc.what, n) from None
