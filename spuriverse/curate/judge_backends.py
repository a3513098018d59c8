"""The two judge backends of curation stage 2 (registered in `spuriverse.curate.judges`): an
OpenAI-compatible endpoint (`openai`) or a local HF model (`hf`).

Both answer one `JudgeRequest` with one `JudgeResult`, whose output is validated by the same
pydantic model (`JudgeOutput`):

- `OpenAIJudge`: one structured-output request (`response_format` = the strict JSON schema of
  `JudgeOutput`) through the async `openai` client (its own retries off). API faults are retried by
  `spuriverse.remote`'s policy, at most `max_retries` times; an answer that is not valid JSON or
  breaks the schema (or a refusal) is asked again at once, on its own budget of `max_retries`.
  The API key lives only in the client; it is scrubbed from every error message.
  Servers that reject or ignore `json_schema` (a 400 naming the field, or a reply that holds no JSON
  at all) are met by degrading, once per judge, to `json_object` with the schema in the system prompt,
  then to the schema in the prompt alone; the output is validated by pydantic either way, and each
  result records the mode it was answered in (`JudgeResult.mode`, summed in judge_summary.json).
- `HFJudge`: a local model (an HF folder, hub id or registry alias, through
  `spuriverse.models.registry`) generates text; the first JSON object in it is validated. Decoding is
  greedy, so a retry of invalid output rarely helps; it is still bounded by `max_retries`.

Tokens are summed over every attempt (paid for either way).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import threading
from typing import Any

import openai
from pydantic import ValidationError

from spuriverse.curate.judges import JudgeOptions, JudgeRequest, JudgeResult
from spuriverse.models.base import Request
from spuriverse.models.registry import ModelSpec, build_model, resolve_model
from spuriverse.remote import RemoteFailure, RetryPolicy, Transient, call_async, data_url, openai_transient
from spuriverse.schema import JudgeOutput

__all__ = ["HFJudge", "InvalidOutput", "OpenAIJudge", "extract_json", "hf_judge", "judge_schema", "openai_judge",
           "parse_output", "response_format"]

SCHEMA_NAME = "spurious_correlation_verdict"
# Structured-output modes, strongest first: a server that refuses or ignores one gets the next.
OUTPUT_MODES = ("json_schema", "json_object", "prompt")
SCHEMA_INSTRUCTION = ("\n\nReply with one JSON object and nothing else. It must validate against this JSON "
                      "Schema:\n{schema}")
_REJECTS_FORMAT = re.compile(r"response_format|json_schema|json_object|structured", re.I)


class InvalidOutput(ValueError):
    """The judge answered, but not with a JSON object that validates as `JudgeOutput`."""


def _strictify(node: Any) -> Any:
    if isinstance(node, dict):
        props = node.get("properties")
        node = {k: _strictify(v) for k, v in node.items() if k not in ("title", "default", "properties")}
        if isinstance(props, dict):  # property names are not keywords: keep them all
            node["properties"] = {k: _strictify(v) for k, v in props.items()}
        if node.get("type") == "object" and "properties" in node:
            node["required"] = list(node["properties"])
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strictify(v) for v in node]
    return node


def judge_schema() -> dict[str, Any]:
    """`JudgeOutput`'s JSON schema made strict-compatible: every property required, no extras."""
    return _strictify(copy.deepcopy(JudgeOutput.model_json_schema()))


def response_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": judge_schema()}}


def extract_json(text: str) -> str | None:
    """The first balanced `{...}` in `text` that parses as a JSON object (code fences, prose around it
    are fine), else None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return text[start:end]
        start = text.find("{", start + 1)
    return None


def parse_output(text: str | None) -> JudgeOutput:
    """Validate a judge's answer; raise `InvalidOutput` with a short reason."""
    if not text or not text.strip():
        raise InvalidOutput("empty answer")
    try:
        return JudgeOutput.model_validate_json(text)
    except ValidationError:
        found = extract_json(text)
    if found is None:
        raise InvalidOutput(f"no JSON object in the answer: {text[:120]!r}")
    try:
        return JudgeOutput.model_validate_json(found)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise InvalidOutput(f"schema violation ({exc.error_count()} error(s); {where}: {first['msg']})") from None


def _add_usage(total: dict[str, int], usage: Any) -> None:
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        val = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
        if isinstance(val, int):
            total[key] = total.get(key, 0) + val


def _fail(what: str, attempts: int, usage: dict[str, int]) -> JudgeResult:
    msg = f"{what[:400]} (after {attempts} attempt{'s' if attempts != 1 else ''})"
    return JudgeResult(error=msg, attempts=attempts, usage=usage or None)


class OpenAIJudge:
    """A judge behind an OpenAI-compatible `/chat/completions` endpoint (structured outputs)."""

    needs_pixels = False

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, max_retries: int = 3,
                 timeout: float = 120.0, max_tokens: int = 1024, temperature: float = 0.0, backoff_base: float = 0.5,
                 backoff_max: float = 20.0) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("no API key for the judge: set OPENAI_API_KEY or pass --api-key")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.name, self.model, self.base_url = model, model, base_url
        self.max_retries, self.timeout, self.max_tokens, self.temperature = max_retries, timeout, max_tokens, temperature
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._key = key
        self._scrub = lambda text: text.replace(key, "***")
        self._client: openai.AsyncOpenAI | None = None
        self._policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max)
        self.mode = OUTPUT_MODES[0]

    def _degrade(self, failed: str) -> None:
        """Step down from `failed` (once: concurrent requests that saw the same fault do not skip a mode)."""
        if self.mode == failed and failed != OUTPUT_MODES[-1]:
            self.mode = OUTPUT_MODES[OUTPUT_MODES.index(failed) + 1]

    def params(self, req: JudgeRequest, mode: str) -> dict[str, Any]:
        """The request body for `req` in structured-output `mode`."""
        messages = self.messages(req)
        params: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                  "max_tokens": self.max_tokens}
        if mode == "json_schema":
            params["response_format"] = response_format()
        else:
            messages[0]["content"] += SCHEMA_INSTRUCTION.format(schema=json.dumps(judge_schema(), sort_keys=True))
            if mode == "json_object":
                params["response_format"] = {"type": "json_object"}
        return params

    def __repr__(self) -> str:  # never the key
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    async def open(self) -> None:
        self._client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url, max_retries=0, timeout=self.timeout)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def close(self) -> None:
        """Nothing to free: the client is closed by `aclose`."""

    @staticmethod
    def messages(req: JudgeRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if req.image is not None:
            content.append({"type": "image_url", "image_url": {"url": data_url(req.image.data, req.image.mime)}})
        content.append({"type": "text", "text": req.user})
        return [{"role": "system", "content": req.system}, {"role": "user", "content": content}]

    async def ask(self, req: JudgeRequest) -> JudgeResult:
        assert self._client is not None, "call open() first"
        client = self._client
        usage: dict[str, int] = {}
        used = [self.mode]

        async def attempt(n: int) -> JudgeResult:
            mode = used[0] = self.mode
            try:
                completion = await client.chat.completions.create(**self.params(req, mode))
            except Exception as exc:
                if (isinstance(exc, openai.BadRequestError) and mode != OUTPUT_MODES[-1]
                        and _REJECTS_FORMAT.search(str(exc))):
                    self._degrade(mode)  # the server refuses this response_format: ask in the next mode
                    raise Transient(f"the server refused response_format {mode}: {exc}", delay=0.0,
                                    kind="invalid") from None
                verdict = openai_transient(exc, self.backoff_max)
                if verdict is None:
                    raise
                raise verdict from None
            _add_usage(usage, getattr(completion, "usage", None))
            content = None
            try:
                choices = getattr(completion, "choices", None)
                if not isinstance(choices, list) or not choices:
                    raise InvalidOutput("no choices in the response")
                message = getattr(choices[0], "message", None)
                refusal = getattr(message, "refusal", None)
                if refusal:
                    raise InvalidOutput(f"refusal: {refusal}")
                content = getattr(message, "content", None)
                output = parse_output(content)
            except InvalidOutput as exc:  # asked again at once, on its own budget
                if mode == "json_schema" and extract_json(content or "") is None:
                    self._degrade(mode)  # no JSON at all under a strict schema: the server ignored it
                raise Transient(f"invalid output: {exc}", delay=0.0, kind="invalid") from None
            return JudgeResult(output=output, attempts=n, usage=usage or None, mode=mode)

        try:
            return await call_async(self._policy, attempt)
        except RemoteFailure as fail:
            return JudgeResult(error=self._scrub(fail.message), attempts=fail.attempts, usage=usage or None,
                               mode=used[0])


class HFJudge:
    """A local model as judge: greedy generation, then the first JSON object is validated."""

    needs_pixels = True

    def __init__(self, spec: str, *, max_retries: int = 1, max_new_tokens: int = 512, revision: str | None = None,
                 **overrides: Any) -> None:
        resolved = resolve_model(spec, revision=revision)
        if resolved.backend != "hf":
            raise ValueError(f"{spec!r} is not a local HF model (backend {resolved.backend!r})")
        self.name = resolved.alias
        self.max_retries, self.max_new_tokens = max_retries, max_new_tokens
        self.model = build_model(resolved, **overrides)
        self._lock = threading.Lock()  # one generate at a time

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        self.model.close()

    def _generate(self, req: JudgeRequest) -> Any:
        r = Request(system=req.system, prompt=req.user, image=req.image, letters=("A", "B"),
                    max_new_tokens=self.max_new_tokens, key=req.candidate_id)
        with self._lock:
            return next(iter(self.model.generate([r])))[1]

    async def ask(self, req: JudgeRequest) -> JudgeResult:
        attempts = 0
        usage: dict[str, int] = {}
        while True:
            attempts += 1
            gen = await asyncio.to_thread(self._generate, req)
            if gen.usage:
                _add_usage(usage, gen.usage)
            if gen.error is not None:
                return _fail(f"model error: {gen.error.message}", attempts, usage)
            try:
                return JudgeResult(output=parse_output(gen.text), attempts=attempts, usage=usage or None)
            except InvalidOutput as exc:
                if attempts > self.max_retries:
                    return _fail(f"invalid output: {exc}", attempts, usage)


def openai_judge(spec: str, resolved: ModelSpec | None, o: JudgeOptions) -> OpenAIJudge:
    """The `openai` judge backend: `spec` is the served model name (`openai:` stripped), or a registry
    alias of an API model (its checkpoint is the name)."""
    name = resolved.checkpoint if resolved is not None else spec.removeprefix("openai:")
    return OpenAIJudge(name, base_url=o.base_url, api_key=o.api_key, max_retries=o.max_retries, timeout=o.timeout,
                       max_tokens=o.max_tokens, temperature=o.temperature)


def hf_judge(spec: str, resolved: ModelSpec | None, o: JudgeOptions) -> HFJudge:
    """The `hf` judge backend: a local HF model (folder, hub id or registry alias)."""
    return HFJudge(spec, max_retries=o.max_retries, max_new_tokens=o.max_tokens, revision=o.revision,
                   device=o.device, dtype=o.dtype)
