"""The review page (`spuriverse curate review DIR`): a FastAPI app over one curation folder.

GET  /                                   the page (static/index.html, with this server's token)
GET  /api/candidates?show=spurious|all   the judged candidates, in id order, with their decisions
GET  /api/candidates/{cid}               one candidate: error, judgment, decision, synthesized images
GET  /api/candidates/{cid}/anchor        its anchor image
GET  /api/candidates/{cid}/images/{variant}/{k}   a synthesized image
POST /api/candidates/{cid}/decision      {"decision": "accept"|"reject"|"skip", + edited fields}

Safety: every POST must carry the per-server token (embedded in the page) in X-Review-Token and a
JSON body, and come from the page's own origin (Origin / Sec-Fetch-Site); when served on loopback
the Host header must be a loopback name (DNS rebinding). Images are served only for known
candidates, only raster files that resolve inside DIR. The page renders all text with textContent
and a strict Content-Security-Policy (no inline script, same-origin only) is sent with everything.
"""

from __future__ import annotations

import hmac
import ipaddress
import mimetypes
import re
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from spuriverse.curate.review import clean_list, decide, effective
from spuriverse.data.curation import ERRORS, JUDGMENTS, REVIEWS, read_jsonl
from spuriverse.locking import FolderBusy
from spuriverse.schema import CANDIDATE_ID, ErrorRecord, Judgment, ReviewDecision, SynthProvenance

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"review.js": "text/javascript", "review.css": "text/css"}
RASTER = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
MAX_BODY_BYTES = 1 << 20  # a decision is a few KB; anything near this is not one
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TOKEN_HEADER = "x-review-token"

Text = Annotated[str, StringConstraints(max_length=4000)]
Attr = Annotated[str, StringConstraints(max_length=300)]


class DecisionIn(BaseModel):
    """A POSTed decision: the person's values of the editable fields (None: left as judged)."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["accept", "reject", "skip"]
    positive: Text | None = None
    negative: Text | None = None
    core_attributes: list[Attr] | None = Field(None, max_length=50)
    spurious_attributes: list[Attr] | None = Field(None, max_length=50)

    @field_validator("core_attributes", "spurious_attributes")
    @classmethod
    def _clean(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None:
            return None
        v = clean_list(v)
        if info.field_name == "spurious_attributes" and len(v) > 2:
            raise ValueError("at most 2 spurious attributes (the top-2 cues)")
        return v

    @field_validator("positive", "negative")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return None if v is None else v.strip()


CurationRecord = TypeVar("CurationRecord", ErrorRecord, Judgment, ReviewDecision)


class _Cached(Generic[CurationRecord]):
    """A curation JSONL file as {candidate id: last record}, re-read only when it changes."""

    def __init__(self, path: Path, model: type[CurationRecord]) -> None:
        self.path = path
        self.model: type[CurationRecord] = model
        self.key: tuple[int, int] | None = None
        self.records: dict[str, CurationRecord] = {}

    def get(self) -> dict[str, CurationRecord]:
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key != self.key:
            self.records = {r.candidate_id: r for r in read_jsonl(self.path, self.model)}
            self.key = key
        return self.records


class ReviewStore:
    def __init__(self, curation_dir: Path, reviewer: str) -> None:
        self.dir = curation_dir.resolve()
        self.reviewer = reviewer
        self.errors = _Cached(self.dir / ERRORS, ErrorRecord)
        self.judgments = _Cached(self.dir / JUDGMENTS, Judgment)
        self.reviews = _Cached(self.dir / REVIEWS, ReviewDecision)
        self.lock = threading.Lock()

    def ids(self, show: str) -> list[str]:
        errors, judgments = self.errors.get(), self.judgments.get()
        return sorted(c for c, j in judgments.items() if c in errors and (show == "all" or j.spurious is True))

    def known(self, cid: str) -> tuple[ErrorRecord, Judgment]:
        if not re.fullmatch(CANDIDATE_ID, cid):
            raise HTTPException(404, "unknown candidate")
        e, j = self.errors.get().get(cid), self.judgments.get().get(cid)
        if e is None or j is None:
            raise HTTPException(404, "unknown candidate")
        return e, j

    def inside(self, path: Path) -> Path:
        """The file, if it resolves inside DIR and is a raster image; else 404."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise HTTPException(404, "no such image") from None
        if not real.is_relative_to(self.dir) or real.suffix.lower() not in RASTER or not real.is_file():
            raise HTTPException(404, "no such image")
        return real

    def images(self, cid: str) -> list[dict]:
        out = []
        for variant in ("spurious", "counter"):
            folder = self.dir / "images" / cid / variant
            for meta in sorted(folder.glob("*.json"), key=lambda p: (len(p.stem), p.stem)) if folder.is_dir() else []:
                try:
                    prov = SynthProvenance.model_validate_json(meta.read_bytes())
                except (OSError, ValidationError):
                    continue
                png = folder / f"{prov.k}.png"
                ok = prov.status == "ok" and prov.candidate_id == cid and png.is_file()
                out.append({"variant": variant, "k": prov.k, "status": prov.status, "message": prov.message,
                            "prompt": prov.prompt, "seed": prov.seed, "backend": prov.backend,
                            "model_id": prov.model_id,
                            "url": f"/api/candidates/{cid}/images/{variant}/{prov.k}" if ok else None})
        return out

    def detail(self, cid: str) -> dict:
        e, j = self.known(cid)
        review = self.reviews.get().get(cid)
        edits = review.edits if review else None
        return {
            "candidate_id": cid,
            "error": e.model_dump(),
            "anchor_url": f"/api/candidates/{cid}/anchor" if e.image else None,
            "judgment": j.model_dump(exclude={"usage"}),
            "review": review.model_dump() if review else None,
            "current": effective(j, edits),
            "edited": sorted(k for k, v in (edits.model_dump() if edits else {}).items() if v is not None),
            "images": self.images(cid),
        }

    def progress(self, ids: list[str]) -> dict:
        reviews = self.reviews.get()
        counts = {"accept": 0, "reject": 0, "skip": 0}
        for c in ids:
            if c in reviews:
                counts[reviews[c].decision] += 1
        return {"total": len(ids), "decided": sum(counts.values()), "counts": counts}


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit("//" + netloc).hostname
    except ValueError:
        return None


def _refuse(request: Request, token: str, trusted_hosts: frozenset[str] | None) -> Response | None:
    """Why this request is refused (a response), or None."""
    host = request.headers.get("host", "")
    if trusted_hosts is not None and _hostname(host) not in trusted_hosts:
        return JSONResponse({"detail": "untrusted Host header"}, 400)
    if request.method in ("GET", "HEAD"):
        return None
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != host):
        return JSONResponse({"detail": "cross-origin request refused"}, 403)
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return JSONResponse({"detail": "cross-site request refused"}, 403)
    if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, "").encode(), token.encode()):
        return JSONResponse({"detail": "missing or wrong review token"}, 403)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return JSONResponse({"detail": "the body must be JSON (application/json)"}, 415)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():  # a chunked body would have to be read to be measured
        return JSONResponse({"detail": "a Content-Length header is required"}, 411)
    if int(length) > MAX_BODY_BYTES:  # answered before a byte of the body is read
        return JSONResponse({"detail": f"the body is over {MAX_BODY_BYTES} bytes"}, 413)
    return None


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 without the offending input (FastAPI's default echoes the whole body back)."""
    assert isinstance(exc, RequestValidationError)  # the handler is registered for this class only
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()[:20]]
    return JSONResponse({"detail": errors}, 422)


def create_app(curation_dir: str | Path, reviewer: str = "", *, token: str | None = None,
               trusted_hosts: frozenset[str] | None = LOOPBACK_NAMES) -> FastAPI:
    """The review app over DIR. `trusted_hosts`: the Host names accepted (None: any, for a
    non-loopback bind). `token`: the POST token (default: a random one per app)."""
    curation_dir = Path(curation_dir)
    if not (curation_dir / JUDGMENTS).is_file():
        raise FileNotFoundError(f"{curation_dir / JUDGMENTS} not found: run `spuriverse curate judge` first")
    store = ReviewStore(curation_dir, reviewer)
    store.ids("all")  # a malformed errors/judgments/reviews line fails here, not on the first request
    token = token or secrets.token_urlsafe(24)
    page = (STATIC / "index.html").read_text("utf-8").replace("__REVIEW_TOKEN__", token)
    app = FastAPI(title="spuriverse review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.state.store, app.state.token = store, token

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = _refuse(request, token, trusted_hosts) or await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    @app.get("/api/candidates")
    def candidates(show: Literal["spurious", "all"] = Query("spurious")) -> dict:
        ids = store.ids(show)
        judgments, reviews, errors = store.judgments.get(), store.reviews.get(), store.errors.get()
        rows = [{"candidate_id": c, "spurious": judgments[c].spurious, "failed": judgments[c].error is not None,
                 "question": errors[c].question, "decision": reviews[c].decision if c in reviews else None}
                for c in ids]
        return {"curation_dir": store.dir.name, "reviewer": store.reviewer, "show": show, **store.progress(ids),
                "candidates": rows}

    @app.get("/api/candidates/{cid}")
    def candidate(cid: str) -> dict:
        return store.detail(cid)

    @app.get("/api/candidates/{cid}/anchor")
    def anchor(cid: str) -> FileResponse:
        e, _ = store.known(cid)
        if not e.image or Path(e.image).is_absolute():
            raise HTTPException(404, "no anchor image")
        return _image(store.inside(store.dir / e.image))

    @app.get("/api/candidates/{cid}/images/{variant}/{k}")
    def synth_image(cid: str, variant: Literal["spurious", "counter"], k: int = PathParam(ge=0)) -> Response:
        store.known(cid)
        return _image(store.inside(store.dir / "images" / cid / variant / f"{k}.png"))

    @app.post("/api/candidates/{cid}/decision")
    def post_decision(cid: str, body: DecisionIn, show: Literal["spurious", "all"] = "spurious") -> dict:
        with store.lock:
            _, j = store.known(cid)
            values = body.model_dump(exclude={"decision"})
            try:
                record = decide(store.dir, j, body.decision, values, store.reviewer, store.reviews.get().get(cid))
            except FolderBusy as exc:  # another stage (e.g. a judge run) holds the folder: nothing written
                raise HTTPException(409, str(exc)) from None
        return {"saved": record.model_dump(), "candidate": store.detail(cid), **store.progress(store.ids(show))}

    return app


def _image(path: Path) -> FileResponse:
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one, read back with getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(app: FastAPI, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve until interrupted (Ctrl-C)."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False)).run(sockets=[sock])


class BackgroundServer:
    """The app served by uvicorn in a daemon thread on a free port (tests, notebooks)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.sock = bind(host, 0)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started or not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self.server.started:
            raise RuntimeError("the review server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
