"""A loopback fake of two image APIs, for tests: OpenAI Images and Stability's REST v2beta.

    with FakeImagesServer(faults=lambda i, path, fields: "429" if i == 0 else None) as srv:
        OpenAI(base_url=srv.openai_base_url, api_key="x").images.generate(...)
        httpx2.post(f"{srv.stability_base_url}/v2beta/stable-image/generate/ultra", ...)
        srv.requests, srv.uploads, srv.n_requests, srv.max_in_flight, srv.status_counts

Routes: OpenAI `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart), answering
`{"created", "data": [{"b64_json" | "url", "revised_prompt"}]}` (`url` when `response_format="url"`
or `openai_url=True`, served by `GET /files/<n>.png`); a `gpt-image-*` model rejects `response_format` with a 400, as the
real API does. Stability `POST /v2beta/stable-image/generate/{ultra,core,sd3}` and
`/v2beta/stable-image/edit/inpaint` (multipart) answer image bytes with `finish-reason` and `seed`
headers, or JSON `{"name", "errors"}` on errors.

Images are deterministic: `fake_image(prompt, seed, size)` is a colour from a hash of (prompt,
seed) with the prompt's first letters drawn. Edits apply the mask: OpenAI repaints where the mask
PNG is transparent, Stability where the mask is white; every other pixel is the source's.

Faults: `faults(request_index, path, fields)` returns None or "429" (with `retry-after-ms`), "500",
"503", "timeout" (sleep `hang_s`, then answer normally), "garbage" (200 that is neither JSON nor an
image), "400", "401", "refuse" (OpenAI: 400 `content_policy_violation`; Stability: the style in
`stability_refusal`, "header" = 200 with `finish-reason: CONTENT_FILTERED` and a blurred image,
"403" = 403 `content_moderation` JSON), "refuse_header", "refuse_403" (Stability, that style),
"moderation_blocked" (OpenAI: 400 with that code).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any

try:
    from helpers.loopback import LoopbackHandler, LoopbackServer
except ImportError:  # run as a script: python tests/helpers/<this file>
    from loopback import LoopbackHandler, LoopbackServer

from PIL import Image, ImageDraw, ImageFilter

Fault = str | None
FaultFn = Callable[[int, str, dict[str, Any]], Fault]

OPENAI_PATHS = ("/v1/images/generations", "/v1/images/edits")
STABILITY_PATHS = (
    "/v2beta/stable-image/generate/ultra",
    "/v2beta/stable-image/generate/core",
    "/v2beta/stable-image/generate/sd3",
    "/v2beta/stable-image/edit/inpaint",
)
OPENAI_REFUSAL = "Your request was rejected as a result of our safety system."
STABILITY_REFUSAL = "Your request was flagged by our content moderation system, as a result your request was denied."
RATIOS = {"1:1": (1, 1), "16:9": (16, 9), "21:9": (21, 9), "2:3": (2, 3), "3:2": (3, 2), "4:5": (4, 5),
          "5:4": (5, 4), "9:16": (9, 16), "9:21": (9, 21)}


def fake_image(prompt: str, seed: int | None, size: tuple[int, int]) -> Image.Image:
    """RGB image: a colour from a hash of (prompt, seed), a seed-placed bar, the prompt's first letters."""
    h = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    img = Image.new("RGB", size, (h[0], h[1], h[2]))
    draw = ImageDraw.Draw(img)
    w, ht = size
    x = h[3] % max(1, w // 2)
    draw.rectangle([x, ht // 2, x + max(1, w // 4), ht - 1], fill=(255 - h[0], 255 - h[1], 255 - h[2]))
    draw.text((2, 2), prompt[:6], fill=(255 - h[0], 255 - h[1], 255 - h[2]))
    return img


def encode(img: Image.Image, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format={"jpg": "jpeg"}.get(fmt, fmt).upper())
    return buf.getvalue()


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(text fields, files) of a multipart/form-data body; files: name -> {filename, content_type, data}."""
    boundary = None
    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip('"')
    if not boundary:
        raise ValueError("multipart body without boundary")
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        params = {}
        for item in headers.get("content-disposition", "").split(";")[1:]:
            k, _, v = item.strip().partition("=")
            params[k.lower()] = v.strip('"')
        name = params.get("name", "")
        if "filename" in params:
            ctype = headers.get("content-type", "application/octet-stream")
            files[name] = {"filename": params["filename"], "content_type": ctype, "data": data}
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _size(text: str | None, default: tuple[int, int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in (text or "").lower().split("x"))
        return (w, h)
    except ValueError:
        return default


class _Handler(LoopbackHandler):
    def _send(self, status: int, payload: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        super()._send(status, payload, ctype, headers)
        self.server.owner._count(status)

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def do_GET(self) -> None:  # noqa: N802 - served `url` results
        owner: FakeImagesServer = self.server.owner
        key = self.path.split("?")[0].removeprefix("/files/")
        try:
            data = owner._files.get(key)
            if data is None:
                self._json(404, {"error": {"message": "no such file"}})
            else:
                self._send(200, data, ctype="image/png")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _post(self) -> None:
        owner: FakeImagesServer = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        openai_api = path in OPENAI_PATHS
        if not openai_api and path not in STABILITY_PATHS:
            self._json(404, {"error": {"message": f"unknown path {path}"}})
            return
        ctype = self.headers.get("Content-Type", "")
        try:
            if ctype.startswith("multipart/form-data"):
                fields, files = parse_multipart(raw, ctype)
            else:
                fields, files = json.loads(raw), {}
        except ValueError as exc:
            self._json(400, {"error": {"message": f"bad body: {exc}"}, "name": "bad_request", "errors": [str(exc)]})
            return
        meta = {k: {"filename": f["filename"], "content_type": f["content_type"], "size": len(f["data"])}
                for k, f in files.items()}
        record = {"path": path, "fields": fields, "files": meta, "accept": self.headers.get("Accept")}
        idx = owner._enter(record, {k: f["data"] for k, f in files.items()})
        try:
            if owner.require_key is not None and self.headers.get("Authorization") != f"Bearer {owner.require_key}":
                given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                msg = f"Incorrect API key provided: {given}."  # echoes it, as some servers do
                self._json(401, {"error": {"message": msg, "code": "invalid_api_key"}, "name": "unauthorized",
                                 "errors": [msg]})
                return
            fault = owner.faults(idx, path, fields) if owner.faults else None
            if fault == "timeout":
                time.sleep(owner.hang_s)
            elif owner.latency:
                time.sleep(owner.latency)
            if fault in ("429", "500", "503", "400", "401"):
                status = int(fault)
                hdr = {"retry-after-ms": str(owner.retry_after_ms)} if status == 429 else None
                msg = f"fake fault {status}"
                self._json(status, {"error": {"message": msg, "type": "fake", "code": None},
                                    "name": "fake_fault", "errors": [msg]}, headers=hdr)
                return
            if fault == "garbage":
                self._send(200, b"<html>upstream hiccup</html>", ctype="application/json" if openai_api else "image/png")
                return
            if openai_api:
                self._openai(idx, path, fields, files, fault)
            else:
                self._stability(path, fields, files, fault)
        finally:
            owner._leave()

    # ------------------------------------------------------------------ OpenAI
    def _openai(self, idx: int, path: str, fields: dict, files: dict, fault: Fault) -> None:
        owner: FakeImagesServer = self.server.owner
        if fault in ("refuse", "moderation_blocked"):
            code = "moderation_blocked" if fault == "moderation_blocked" else "content_policy_violation"
            self._json(400, {"error": {"code": code, "message": OPENAI_REFUSAL, "param": None,
                                       "type": "image_generation_user_error"}})
            return
        model = str(fields.get("model") or "dall-e-2")
        fmt = fields.get("response_format")
        if fmt is not None and model.startswith("gpt-image"):
            self._json(400, {"error": {"code": "unknown_parameter", "param": "response_format",
                                       "message": "Unknown parameter: 'response_format'.",
                                       "type": "invalid_request_error"}})
            return
        prompt = str(fields.get("prompt", ""))
        size = _size(fields.get("size"), (64, 64))
        img = fake_image(prompt, None, size)
        if path.endswith("/edits"):
            src = Image.open(io.BytesIO(files["image"]["data"])).convert("RGB")
            img = fake_image(prompt, None, src.size)
            if "mask" in files:
                alpha = Image.open(io.BytesIO(files["mask"]["data"])).convert("RGBA").getchannel("A")
                img = Image.composite(src, img, alpha.point(lambda a: 255 if a > 0 else 0))  # opaque: source
        png = encode(img)
        item: dict[str, Any] = {"revised_prompt": f"{prompt} (revised)"}
        if fmt == "url" or owner.openai_url:
            owner._files[f"{idx}.png"] = png
            host, port = self.server.server_address[:2]
            item["url"] = f"http://{host}:{port}/files/{idx}.png"
        else:
            item["b64_json"] = base64.b64encode(png).decode("ascii")
        self._json(200, {"created": int(time.time()), "data": [item]})

    # ------------------------------------------------------------------ Stability
    def _stability(self, path: str, fields: dict, files: dict, fault: Fault) -> None:
        owner: FakeImagesServer = self.server.owner
        style = {"refuse": owner.stability_refusal, "refuse_header": "header", "refuse_403": "403"}.get(fault or "")
        if style == "403":
            self._json(403, {"id": "fake-403", "name": "content_moderation", "errors": [STABILITY_REFUSAL]})
            return
        prompt = fields.get("prompt", "")
        if not prompt:
            self._json(400, {"id": "fake-400", "name": "bad_request", "errors": ["prompt: is required"]})
            return
        seed = int(fields.get("seed") or 0) or random.randrange(1, 2**32 - 1)  # 0 = random, as the API does
        fmt = fields.get("output_format", "png")
        if path.endswith("/inpaint"):
            src = Image.open(io.BytesIO(files["image"]["data"])).convert("RGB")
            img = fake_image(prompt, seed, src.size)
            if "mask" in files:
                mask = Image.open(io.BytesIO(files["mask"]["data"])).convert("L").resize(src.size)
                img = Image.composite(img, src, mask.point(lambda v: 255 if v >= 128 else 0))  # white: new
        else:
            a, b = RATIOS.get(fields.get("aspect_ratio", "1:1"), (1, 1))
            img = fake_image(prompt, seed, (round(96 * a / max(a, b)), round(96 * b / max(a, b))))
        reason = "SUCCESS"
        if style == "header":
            img, reason = img.filter(ImageFilter.GaussianBlur(8)), "CONTENT_FILTERED"
        self._send(200, encode(img, fmt), ctype=f"image/{fmt}", headers={"finish-reason": reason, "seed": str(seed)})


class FakeImagesServer(LoopbackServer):
    """Context manager running the fake on a daemon thread.

    `requests[i]`: {"path", "fields" (form fields or JSON body), "files" (name -> filename, content
    type, size), "accept"}; `uploads[i]`: name -> the uploaded bytes. Counters: `n_requests`,
    `in_flight`, `max_in_flight`, `status_counts` (HTTP status -> count).
    """

    def __init__(
        self,
        latency: float = 0.0,
        faults: FaultFn | None = None,
        require_key: str | None = None,
        *,
        stability_refusal: str = "header",
        openai_url: bool = False,
        hang_s: float = 2.0,
        retry_after_ms: int = 10,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if stability_refusal not in ("header", "403"):
            raise ValueError("stability_refusal: 'header' or '403'")
        self.latency, self.faults, self.require_key = latency, faults, require_key
        self.openai_url = openai_url  # answer `url` results even when base64 was asked for
        self.stability_refusal, self.hang_s, self.retry_after_ms = stability_refusal, hang_s, retry_after_ms
        self.uploads: list[dict[str, bytes]] = []
        self._files: dict[str, bytes] = {}
        super().__init__(_Handler, host, port)

    @property
    def root_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def stability_base_url(self) -> str:
        return self.root_url

    def paths(self) -> list[str]:
        with self._lock:
            return [r["path"] for r in self.requests]

    def _enter(self, record: dict[str, Any], uploads: dict[str, bytes]) -> int:  # type: ignore[override]
        with self._lock:
            self.uploads.append(uploads)
            return self._enter_locked(record)
