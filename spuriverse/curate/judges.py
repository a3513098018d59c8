"""The judge seam of curation stage 2: what a judge is (`JudgeBackend`), and the one registry of judge
backends from which `make_judge` and the CLI's `curate judge --backend` choices come.

A judge answers one `JudgeRequest` (system and user text, the anchor image) with one `JudgeResult`:
a validated `JudgeOutput` or an error, never both. A new judge backend is one `register_judge_backend`
call: a name, a one-line help, the factory, and which model backends (`spuriverse.models.registry`)
it serves when `--backend auto` resolves `--judge`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from spuriverse.models.base import ImageInput
from spuriverse.models.registry import ModelSpec, ModelSpecError, resolve_model
from spuriverse.plugins import load
from spuriverse.schema import JudgeOutput

__all__ = ["JUDGE_BACKENDS", "JudgeBackend", "JudgeBackendEntry", "JudgeOptions", "JudgeRequest", "JudgeResult",
           "make_judge", "register_judge_backend"]


@dataclass(frozen=True)
class JudgeRequest:
    candidate_id: str
    system: str
    user: str
    image: ImageInput | None


@dataclass
class JudgeResult:
    output: JudgeOutput | None = None
    error: str | None = None
    attempts: int = 0
    usage: dict[str, int] | None = None
    mode: str | None = None  # the structured-output mode of the last request (judge_backends.OUTPUT_MODES)


@runtime_checkable
class JudgeBackend(Protocol):
    """What `judge_errors` needs from a judge."""

    name: str  # recorded with every judgment (with the prompt hash, the cache key)
    needs_pixels: bool  # the request's image must be decoded (a local model), not just sent as bytes

    async def open(self) -> None: ...

    async def ask(self, req: JudgeRequest) -> JudgeResult: ...

    async def aclose(self) -> None: ...

    def close(self) -> None:
        """Free what the judge holds (a local model's weights); called once, after `aclose`."""
        ...


@dataclass(frozen=True)
class JudgeOptions:
    """The judge options of `curate judge`; each backend takes the ones that apply to it."""

    base_url: str | None = None
    api_key: str | None = None
    max_retries: int = 3
    timeout: float = 120.0
    max_tokens: int = 1024
    temperature: float = 0.0
    revision: str | None = None
    device: str | None = None
    dtype: str | None = None


# factory(spec, resolved, options): `spec` as given to --judge; `resolved` the registry's resolution of it
# when `--backend auto` chose this backend for a registry alias, else None.
JudgeFactory = Callable[[str, "ModelSpec | None", JudgeOptions], JudgeBackend]


@dataclass(frozen=True)
class JudgeBackendEntry:
    name: str
    help: str
    factory: str | JudgeFactory  # a callable, or "module:attr" (imported only when used)
    serves: tuple[str, ...] = field(default=())  # model backends it judges with under --backend auto

    def build(self, spec: str, resolved: ModelSpec | None, options: JudgeOptions) -> JudgeBackend:
        factory = load(self.factory) if isinstance(self.factory, str) else self.factory
        return factory(spec, resolved, options)


JUDGE_BACKENDS: dict[str, JudgeBackendEntry] = {}
ENDPOINT_JUDGE = "openai"  # what --backend auto picks for --base-url and openai:<name>


def register_judge_backend(name: str, factory: str | JudgeFactory, *, help: str,
                           serves: tuple[str, ...] = ()) -> JudgeBackendEntry:
    if name in JUDGE_BACKENDS or name == "auto":
        raise ValueError(f"judge backend {name!r} is already registered")
    JUDGE_BACKENDS[name] = JudgeBackendEntry(name, help, factory, serves)
    return JUDGE_BACKENDS[name]


register_judge_backend("openai", "spuriverse.curate.judge_backends:openai_judge", serves=("openai",),
                       help="an OpenAI-compatible /chat/completions endpoint, structured outputs")
register_judge_backend("hf", "spuriverse.curate.judge_backends:hf_judge", serves=("hf",),
                       help="a local HF model (folder, hub id or registry alias), greedy generation")


def _auto(spec: str, options: JudgeOptions) -> tuple[str, ModelSpec | None]:
    """The backend `--backend auto` picks: an endpoint when `base_url` is given or `spec` is
    `openai:<name>`; else the backend serving what `spec` resolves to (a folder, hub id or alias);
    a name that resolves to nothing is a model name at the default endpoint (e.g. `gpt-4o`)."""
    if options.base_url or spec.startswith("openai:"):
        return ENDPOINT_JUDGE, None
    try:
        resolved = resolve_model(spec, revision=options.revision)
    except ModelSpecError:
        return ENDPOINT_JUDGE, None
    for entry in JUDGE_BACKENDS.values():
        if resolved.backend in entry.serves:
            return entry.name, resolved
    raise ValueError(f"{spec!r} is a {resolved.backend!r} model, not a judge")


def make_judge(spec: str, *, backend: str = "auto", options: JudgeOptions | None = None) -> JudgeBackend:
    """`--judge` to a judge of `backend` ("auto" or a registered name)."""
    opts = options or JudgeOptions()
    resolved = None
    if backend == "auto":
        backend, resolved = _auto(spec, opts)
    if backend not in JUDGE_BACKENDS:
        raise ValueError(f"unknown judge backend {backend!r} ({', '.join(['auto', *JUDGE_BACKENDS])})")
    return JUDGE_BACKENDS[backend].build(spec, resolved, opts)
