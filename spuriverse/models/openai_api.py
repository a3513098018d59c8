"""OpenAI-compatible chat-completions backend (OpenAI, vLLM, SGLang, LiteLLM, ... servers).

Design: one private event loop per backend runs on a daemon thread for the backend's lifetime; the
real `openai.AsyncOpenAI` client (its own retries off) lives on it. `score_options` / `generate`
submit one task per request, bounded by an `asyncio.Semaphore(concurrency)`, and yield
`(position, response)` from a thread-safe queue as each request finishes, so requests keep flowing
while the caller handles a result. Stopping iteration early cancels the requests still pending.

Retries: `spuriverse.remote`'s policy (408/409/429 honouring `retry-after(-ms)`, 5xx, timeouts,
connection errors, and here garbage 200s: not JSON, no choices, no content; other 4xx fail at once).
A request that still fails carries `ModelError(type="api")`; the API key is never part of any
message, log or repr.

Providers: the request body, key variable, base URL and message shape come from the entry's
provider profile (`spuriverse.models.providers`); this module never branches on a provider.
"""

from __future__ import annotations

import asyncio
import functools
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from spuriverse.models.base import LVLM, Generation, ModelError, OptionScores, Request, UnsupportedRequest
from spuriverse.models.providers import DEFAULT_PROVIDER, Sampling, get_provider
from spuriverse.remote import Permanent, RemoteFailure, RetryPolicy, Transient, call_async, openai_transient, retry_after
from spuriverse.schema import ModelInfo

_Kind = Literal["score", "generate"]
NO_LOGPROBS = "endpoint returned no log-probs for the option letters"


class _Garbage(Exception):
    """A 200 response that is not a usable chat completion."""


def _letter_of(token: str, letters: Sequence[str]) -> str | None:
    """The option letter a token spells exactly ("B", " B", "(B"), else None."""
    s = token.strip()
    if s.startswith("("):
        s = s[1:].strip()
    return s if s in letters else None


def letter_logprobs(position: Any, letters: Sequence[str]) -> dict[str, float]:
    """Map one token position's top_logprobs (and its sampled token) to letter -> max log-prob."""
    out: dict[str, float] = {}
    cands = [(getattr(position, "token", None), getattr(position, "logprob", None))]
    cands += [(getattr(t, "token", None), getattr(t, "logprob", None)) for t in position.top_logprobs or []]
    for tok, lp in cands:
        if not isinstance(tok, str) or not isinstance(lp, (int, float)) or not math.isfinite(lp):
            continue
        letter = _letter_of(tok, letters)
        if letter is not None and lp > out.get(letter, -math.inf):
            out[letter] = float(lp)
    return out


def answer_logprobs(choice: Any, letters: Sequence[str]) -> dict[str, float] | None:
    """Letter log-probs at the answer position: the first generated token, or the second when the
    first is only "(" or whitespace. None when the endpoint sent no log-probs or no letter shows."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    for pos in content[:2]:
        found = letter_logprobs(pos, letters)
        if found:
            return found
        if str(getattr(pos, "token", "")).strip() not in ("", "("):
            break
    return None


def _retry_after(exc: openai.APIStatusError, cap: float) -> float | None:
    """Server-requested delay of a status error (see `spuriverse.remote.retry_after`)."""
    return retry_after(exc.response.headers, cap)


class OpenAIBackend(LVLM):
    """An LVLM served by an OpenAI-compatible `/chat/completions` endpoint."""

    supports_logprobs = True  # the profile's: may return them (score_options errors when none come)
    needs_pixels = False  # images travel as their encoded bytes

    def __init__(
        self,
        checkpoint: str,
        *,
        alias: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 32,
        max_retries: int = 5,
        timeout: float = 60.0,
        top_logprobs: int = 20,
        chunk_size: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        temperature: float | str = 0.0,
        top_p: float | None = None,
        sample_seed: int | None = None,
        reasoning_effort: str | None = None,
        provider: str = DEFAULT_PROVIDER,
    ) -> None:
        self.profile = get_provider(provider)
        key = self.profile.api_key(api_key, alias or checkpoint)
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0")
        self.info = ModelInfo(alias=alias or checkpoint, backend="openai", checkpoint=checkpoint, provider=provider)
        self.checkpoint, self.base_url = checkpoint, base_url or self.profile.base_url
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout
        # temperature "default" (a preset's word): not sent, the provider's default applies.
        self.sampling = Sampling(temperature=None if temperature == "default" else float(temperature),
                                 top_p=top_p, seed=sample_seed,
                                 reasoning_effort=reasoning_effort)
        self.supports_logprobs = self.profile.logprobs
        self.top_logprobs = top_logprobs if self.profile.logprobs else None
        # What the endpoint is sent (recorded in run.json / results.json).
        sent = self.profile.sent(self.sampling)
        # No temperature sent: the provider's default applies (1.0 on reasoning models: sampling).
        self.generation = {"do_sample": sent.get("temperature", 1.0) > 0, "temperature": None, **sent}
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        # Large chunks keep the window full: each chunk boundary drains the in-flight requests.
        self.chunk_size = chunk_size or 16 * concurrency
        self._gen_logprobs = True  # turned off once the endpoint rejects logprobs for generate
        self._policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max)
        self._scrub = lambda text: text.replace(key, "***")  # the key is kept only by the client
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-backend", daemon=True)
        self._thread.start()
        self._client, self._sem = self._submit(self._setup(key)).result()

    async def _setup(self, key: str) -> tuple[AsyncOpenAI, asyncio.Semaphore]:
        client = AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout)
        return client, asyncio.Semaphore(self.concurrency)

    def _submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def __repr__(self) -> str:
        return f"OpenAIBackend(checkpoint={self.checkpoint!r}, base_url={self.base_url!r}, concurrency={self.concurrency})"

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API
    def score_options(self, requests: Sequence[Request]) -> Iterator[tuple[int, OptionScores]]:
        """Letter log-probs from a 1-token completion's top_logprobs, in completion order."""
        if not self.profile.logprobs:
            raise UnsupportedRequest(f"provider {self.profile.name} returns no log-probs: use --scoring generate")
        return self._drive("score", requests)

    def generate(self, requests: Sequence[Request]) -> Iterator[tuple[int, Generation]]:
        """Completions (new text only; greedy unless sampling was asked), in completion order."""
        return self._drive("generate", requests)

    def close(self) -> None:
        """Close the HTTP client and stop the private event loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(self._client.close()).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # ------------------------------------------------------------------ driving
    def _drive(self, kind: _Kind, requests: Sequence[Request]) -> Iterator[tuple[int, Any]]:
        if self._closed:
            raise RuntimeError("OpenAIBackend is closed")
        reqs = list(requests)
        done: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        tasks: list[asyncio.Task] = self._submit(self._start(kind, reqs, done)).result()
        try:
            for _ in range(len(tasks)):
                pos, res = done.get()
                if isinstance(res, BaseException):
                    raise res
                yield pos, res
        finally:
            if any(not t.done() for t in tasks) and not self._closed:
                self._submit(self._cancel(tasks)).result()

    async def _start(self, kind: _Kind, reqs: list[Request], done: queue.SimpleQueue) -> list[asyncio.Task]:
        urls: dict[int, str] = {}  # one base64 encoding per distinct image in this call

        def deliver(pos: int, task: asyncio.Task) -> None:
            if not task.cancelled():
                exc = task.exception()
                done.put((pos, exc if exc is not None else task.result()))

        tasks = []
        for pos, req in enumerate(reqs):
            task = asyncio.ensure_future(self._one(kind, req, self._messages(req, urls)))
            task.add_done_callback(functools.partial(deliver, pos))
            tasks.append(task)
        return tasks

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task]) -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _messages(self, req: Request, urls: dict[int, str]) -> list[dict[str, Any]]:
        """System message (if any), then the user turn: image part first (unless blind), then text,
        shaped by the provider profile."""
        url = None
        if req.image is not None:
            url = urls.get(id(req.image.data))
            if url is None:
                url = self.profile.image_url(req.image)
                urls[id(req.image.data)] = url
        return self.profile.messages(req.system, req.prompt, url)

    # ------------------------------------------------------------------ one request
    async def _one(self, kind: _Kind, req: Request, messages: list[dict[str, Any]]) -> OptionScores | Generation:
        """One request under `spuriverse.remote`'s retry policy; a final failure becomes `ModelError(type="api")`."""
        cls = OptionScores if kind == "score" else Generation
        async with self._sem:
            t0 = time.perf_counter()

            async def attempt(n: int) -> OptionScores | Generation:
                want_lp = self.top_logprobs is not None and (kind == "score" or self._gen_logprobs)
                params = self.profile.chat_params(self.checkpoint, messages,
                                                  1 if kind == "score" else req.max_new_tokens, self.sampling,
                                                  self.top_logprobs if want_lp else None)
                try:
                    # `chat.completions.create` would re-walk `params` (base64 image included) against
                    # its TypedDict annotations: ~30% of the client's CPU per request in a py-spy
                    # profile of bench/api_throughput.py. Ours are plain JSON already, so post them as
                    # they are; errors, timeouts and response parsing are the client's same path.
                    completion = await self._client.post("/chat/completions", body=params, cast_to=ChatCompletion)
                    out = self._parse(kind, req, completion)
                except openai.BadRequestError as exc:
                    if kind == "generate" and want_lp and "logprobs" in f"{exc.message} {exc.param}".lower():
                        self._gen_logprobs = False  # remembered for this instance; retried free of budget
                        raise Transient("endpoint rejects logprobs", kind=None) from None
                    raise Permanent(f"HTTP 400 {type(exc).__name__}: {exc.message}") from None
                except _Garbage as exc:
                    raise Transient(f"invalid response ({type(exc).__name__}: {exc})") from None
                except Exception as exc:
                    verdict = openai_transient(exc, self.backoff_max)
                    if verdict is None:
                        raise
                    raise verdict from None
                out.attempts, out.latency_s = n, time.perf_counter() - t0
                return out

            try:
                return await call_async(self._policy, attempt)
            except RemoteFailure as fail:
                error = ModelError(self._scrub(fail.message), type="api")
                return cls(error=error, attempts=fail.attempts, latency_s=time.perf_counter() - t0)

    @staticmethod
    def _parse(kind: _Kind, req: Request, completion: Any) -> OptionScores | Generation:
        """Turn a completion into a response; raise `_Garbage` for unusable 200s (retried)."""
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise _Garbage("no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        lps = answer_logprobs(choice, req.letters)
        if kind == "score":
            if text is None and getattr(getattr(choice, "logprobs", None), "content", None) is None:
                raise _Garbage("no message content")
            if not lps:
                return OptionScores(error=ModelError(NO_LOGPROBS, type="api"))
            return OptionScores(logprobs=lps)
        if not isinstance(text, str):
            raise _Garbage("no message content")
        usage = getattr(completion, "usage", None)
        counts = None
        if usage is not None:
            keys = ("prompt_tokens", "completion_tokens", "total_tokens")
            counts = {k: int(getattr(usage, k)) for k in keys if isinstance(getattr(usage, k, None), int)}
            # Reasoning models bill hidden reasoning tokens inside completion_tokens: keep their count.
            hidden = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
            if isinstance(hidden, int):
                counts["reasoning_tokens"] = hidden
        finish = getattr(choice, "finish_reason", None)
        return Generation(text=text, finish_reason=finish, usage=counts or None, logprobs=lps)
