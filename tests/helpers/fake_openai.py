"""A loopback OpenAI-compatible chat-completions server for tests and benchmarks.

In-process::

    with FakeOpenAIServer(latency=0.01, faults=lambda i, body: "429" if i % 7 == 0 else None) as srv:
        client = AsyncOpenAI(base_url=srv.base_url, api_key="x")
        ...
        srv.requests, srv.n_requests, srv.max_in_flight, srv.status_counts

As a separate process (so a benchmark's client does not share the GIL with the server)::

    python tests/helpers/fake_openai.py --port 0 --latency 0.1
    # first stdout line: http://127.0.0.1:PORT/v1

Default answers are deterministic: the letter is picked from a hash of the user text among the
letters the prompt shows as "(X)", and the answer reads "(X)". The first token is "(X" and its
top_logprobs hold the chosen letter (highest) plus the other letters in several spellings.

Faults: `faults(request_index, body)` returns None or one of
"429" (with `retry-after-ms`), "500", "503", "timeout" (sleep `hang_s`, longer than the client's
timeout, then answer), "garbage" (200, not JSON), "garbage_json" (200, JSON without choices),
"empty_choices" (200, `choices: []`), "no_content" (200, message content null),
"refusal" (200, content null and a `refusal` message, as structured outputs refuse),
"400", "400_logprobs" (400 that names logprobs), "400_response_format" (400 that names
response_format, as servers without structured outputs answer), "401", "404".

Provider behaviour (`tests/helpers/fake_providers.py`): `validate(body)` returns None or a
`(message, param)` that is answered 400 as the real provider rejects such a request;
`reasoning_tokens` hidden tokens are spent before the answer, out of the same
`max_completion_tokens` budget, and reported in `usage.completion_tokens_details` (o-series).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

try:
    from helpers.loopback import LoopbackHandler, LoopbackServer
except ImportError:  # run as a script: python tests/helpers/<this file>
    from loopback import LoopbackHandler, LoopbackServer

Fault = str | None
FaultFn = Callable[[int, dict[str, Any]], Fault]
AnswerFn = Callable[[dict[str, Any]], str]
ValidateFn = Callable[[dict[str, Any]], "tuple[str, str | None] | None"]

_OPTION_RE = re.compile(r"\(([A-Z])\)")
_PATHS = ("/v1/chat/completions", "/chat/completions")


def user_text(body: dict[str, Any]) -> str:
    """Concatenated text parts of the last user message."""
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


def shown_letters(body: dict[str, Any]) -> list[str]:
    """Letters the prompt offers as "(X)", in order; A-D when none are shown."""
    found = list(dict.fromkeys(_OPTION_RE.findall(user_text(body))))
    return found or ["A", "B", "C", "D"]


def default_answer(body: dict[str, Any]) -> str:
    """Deterministic: a letter chosen by a hash of the user text, answered as "(X)"."""
    letters = shown_letters(body)
    h = int.from_bytes(hashlib.sha256(user_text(body).encode()).digest()[:4], "big")
    return f"({letters[h % len(letters)]})"


def _tokenize(text: str) -> list[str]:
    """A toy tokenizer: "(B) because" -> ["(B", ")", " because"]."""
    toks = re.findall(r"\(?[A-Za-z0-9]+|\s+[^\s()]+|\s+|[^\sA-Za-z0-9]", text)
    return toks or [text]


def _lp(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def build_completion(body: dict[str, Any], text: str, with_logprobs: bool, idx: int,
                     reasoning_tokens: int = 0) -> dict[str, Any]:
    """A chat.completion JSON body whose first-token top_logprobs agree with `text`; hidden
    `reasoning_tokens` come out of the token budget first."""
    toks = _tokenize(text)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if limit is not None and len(toks) + reasoning_tokens > int(limit):
        toks, finish = toks[: max(0, int(limit) - reasoning_tokens)], "length"
    content = "".join(toks)
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None},
        "finish_reason": finish,
        "logprobs": None,
    }
    if with_logprobs and body.get("logprobs"):
        k = int(body.get("top_logprobs") or 0)
        first = toks[0] if toks else ""
        chosen = first.lstrip("(").strip()
        alts: list[dict[str, Any]] = [_lp(first, -0.05)]
        letters = shown_letters(body)
        others = [x for x in letters if x != chosen] if chosen in letters else []
        for j, letter in enumerate(others):
            alts.append(_lp(f"({letter}", -2.0 - j))
            alts.append(_lp(letter, -2.5 - j))  # a second spelling, lower: max must win
        if chosen in letters:
            alts.append(_lp(f" {chosen}", -4.0))
        alts += [_lp(" The", -9.0), _lp("\n", -10.0)]
        entries = [{**_lp(first, -0.05), "top_logprobs": alts[:k]}]
        entries += [{**_lp(t, -0.01), "top_logprobs": [_lp(t, -0.01)][:k]} for t in toks[1:]]
        choice["logprobs"] = {"content": entries, "refusal": None}
    n_prompt = len(json.dumps(body.get("messages", []))) // 4
    n_out = len(toks) + reasoning_tokens
    usage: dict[str, Any] = {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}
    if reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return {
        "id": f"chatcmpl-fake-{idx}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [choice],
        "usage": usage,
    }


class _Handler(LoopbackHandler):
    def _error(self, status: int, message: str, param: str | None = None, headers: dict | None = None) -> None:
        err = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
        self._send(status, json.dumps(err).encode(), headers=headers)

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _post(self) -> None:
        owner: FakeOpenAIServer = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] not in _PATHS:
            self._error(404, f"unknown path {self.path}")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "body is not JSON")
            return
        idx = owner._enter(body)
        try:
            if owner.require_key is not None and self.headers.get("Authorization") != f"Bearer {owner.require_key}":
                owner._count(401)
                given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                self._error(401, f"Incorrect API key provided: {given}.")  # echoes it, as some servers do
                return
            fault = owner.faults(idx, body) if owner.faults else None
            if fault == "timeout":
                time.sleep(owner.hang_s)
            elif owner.latency:
                time.sleep(owner.latency)
            if fault == "400":
                owner._count(400)
                self._error(400, "Invalid request.")
                return
            if fault == "400_response_format":
                owner._count(400)
                kind = (body.get("response_format") or {}).get("type")
                self._error(400, f"response_format type {kind!r} is not supported", param="response_format")
                return
            invalid = owner.validate(body) if owner.validate else None
            if invalid is not None:
                owner._count(400)
                self._error(400, invalid[0], param=invalid[1])
                return
            if fault == "400_logprobs" or (owner.logprobs == "reject" and body.get("logprobs")):
                owner._count(400)
                self._error(400, "logprobs is not supported with this model", param="logprobs")
                return
            if fault in ("429", "500", "503", "401", "404"):
                status = int(fault)
                owner._count(status)
                hdr = {"retry-after-ms": str(owner.retry_after_ms)} if status == 429 else None
                self._error(status, f"fake fault {status}", headers=hdr)
                return
            owner._count(200)
            if fault == "garbage":
                self._send(200, b"<html>upstream hiccup</html>", ctype="application/json")
                return
            if fault == "garbage_json":
                self._send(200, b'{"object": "chat.completion", "oops": true}')
                return
            text = owner.answer_fn(body)
            out = build_completion(body, text, owner.logprobs is True, idx, owner.reasoning_tokens)
            if fault == "empty_choices":
                out["choices"] = []
            elif fault == "no_content":
                out["choices"][0]["message"]["content"] = None
            elif fault == "refusal":
                out["choices"][0]["message"].update(content=None, refusal="I'm sorry, I can't help with that.")
            self._send(200, json.dumps(out).encode())
        finally:
            owner._leave()


class FakeOpenAIServer(LoopbackServer):
    """Context manager running the fake server on a daemon thread.

    Counters: `n_requests`, `in_flight`, `max_in_flight`, `status_counts` (HTTP status -> count);
    `requests` holds every received JSON body in arrival order.
    """

    def __init__(
        self,
        latency: float = 0.0,
        faults: FaultFn | None = None,
        answer_fn: AnswerFn | None = None,
        logprobs: bool | str = True,
        require_key: str | None = None,
        *,
        validate: ValidateFn | None = None,
        reasoning_tokens: int = 0,
        hang_s: float = 2.0,
        retry_after_ms: int = 10,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`logprobs`: True (return them when asked), False (never), "reject" (400 when asked)."""
        self.latency, self.faults, self.logprobs = latency, faults, logprobs
        self.answer_fn: AnswerFn = answer_fn or default_answer
        self.require_key, self.hang_s, self.retry_after_ms = require_key, hang_s, retry_after_ms
        self.validate, self.reasoning_tokens = validate, reasoning_tokens
        super().__init__(_Handler, host, port)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"




def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server (prints base URL first).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds to sleep per request")
    p.add_argument("--no-logprobs", action="store_true", help="never return log-probs")
    args = p.parse_args(argv)
    srv = FakeOpenAIServer(latency=args.latency, logprobs=not args.no_logprobs, host=args.host, port=args.port)
    print(srv.base_url, flush=True)
    try:
        srv._httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv._httpd.server_close()


if __name__ == "__main__":
    main()
