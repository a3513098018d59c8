"""Image-API synthesis backends: OpenAI Images (generate / masked edit) and Stability AI REST v2beta
(generate / inpaint).

Both run the requests of one `generate()` call on a thread pool (`concurrency` at a time) and return
one `SynthResult` per request, in request order. Retries: `spuriverse.remote`'s policy (the clients'
own are off): 408/409/429 (honouring `retry-after(-ms)`), 5xx, timeouts, connection errors and, here,
unusable 200s. Other 4xx fail at once — except a provider content
filter, which is `refused` with `safety="provider-filter"` and the provider's own message. The API
key lives only in the HTTP client and is scrubbed from every message; it is never part of a repr.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import openai
from openai import OpenAI
from PIL import Image

from spuriverse.remote import RemoteFailure, RetryPolicy, Transient, call_sync, retry_after, retryable_status
from spuriverse.synth.base import PromptStyle, SynthRequest, SynthResult, SynthStatus

_POLICY_CODES = {"content_policy_violation", "moderation_blocked", "content_filter", "safety_violation"}
_POLICY_WORDS = ("content policy", "content_policy", "safety system", "moderation", "content filter", "safety policy")
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")


_Outcome = tuple[SynthStatus, "Image.Image | None", "str | None", dict]  # (status, image, message, extra)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def binary_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Mode "L" at `size`: 255 where `mask` is white (>= 128: may be repainted), 0 elsewhere (kept)."""
    m = mask.convert("L")
    m = m if m.size == size else m.resize(size, Image.Resampling.NEAREST)
    return m.point(lambda v: 255 if v >= 128 else 0)


def alpha_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenAI's mask: RGBA, transparent (alpha 0) where `mask` is white (may be repainted), opaque elsewhere."""
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.putalpha(binary_mask(mask, size).point(lambda v: 255 - v))
    return out


def closest_aspect_ratio(width: int, height: int) -> str:
    """The Stability aspect ratio nearest (in log scale) to width:height."""
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(int(r.split(":")[0]) / int(r.split(":")[1])) - target))


def _decode(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any undecodable payload is a garbage 200
        raise Transient(f"invalid image in response ({type(exc).__name__})") from None


class _ImageAPIBackend:
    kind, label, env_var = "", "", ""
    modes: tuple[str, ...] = ("generate",)
    prompt_style: PromptStyle = "description"

    def __init__(self, model: str, *, api_key: str | None, mode: str, concurrency: int, max_retries: int,
                 timeout: float, backoff_base: float, backoff_max: float) -> None:
        key = api_key or os.environ.get(self.env_var)
        if not key:
            raise ValueError(f"no API key for the {self.label} backend: pass api_key=... or set {self.env_var}")
        if mode not in self.modes:
            raise ValueError(f"{self.label} mode must be one of {self.modes}, not {mode!r}")
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0")
        self.model_id, self.mode, self.revision = model, mode, None
        self.needs_source = self.needs_mask = mode != "generate"
        self.batch_size = self.concurrency = concurrency
        self.max_retries, self.timeout = max_retries, timeout
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._scrub = lambda text: text.replace(key, "***")  # the key itself is kept only by the client
        self._policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"{self.kind}-synth")
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_id!r}, mode={self.mode!r}, concurrency={self.concurrency})"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate(self, requests: Sequence[SynthRequest]) -> list[SynthResult]:
        """One result per request, in order; requests run `concurrency` at a time."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        reqs = list(requests)
        if self.needs_source and any(r.source is None for r in reqs):
            raise ValueError(f"{self.label} {self.mode} mode needs request.source (the image to edit)")
        return list(self._pool.map(self._one, reqs))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._close_client()

    def _one(self, req: SynthRequest) -> SynthResult:
        base = self._base_extra(req)
        try:
            payload = self._prepare(req)
        except Exception as exc:  # noqa: BLE001 - a bad request image must not sink the batch
            return self._result("failed", None, f"cannot prepare request: {type(exc).__name__}: {exc}", base, 0)
        tries = 0

        def attempt(n: int) -> SynthResult:
            nonlocal tries
            tries = n
            status, image, message, extra = self._attempt(req, payload)
            return self._result(status, image, message, {**base, **extra}, n)

        try:
            return call_sync(self._policy, attempt)
        except RemoteFailure as fail:
            return self._result("failed", None, fail.what, base, fail.attempts)
        except Exception as exc:  # noqa: BLE001 - unexpected: record it, never crash the run
            return self._result("failed", None, f"{type(exc).__name__}: {exc}", base, tries)

    def _result(self, status: SynthStatus, image: Image.Image | None, message: str | None, extra: dict,
                attempts: int) -> SynthResult:
        if message is not None:
            message = self._scrub(message)[:500]  # scrub first: a cut must not leave part of the key
            if status == "failed":
                message += f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
        extra = {k: self._scrub(v) if isinstance(v, str) else v for k, v in extra.items()}
        extra["attempts"] = attempts
        safety = "provider-filter" if status == "refused" else "n/a"
        return SynthResult(status=status, image=image, message=message, safety=safety, extra=extra)

    # subclass hooks: facts recorded for every outcome; the per-request payload (built once); one
    # attempt -> (status, image, message, extra) or raise Transient; closing the HTTP client.
    def _base_extra(self, req: SynthRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _prepare(self, req: SynthRequest) -> Any:
        raise NotImplementedError

    def _attempt(self, req: SynthRequest, payload: Any) -> _Outcome:
        raise NotImplementedError

    def _close_client(self) -> None:
        raise NotImplementedError


class OpenAIImagesBackend(_ImageAPIBackend):
    """OpenAI Images API (or a compatible server): `images.generate`, or `images.edit` with a mask.
    Not seedable: the request seed is not sent (`extra["seedable"] = False`)."""

    kind, label, env_var, modes = "openai", "OpenAI images", "OPENAI_API_KEY", ("generate", "edit")

    def __init__(self, model: str = "gpt-image-1", *, base_url: str | None = None, api_key: str | None = None,
                 mode: str = "generate", concurrency: int = 4, max_retries: int = 4, timeout: float = 120.0,
                 backoff_base: float = 0.5, backoff_max: float = 30.0, quality: str | None = None,
                 size: str | None = None) -> None:
        """`size`: sent instead of "{width}x{height}" (e.g. "auto", or a size the model allows)."""
        super().__init__(model, api_key=api_key, mode=mode, concurrency=concurrency, max_retries=max_retries,
                         timeout=timeout, backoff_base=backoff_base, backoff_max=backoff_max)
        self.base_url, self.quality, self.size = base_url, quality, size
        # gpt-image-* always answer base64 and reject `response_format`; dall-e-* need it for base64.
        self._send_format = not model.startswith("gpt-image")
        key = api_key or os.environ[self.env_var]
        self._client = OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)
        self._http = httpx2.Client(timeout=timeout, follow_redirects=True)  # `url` results, no auth header

    def _close_client(self) -> None:
        self._client.close()
        self._http.close()

    def _base_extra(self, req: SynthRequest) -> dict[str, Any]:
        return {"seedable": False, "api_size": self.size or f"{req.width}x{req.height}"}

    def _prepare(self, req: SynthRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model_id, "prompt": req.prompt, "n": 1,
                                  "size": self.size or f"{req.width}x{req.height}"}
        if self.quality is not None:
            params["quality"] = self.quality
        if self.mode == "edit":
            assert req.source is not None  # checked in generate()
            src = req.source.convert("RGBA")
            params["image"] = ("source.png", png_bytes(src), "image/png")
            if req.mask is not None:
                params["mask"] = ("mask.png", png_bytes(alpha_mask(req.mask, src.size)), "image/png")
        return params

    def _attempt(self, req: SynthRequest, payload: dict[str, Any]) -> _Outcome:
        params = {**payload, **({"response_format": "b64_json"} if self._send_format else {})}
        call = self._client.images.edit if self.mode == "edit" else self._client.images.generate
        try:
            resp = call(**params)
        except openai.BadRequestError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            provider_msg = str(body.get("message") or exc.message)
            code = str(body.get("code") or "").lower()
            if self._send_format and "response_format" in f"{provider_msg} {exc.param}".lower():
                self._send_format = False  # remembered for this instance; not a retry
                return self._attempt(req, payload)
            worded = not exc.param and any(w in provider_msg.lower() for w in _POLICY_WORDS)  # not a bad param
            if code in _POLICY_CODES or worded:
                return "refused", None, provider_msg, {"error_code": code or None}
            return "failed", None, f"HTTP 400 {code or 'bad_request'}: {provider_msg}", {}
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            what = f"HTTP {exc.status_code} {type(exc).__name__}: {body.get('message') or exc.message}"
            if not retryable_status(exc.status_code):
                return "failed", None, what, {}
            raise Transient(what, retry_after(exc.response.headers, self.backoff_max)) from None
        except openai.APIConnectionError as exc:  # includes APITimeoutError
            raise Transient(f"{type(exc).__name__}: {exc.message}") from None
        except (openai.APIResponseValidationError, ValueError, UnicodeDecodeError) as exc:
            raise Transient(f"invalid response ({type(exc).__name__})") from None
        data = getattr(resp, "data", None)
        if not data:
            raise Transient("invalid response (no data)")
        item = data[0]
        if item.b64_json:
            try:
                raw = base64.b64decode(item.b64_json, validate=True)
            except ValueError:
                raise Transient("invalid response (bad base64)") from None
        elif item.url:
            raw = self._fetch(item.url)
        else:
            raise Transient("invalid response (neither b64_json nor url)")
        extra: dict[str, Any] = {"revised_prompt": item.revised_prompt} if item.revised_prompt else {}
        return "ok", _decode(raw), None, extra

    def _fetch(self, url: str) -> bytes:
        try:
            r = self._http.get(url)
        except httpx2.TransportError as exc:
            raise Transient(f"fetching the result url: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise Transient(f"fetching the result url: HTTP {r.status_code}")
        return r.content


class StabilityBackend(_ImageAPIBackend):
    """Stability AI REST v2beta: text-to-image (ultra / core / sd3*) or inpainting. Seedable: the
    request seed is sent and the seed the server reports is recorded (`extra["seed"]`)."""

    kind, label, env_var, modes = "stability", "Stability", "STABILITY_API_KEY", ("generate", "inpaint")

    def __init__(self, model: str = "stable-image-ultra", *, base_url: str = "https://api.stability.ai",
                 api_key: str | None = None, mode: str = "generate", output_format: str = "png",
                 concurrency: int = 4, max_retries: int = 4, timeout: float = 120.0, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, grow_mask: int = 0) -> None:
        """`grow_mask`: inpaint mask growth in pixels (the API's default is 5; 0 keeps the edit inside the mask)."""
        super().__init__(model, api_key=api_key, mode=mode, concurrency=concurrency, max_retries=max_retries,
                         timeout=timeout, backoff_base=backoff_base, backoff_max=backoff_max)
        if output_format not in ("png", "jpeg", "webp"):
            raise ValueError("output_format: png, jpeg or webp")
        name = model.lower()
        if mode == "inpaint":
            self._path, self._model_field = "/v2beta/stable-image/edit/inpaint", None
        elif name in ("stable-image-ultra", "ultra"):
            self._path, self._model_field = "/v2beta/stable-image/generate/ultra", None
        elif name in ("stable-image-core", "core"):
            self._path, self._model_field = "/v2beta/stable-image/generate/core", None
        elif name.startswith("sd3"):
            self._path, self._model_field = "/v2beta/stable-image/generate/sd3", model
        else:
            raise ValueError(f"unknown Stability model {model!r}: stable-image-ultra, stable-image-core or sd3*")
        self.base_url, self.output_format, self.grow_mask = base_url.rstrip("/"), output_format, grow_mask
        key = api_key or os.environ[self.env_var]
        self._client = httpx2.Client(base_url=self.base_url, timeout=timeout,
                                     headers={"Authorization": f"Bearer {key}", "Accept": "image/*"})

    def _close_client(self) -> None:
        self._client.close()

    def _base_extra(self, req: SynthRequest) -> dict[str, Any]:
        extra: dict[str, Any] = {"seedable": True, "endpoint": self._path.rsplit("/", 1)[-1]}
        if self.mode == "generate":
            extra["aspect_ratio"] = closest_aspect_ratio(req.width, req.height)
        return extra

    def _prepare(self, req: SynthRequest) -> tuple[dict[str, str], dict[str, Any]]:
        data = {"prompt": req.prompt, "seed": str(req.seed), "output_format": self.output_format}
        if req.negative_prompt and "turbo" not in self.model_id.lower():  # turbo models reject it
            data["negative_prompt"] = req.negative_prompt
        if self._model_field:
            data.update(model=self._model_field, mode="text-to-image")
        if self.mode == "generate":
            data["aspect_ratio"] = closest_aspect_ratio(req.width, req.height)
            return data, {"none": ("", b"")}  # the API wants multipart even without files
        assert req.source is not None  # checked in generate()
        src = req.source.convert("RGB")
        files: dict[str, Any] = {"image": ("image.png", png_bytes(src), "image/png")}
        if req.mask is not None:  # white = repaint, black = keep (grey would repaint partly: binarised)
            files["mask"] = ("mask.png", png_bytes(binary_mask(req.mask, src.size)), "image/png")
        data["grow_mask"] = str(self.grow_mask)
        return data, files

    def _attempt(self, req: SynthRequest, payload: tuple[dict[str, str], dict[str, Any]]) -> _Outcome:
        data, files = payload
        try:
            r = self._client.post(self._path, data=data, files=files)
        except httpx2.TimeoutException as exc:
            raise Transient(f"timeout ({type(exc).__name__})") from None
        except httpx2.TransportError as exc:
            raise Transient(f"connection error ({type(exc).__name__}: {exc})") from None
        if r.status_code != 200:
            name, msg = self._error_of(r)
            what = f"HTTP {r.status_code} {name or 'error'}: {msg}"
            if r.status_code == 403 and ("moderation" in name.lower() or "moderation" in msg.lower()):
                return "refused", None, msg, {"error_name": name or None}
            if retryable_status(r.status_code):
                raise Transient(what, retry_after(r.headers, self.backoff_max))
            return "failed", None, what, {}
        reason = r.headers.get("finish-reason")
        extra: dict[str, Any] = {"finish_reason": reason}
        if (seed := r.headers.get("seed")) is not None and seed.isdigit():
            extra["seed"] = int(seed)
        if reason == "CONTENT_FILTERED":
            return "refused", None, "the provider's content filter flagged the output (finish-reason: CONTENT_FILTERED)", extra
        if reason == "ERROR":
            raise Transient("finish-reason: ERROR")
        return "ok", _decode(r.content), None, extra  # we ask for image/*: any other body is garbage (retried)

    @staticmethod
    def _error_of(r: httpx2.Response) -> tuple[str, str]:
        """(name, message) of a Stability error body: `{"name": ..., "errors": [...]}`."""
        try:
            body = r.json()
        except ValueError:
            return "", r.text[:200] or f"HTTP {r.status_code}"
        if not isinstance(body, dict):
            return "", str(body)[:200]
        errors = body.get("errors")
        msg = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else body.get("message")
        if not msg and isinstance(body.get("error"), dict):
            msg = body["error"].get("message")
        return str(body.get("name") or ""), str(msg or body)[:400]
