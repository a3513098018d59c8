"""`spuriverse synth DIR`: counterfactual images for every accepted candidate of a curation folder.

For each candidate, N images with the cue (`spurious`, from the `positive` description) and N
without it (`counter`, from the `negative` one), written as `images/<candidate>/<variant>/<k>.png`
with `<k>.json` (SynthProvenance) beside each. Each image's seed derives from (global seed,
candidate, variant, k). Re-running skips what exists; nothing is ever deleted; every write is
atomic (the JSON, written last, marks an image as done). Under `accelerate launch` / `torchrun`,
candidates are split between processes, giving the same files as one process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from spuriverse.data.curation import accepted_candidates
from spuriverse.persist import atomic_write_bytes, atomic_write_text
from spuriverse.plugins import call_supported, load
from spuriverse.schema import Candidate, SynthProvenance
from spuriverse.synth.base import (
    SYNTH_BACKENDS,
    PromptStyle,
    SynthBackend,
    SynthRequest,
    SynthResult,
    SynthVariant,
    derive_seed,
    image_sha256,
)
from spuriverse.locking import locks_folder
from spuriverse.provenance import now_iso, package_versions

VARIANTS: tuple[SynthVariant, ...] = ("spurious", "counter")
SYNTH_PACKAGES = ("spuriverse", "diffusers", "torch", "transformers", "openai", "pillow")


class SynthInputError(ValueError):
    """A candidate lacks what the chosen backend needs (anchor image, mask)."""


@dataclass
class SynthOptions:
    n: int = 4
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance: float = 7.5
    strength: float | None = None
    negative_prompt: str | None = None
    seed: int = 0
    progress: bool = True


@dataclass
class SynthSummary:
    made: int = 0
    skipped: int = 0
    refused: int = 0
    failed: int = 0
    seconds: float = 0.0
    provenance: list[SynthProvenance] = field(default_factory=list)


def build_backend(kind: str, model_id: str, **options: Any) -> SynthBackend:
    """The registered backend `kind` (`SYNTH_BACKENDS`) for `model_id`, given the options it takes."""
    if kind not in SYNTH_BACKENDS:
        raise ValueError(f"unknown synthesis backend {kind!r} ({', '.join(SYNTH_BACKENDS)})")
    factory = SYNTH_BACKENDS[kind].factory
    backend: SynthBackend = call_supported(load(factory) if isinstance(factory, str) else factory, model_id,
                                           label=kind, **options)
    return backend


def _png(image: Image.Image) -> bytes:
    buf = BytesIO()
    image.save(buf, format="PNG")  # no timestamps in PIL's PNG: same pixels, same bytes
    return buf.getvalue()


def _mask_from_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(mask).rectangle([round(x0 * w), round(y0 * h), round(x1 * w) - 1, round(y1 * h) - 1], fill=255)
    return mask


def _prompt(c: Candidate, variant: str, style: PromptStyle) -> str:
    """Descriptions for generators and inpainting; add/remove instructions for instruction editors."""
    if style == "instruction":
        cue = c.spurious_attributes[0] if c.spurious_attributes else c.positive
        return f"add {cue}" if variant == "spurious" else f"remove {cue}"
    return c.positive if variant == "spurious" else c.negative


def _inputs(c: Candidate, curation_dir: Path, backend: SynthBackend) -> tuple[Image.Image | None, Image.Image | None]:
    if not backend.needs_source:
        return None, None
    if not c.anchor_image:
        raise SynthInputError(f"candidate {c.candidate_id!r} has no anchor image to edit")
    source = Image.open(curation_dir / c.anchor_image).convert("RGB")
    mask = None
    if backend.needs_mask:
        mask_file = curation_dir / "images" / c.candidate_id / "mask.png"
        if mask_file.exists():
            mask = Image.open(mask_file).convert("L").resize(source.size, Image.Resampling.NEAREST)
        elif c.mask_box is not None:
            mask = _mask_from_box(c.mask_box, source.size)
        else:
            raise SynthInputError(f"candidate {c.candidate_id!r} has no mask (a mask_box from review/judge, or "
                                  f"images/{c.candidate_id}/mask.png) for inpainting")
    return source, mask


def _done(path: Path) -> bool:
    """An image is done when its provenance says ok (and the PNG is there) or refused: a refusal
    would repeat; a failure is retried on the next run."""
    if not path.exists():
        return False
    try:
        prov = SynthProvenance.model_validate_json(path.read_text("utf-8"))
    except ValueError:
        return False
    return prov.status == "refused" or (prov.status == "ok" and (path.parent / f"{prov.k}.png").exists())


def candidate_requests(c: Candidate, curation_dir: Path, backend: SynthBackend, opts: SynthOptions,
                       only_missing: bool = True) -> list[SynthRequest]:
    source, mask = _inputs(c, curation_dir, backend)
    size = source.size if source is not None else (opts.width, opts.height)
    reqs = []
    for variant in VARIANTS:
        for k in range(opts.n):
            if only_missing and _done(curation_dir / "images" / c.candidate_id / variant / f"{k}.json"):
                continue
            reqs.append(SynthRequest(
                candidate_id=c.candidate_id, variant=variant, k=k, prompt=_prompt(c, variant, backend.prompt_style),
                seed=derive_seed(opts.seed, c.candidate_id, variant, k), width=size[0], height=size[1],
                steps=opts.steps, guidance=opts.guidance, negative_prompt=opts.negative_prompt,
                strength=opts.strength, source=source, mask=mask,
            ))
    return reqs


def _record(req: SynthRequest, res: SynthResult, backend: SynthBackend, c: Candidate, curation_dir: Path,
            versions: dict[str, str]) -> SynthProvenance:
    folder = curation_dir / "images" / req.candidate_id / req.variant
    rgb = res.image.convert("RGB") if res.status == "ok" and res.image is not None else None
    png = None
    if rgb is not None:
        png = f"{req.k}.png"
        atomic_write_bytes(folder / png, _png(rgb))
    prov = SynthProvenance(
        candidate_id=req.candidate_id, variant=req.variant, k=req.k,
        status=res.status if res.status != "ok" or png else "failed",
        message=res.message if png or res.status != "ok" else "backend returned no image",
        backend=backend.kind, model_id=backend.model_id, model_revision=backend.revision, prompt=req.prompt,
        negative_prompt=req.negative_prompt, seed=req.seed, width=req.width, height=req.height, steps=req.steps,
        guidance=req.guidance, strength=req.strength,
        source_image_sha256=image_sha256(req.source) if req.source is not None else None,
        mask_sha256=image_sha256(req.mask) if req.mask is not None else None,
        mask_box=c.mask_box if req.mask is not None else None, safety_checker=res.safety, image_file=png,
        image_sha256=image_sha256(rgb) if rgb is not None else None,
        extra={k: v for k, v in res.extra.items() if isinstance(v, (str, int, float, bool)) or v is None},
        versions=versions, created=now_iso(),
    )
    atomic_write_text(folder / f"{req.k}.json", prov.model_dump_json(indent=1) + "\n")
    return prov


def _batches(reqs: Sequence[SynthRequest], size: int) -> Iterator[list[SynthRequest]]:
    """Batches never span a (candidate, variant), so batch composition does not depend on which
    other candidates a process handles."""
    current: list[SynthRequest] = []
    for r in reqs:
        if current and ((r.candidate_id, r.variant) != (current[0].candidate_id, current[0].variant)
                        or len(current) >= size):
            yield current
            current = []
        current.append(r)
    if current:
        yield current


def synthesize_candidate(candidate: Candidate, backend: SynthBackend, curation_dir: str | Path,
                         opts: SynthOptions | None = None) -> list[SynthProvenance]:
    """Python API (e.g. a notebook): make the missing images of one candidate; returns what it wrote."""
    opts = opts or SynthOptions(progress=False)
    curation_dir = Path(curation_dir)
    versions = package_versions(SYNTH_PACKAGES)
    out = []
    for batch in _batches(candidate_requests(candidate, curation_dir, backend, opts), backend.batch_size):
        for req, res in zip(batch, backend.generate(batch), strict=True):
            out.append(_record(req, res, backend, candidate, curation_dir, versions))
    return out


@locks_folder("curation_dir", stage="synth")
def synthesize(curation_dir: str | Path, backend: SynthBackend, opts: SynthOptions | None = None,
               candidates: Sequence[str] | None = None) -> SynthSummary:
    """Make the missing images of every accepted candidate (or the named ones)."""
    t0 = time.perf_counter()
    opts = opts or SynthOptions()
    curation_dir = Path(curation_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    todo = [c for c in accepted_candidates(curation_dir) if candidates is None or c.candidate_id in candidates]
    if candidates is not None and len(todo) != len(set(candidates)):
        missing = sorted(set(candidates) - {c.candidate_id for c in todo})
        raise SynthInputError(f"not accepted candidates: {', '.join(missing)}")
    mine = todo[rank::world]
    per_candidate = [(c, candidate_requests(c, curation_dir, backend, opts)) for c in mine]  # validates inputs first
    summary = SynthSummary(skipped=len(mine) * 2 * opts.n - sum(len(r) for _, r in per_candidate))
    versions = package_versions(SYNTH_PACKAGES)
    bar = tqdm(total=sum(len(r) for _, r in per_candidate), disable=not opts.progress, desc="synth", unit="img")
    for c, reqs in per_candidate:
        for batch in _batches(reqs, backend.batch_size):
            for req, res in zip(batch, backend.generate(batch), strict=True):
                prov = _record(req, res, backend, c, curation_dir, versions)
                summary.provenance.append(prov)
                summary.made += prov.status == "ok"
                summary.refused += prov.status == "refused"
                summary.failed += prov.status == "failed"
                bar.update(1)
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
