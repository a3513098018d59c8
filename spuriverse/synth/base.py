"""The synthesis seam: every image backend (diffusers pipelines, image APIs) takes `SynthRequest`s
and returns one `SynthResult` each, in order. A result carries an image or says why there is none
(`refused`: a content filter or safety checker said no; `failed`: an error after retries) — never
a placeholder image.

`SYNTH_BACKENDS` is the one registry of backends: `spuriverse synth --backend` takes its choices and
help from it, and `spuriverse.synth.runner.build_backend` builds from it. A new backend is one
`register_synth_backend` call (a name, a one-line help, the factory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from PIL import Image

SynthVariant = Literal["spurious", "counter"]
SynthStatus = Literal["ok", "refused", "failed"]
# How a backend is prompted: a scene `description` (the candidate's positive / negative line), or an edit
# `instruction` ("add <cue>" / "remove <cue>") for instruction-following editors.
PromptStyle = Literal["description", "instruction"]


def derive_seed(global_seed: int, candidate_id: str, variant: str, k: int) -> int:
    """Each image's seed from (global seed, candidate, variant, k): stable across runs, batch
    composition, resume and process count; 31 bits so every backend accepts it."""
    digest = hashlib.sha256(f"{global_seed}\x00{candidate_id}\x00{variant}\x00{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def image_sha256(image: Image.Image) -> str:
    """Hash of the pixels (mode, size and raw bytes), independent of the file encoding."""
    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class SynthRequest:
    """One image to make. Editing backends use `source` (the real anchor image) and, for
    inpainting, `mask` (mode "L", white = may be repainted; everything else must stay exact)."""

    candidate_id: str
    variant: SynthVariant
    k: int
    prompt: str
    seed: int
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance: float = 7.5
    negative_prompt: str | None = None
    strength: float | None = None
    source: Image.Image | None = field(default=None, compare=False, repr=False)
    mask: Image.Image | None = field(default=None, compare=False, repr=False)


@dataclass
class SynthResult:
    status: SynthStatus
    image: Image.Image | None = None
    message: str | None = None  # the refusal or error, verbatim from the backend where possible
    safety: str = "n/a"  # "disabled" | "passed" | "flagged" | "provider-filter" | "n/a"
    extra: dict[str, Any] = field(default_factory=dict)  # backend facts worth recording (revised prompt...)


@runtime_checkable
class SynthBackend(Protocol):
    kind: str  # its registry name: "text2img" | "inpaint" | "instruct" | "openai" | "stability" | ...
    model_id: str  # pipeline id / folder / API model name
    revision: str | None
    needs_source: bool  # edits the anchor image
    needs_mask: bool  # inpainting
    batch_size: int  # requests per call (several prompts per pipeline call)
    prompt_style: PromptStyle

    def generate(self, requests: Sequence[SynthRequest]) -> list[SynthResult]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SynthBackendEntry:
    name: str
    help: str
    # factory(model_id, **options) -> SynthBackend: a callable, or "module:attr" (imported only when used).
    # It is given the `spuriverse synth` options its signature takes (spuriverse.plugins.call_supported).
    factory: str | Callable[..., SynthBackend]


SYNTH_BACKENDS: dict[str, SynthBackendEntry] = {}


def register_synth_backend(name: str, factory: str | Callable[..., SynthBackend], *, help: str) -> SynthBackendEntry:
    if name in SYNTH_BACKENDS:
        raise ValueError(f"synthesis backend {name!r} is already registered")
    SYNTH_BACKENDS[name] = SynthBackendEntry(name, help, factory)
    return SYNTH_BACKENDS[name]


register_synth_backend("text2img", "spuriverse.synth.diffusers_backends:Text2ImageBackend",
                       help="a diffusers text-to-image pipeline (SD 1.5 / SDXL / SD3 / FLUX class)")
register_synth_backend("inpaint", "spuriverse.synth.diffusers_backends:InpaintBackend",
                       help="a diffusers inpainting pipeline: repaint the cue region of the anchor image")
register_synth_backend("instruct", "spuriverse.synth.diffusers_backends:InstructBackend",
                       help="an instruction-editing pipeline (InstructPix2Pix): 'add <cue>' / 'remove <cue>'")
register_synth_backend("openai", "spuriverse.synth.api_backends:OpenAIImagesBackend",
                       help="the OpenAI Images API (or a compatible endpoint): generate or edit")
register_synth_backend("stability", "spuriverse.synth.api_backends:StabilityBackend",
                       help="the Stability AI image API: generate or inpaint")
