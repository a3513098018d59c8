"""The one retry policy (`spuriverse.remote`): real tenacity, real sleeps (short), no mocks."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from spuriverse.remote import (Permanent, RemoteFailure, RetryPolicy, Transient, call_async, call_sync, data_url,
                               retry_after, retryable_status)


def _flaky(failures: list[BaseException], calls: list[int]):
    """An attempt that raises the given exceptions in order, then returns its attempt number."""
    def attempt(n: int) -> int:
        calls.append(n)
        if failures:
            raise failures.pop(0)
        return n
    return attempt


def test_retry_after_headers_and_cap() -> None:
    assert retry_after({"retry-after-ms": "250"}, cap=20) == pytest.approx(0.25)
    assert retry_after({"retry-after": "3"}, cap=20) == pytest.approx(3.0)
    assert retry_after({"retry-after": "3600"}, cap=20) == 20
    assert retry_after({"retry-after": "-4"}, cap=20) == 0.0
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after({"retry-after": future}, cap=20) <= 5.0
    assert retry_after({"retry-after": "soon"}, cap=20) is None
    assert retry_after({}, cap=20) is None


def test_retryable_status() -> None:
    assert all(retryable_status(s) for s in (408, 409, 429, 500, 502, 503))
    assert not any(retryable_status(s) for s in (400, 401, 403, 404, 422))


def test_server_delay_is_honoured() -> None:
    calls: list[int] = []
    policy = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
    t0 = time.perf_counter()
    assert call_sync(policy, _flaky([Transient("429", delay=0.3)], calls)) == 2
    assert time.perf_counter() - t0 >= 0.3  # waited what the server asked, not the (zero) backoff
    assert calls == [1, 2]


def test_jitter_is_bounded() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=3.0, seed=7)
    for failures, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(failures) for _ in range(200)]
        assert all(0.5 * full <= d <= full for d in delays)
        assert max(delays) - min(delays) > 0.1 * full  # jittered, not constant
    assert [RetryPolicy(seed=1).backoff(1) for _ in range(2)] == [RetryPolicy(seed=1).backoff(1)] * 2  # seeded


def test_budget_counts_failures_and_records_final_failure() -> None:
    calls: list[int] = []
    policy = RetryPolicy(max_retries=2, backoff_base=0.001, backoff_max=0.01)
    with pytest.raises(RemoteFailure) as info:
        call_sync(policy, _flaky([Transient(f"HTTP 503 #{i}") for i in range(5)], calls))
    assert calls == [1, 2, 3]  # one try plus max_retries retries
    assert info.value.attempts == 3 and info.value.what == "HTTP 503 #2"
    assert info.value.message == "HTTP 503 #2 (after 3 attempts)"


def test_permanent_fails_at_once() -> None:
    calls: list[int] = []
    with pytest.raises(RemoteFailure) as info:
        call_sync(RetryPolicy(max_retries=5), _flaky([Permanent("HTTP 401 AuthenticationError: no")], calls))
    assert calls == [1] and info.value.message == "HTTP 401 AuthenticationError: no (after 1 attempt)"


def test_kinds_have_their_own_budgets_and_free_retries_cost_nothing() -> None:
    calls: list[int] = []
    policy = RetryPolicy(max_retries=1, backoff_base=0.001, backoff_max=0.01)
    fails = [Transient("api"), Transient("bad json", delay=0.0, kind="invalid"), Transient("param", kind=None),
             Transient("bad json again", delay=0.0, kind="invalid")]
    with pytest.raises(RemoteFailure) as info:
        call_sync(policy, _flaky(fails, calls))
    assert calls == [1, 2, 3, 4] and info.value.what == "bad json again"  # the 2nd 'invalid' spends that budget


def test_unexpected_errors_are_not_retried() -> None:
    calls: list[int] = []
    with pytest.raises(KeyError):
        call_sync(RetryPolicy(max_retries=3), _flaky([KeyError("bug")], calls))
    assert calls == [1]


def test_async_matches_sync() -> None:
    calls: list[int] = []
    sync_attempt = _flaky([Transient("timeout"), Transient("timeout")], calls)

    async def attempt(n: int) -> int:
        return sync_attempt(n)

    policy = RetryPolicy(max_retries=2, backoff_base=0.001, backoff_max=0.01)
    assert asyncio.run(call_async(policy, attempt)) == 3 and calls == [1, 2, 3]
    with pytest.raises(RemoteFailure) as info:
        asyncio.run(call_async(RetryPolicy(max_retries=0), _always_500))
    assert info.value.attempts == 1 and info.value.what == "HTTP 500"


async def _always_500(n: int) -> int:
    raise Transient("HTTP 500")


def test_data_url() -> None:
    assert data_url(b"\x89PNG", "image/png") == "data:image/png;base64,iVBORw=="
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
