"""The synthesis seam: every image backend (diffusers pipelines, image APIs) takes `SynthRequest`s
and returns one `SynthResult` each, in order. A result carries an image or says why there is none
(`refused`: a content filter or safety checker said no; `failed`: an error after retries) — never
a placeholder image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from PIL import Image

SynthVariant = Literal["spurious", "counter"]
SynthStatus = Literal["ok", "refused", "failed"]


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
    kind: str  # "text2img" | "inpaint" | "instruct" | "openai" | "stability"
    model_id: str  # pipeline id / folder / API model name
    revision: str | None
    needs_source: bool  # edits the anchor image
    needs_mask: bool  # inpainting
    batch_size: int  # requests per call (several prompts per pipeline call)

    def generate(self, requests: Sequence[SynthRequest]) -> list[SynthResult]: ...

    def close(self) -> None: ...
