"""Image synthesis through diffusers pipelines: text-to-image, inpainting and instruction editing.

Every backend loads with the same `from_pretrained` call users run (a hub id or a local folder) and
makes several images per pipeline call (`batch_size` prompts), with one CPU `torch.Generator` per
request seeded with the request's seed.

Batch composition never changes pixels. Three things would otherwise make the same request differ
in the last bits alone vs inside a batch (measured on the tiny CPU pipeline: 1-4 of 12,288 uint8
values moved by 1), each removed here:
- kernels chosen by shape (convolutions, matmuls): every call is padded to exactly `batch_size`
  rows (copies of one of its requests, discarded), so the shapes never change;
- reductions and element-wise ops whose result depends on where a row falls in the flat tensor
  (vectorised vs scalar tails of a chunk rounding differently): text encoders encode each distinct
  prompt alone (batch 1, cached; this also encodes a prompt shared by many seeds once), GroupNorm
  gets contiguous inputs (its channels-last CPU kernel splits rows across threads), and on CPU calls
  run on a power-of-two number of threads (`cpu_threads`; 3 threads split rows mid-vector).
So an image is a function of its request, the model, `batch_size`, dtype, device, library versions
and (on CPU) the thread count only: not of which requests share its call, of resuming, or of being
retried alone after a failure. `batch_size` and the thread count are recorded in `extra`.
`fixed_batch=False` drops the padding (short last batches cost less) and gives up that guarantee.
"""

from __future__ import annotations

import gc
import inspect
import re
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from PIL import Image

from spuriverse.synth.base import PromptStyle, SynthRequest, SynthResult

__all__ = ["Text2ImageBackend", "InpaintBackend", "InstructBackend"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16}


def _hub_commit(model_id: str, revision: str | None) -> str | None:
    """The snapshot commit a hub id resolved to in the local cache (None for folders / unknown)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(model_id, "model_index.json", revision=revision)
    except Exception:  # not a repo id (a folder), or no cache
        return None
    m = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", path) if isinstance(path, str) else None
    return m.group(1) if m else None


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """diffusers renamed `torch_dtype` to `dtype` (the old name warns); use what this version takes."""
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}


def _concat(items: list) -> Any:
    """Concatenate per-row encoder outputs (tensors, ModelOutputs, tuples of them) along dim 0."""
    first = items[0]
    if torch.is_tensor(first):
        return torch.cat(items, dim=0)
    if hasattr(first, "keys") and hasattr(first, "to_tuple"):  # transformers ModelOutput
        return type(first)(**{k: _concat([o[k] for o in items]) for k in first.keys()})
    if isinstance(first, (tuple, list)):
        return type(first)(_concat(list(z)) for z in zip(*items))
    return first


def _encode_rows_alone(module: torch.nn.Module, cache: OrderedDict, max_cached: int = 64) -> None:
    """Make a text encoder compute each row of a batch alone (batch 1) and each distinct row once
    (LRU-cached): its output then never depends on the other prompts of the call."""
    inner = module.forward

    def forward(input_ids=None, *args, **kwargs):
        n = input_ids.shape[0] if torch.is_tensor(input_ids) and input_ids.dim() == 2 else 0
        rowed = {k for k, v in kwargs.items() if torch.is_tensor(v)}  # e.g. attention_mask
        if args or not n or any(kwargs[k].shape[0] != n for k in rowed):
            return inner(input_ids, *args, **kwargs)
        outs = []
        for i in range(n):
            row = {k: v[i : i + 1] if k in rowed else v for k, v in kwargs.items()}
            key = (id(module), input_ids[i].cpu().numpy().tobytes(),
                   repr(sorted((k, v.cpu().numpy().tobytes() if k in rowed else v) for k, v in row.items())))
            if key in cache:
                cache.move_to_end(key)
            else:
                cache[key] = inner(input_ids[i : i + 1], **row)
                if len(cache) > max_cached:
                    cache.popitem(last=False)
            outs.append(cache[key])
        return _concat(outs)

    module.forward = forward


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:]) if args and torch.is_tensor(args[0]) else args


def _snap8(n: int) -> int:
    return max(8, int(round(n / 8)) * 8)


def _error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


D = TypeVar("D", bound="_DiffusersBackend")


def _source(r: SynthRequest) -> Image.Image:
    """An editing request's source image (`_invalid` refused requests without one)."""
    assert r.source is not None
    return r.source


class _DiffusersBackend:
    kind = "diffusers"
    needs_source = False
    needs_mask = False
    prompt_style: PromptStyle = "description"

    def __init__(
        self,
        model_id: str,
        *,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 4,
        cpu_offload: bool = False,
        fixed_batch: bool = True,
        cpu_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_id = model_id
        self.batch_size = int(batch_size)
        self.fixed_batch = fixed_batch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        on_cpu = self.device.type == "cpu"
        if dtype is None:
            dtype = torch.float32 if on_cpu else torch.float16
        self.dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
        threads = cpu_threads or torch.get_num_threads()
        self.cpu_threads = 1 << (max(1, threads).bit_length() - 1) if on_cpu else None  # a power of two
        self.pipe = self._load(model_id, revision, self.dtype)
        if cpu_offload and on_cpu:
            warnings.warn("cpu_offload applies to GPU devices only; ignored on CPU", stacklevel=2)
        elif cpu_offload:
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self._encoded: OrderedDict = OrderedDict()
        for name, component in self.pipe.components.items():
            if name.startswith("text_encoder") and isinstance(component, torch.nn.Module):
                _encode_rows_alone(component, self._encoded)
            for m in component.modules() if isinstance(component, torch.nn.Module) else ():
                if isinstance(m, torch.nn.GroupNorm):
                    m.register_forward_pre_hook(_contiguous_input)
        self.revision = _hub_commit(model_id, revision) or revision
        self._params = set(inspect.signature(self.pipe.__call__).parameters)
        self._has_checker = getattr(self.pipe, "safety_checker", None) is not None
        self._extra: dict[str, Any] = {
            "pipeline": type(self.pipe).__name__,
            "scheduler": type(self.pipe.scheduler).__name__,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device.type,
            "call_batch": self.batch_size if fixed_batch else None,
        }
        if self.cpu_threads:
            self._extra["cpu_threads"] = self.cpu_threads

    # -- what subclasses specialise: _load, and ------------------------------------------------
    def _load(self, model_id: str, revision: str | None, dtype: torch.dtype) -> Any:
        """The diffusers pipeline of this backend."""
        raise NotImplementedError

    def _invalid(self, r: SynthRequest) -> str | None:
        """Why this request cannot run (it fails alone, before any pipeline call), or None."""
        return None

    def _call_size(self, r: SynthRequest) -> tuple[int, int]:
        return r.width, r.height

    def _call_kwargs(self, rows: Sequence[SynthRequest], size: tuple[int, int]) -> dict[str, Any]:
        return {"width": size[0], "height": size[1]}

    def _finish(self, r: SynthRequest, image: Image.Image) -> Image.Image:
        return image

    # -- the protocol --------------------------------------------------------------------------
    def generate(self, requests: Sequence[SynthRequest]) -> list[SynthResult]:
        results: list[SynthResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            bad = self._invalid(r)
            for field in ("negative_prompt", "strength"):
                if bad is None and getattr(r, field) is not None and field not in self._params:
                    bad = f"{type(self.pipe).__name__} takes no {field}"
            if bad is not None:
                results[i] = self._failed(bad)
                continue
            key = (self._call_size(r), r.steps, float(r.guidance), r.strength, r.negative_prompt is None)
            groups.setdefault(key, []).append(i)
        for key, idxs in groups.items():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start : start + self.batch_size]
                for i, res in zip(chunk, self._run_chunk([requests[i] for i in chunk], key[0])):
                    results[i] = res
        return [r for r in results if r is not None]  # every request got its result above

    def close(self) -> None:
        self.pipe = None
        self._encoded.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self: D) -> D:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _failed(self, message: str) -> SynthResult:
        return SynthResult(status="failed", message=message, safety="n/a", extra=dict(self._extra))

    def _run_chunk(self, reqs: list[SynthRequest], size: tuple[int, int], alone: bool = False) -> list[SynthResult]:
        """One pipeline call; if it raises, each request again alone: one bad request, one failure."""
        try:
            return self._call(reqs, size)
        except Exception as e:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if alone or len(reqs) == 1:
                return [self._failed(_error(e))]
        return [res for r in reqs for res in self._run_chunk([r], size, alone=True)]

    def _call(self, reqs: list[SynthRequest], size: tuple[int, int]) -> list[SynthResult]:
        if self.pipe is None:
            raise RuntimeError("backend is closed")
        rows = list(reqs)
        if self.fixed_batch:
            rows += [reqs[0]] * (self.batch_size - len(reqs))
        first = rows[0]
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in rows],
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance,
            "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows],
            "output_type": "pil",
        }
        if first.negative_prompt is not None:
            kwargs["negative_prompt"] = [r.negative_prompt for r in rows]
        if first.strength is not None:
            kwargs["strength"] = first.strength
        kwargs.update(self._call_kwargs(rows, size))
        before = torch.get_num_threads()
        if self.cpu_threads and self.cpu_threads != before:
            torch.set_num_threads(self.cpu_threads)
        try:
            out = self.pipe(**kwargs)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        images = list(out.images)
        if len(images) != len(rows):
            raise RuntimeError(f"pipeline returned {len(images)} images for {len(rows)} prompts")
        flags = getattr(out, "nsfw_content_detected", None)
        results = []
        for j, r in enumerate(reqs):
            extra = dict(self._extra)
            if self.needs_source and size != _source(r).size:
                extra["call_size"] = f"{size[0]}x{size[1]}"
            if flags is not None and flags[j]:
                results.append(SynthResult(status="refused", message="safety checker flagged the image",
                                           safety="flagged", extra=extra))
                continue
            safety = "passed" if flags is not None else ("n/a" if self._has_checker else "disabled")
            results.append(SynthResult(status="ok", image=self._finish(r, images[j]), safety=safety, extra=extra))
        return results


class Text2ImageBackend(_DiffusersBackend):
    """Any text-to-image pipeline `AutoPipelineForText2Image` maps (SD 1.x/2.x, SDXL, SD3, FLUX...)."""

    kind = "text2img"

    def _load(self, model_id: str, revision: str | None, dtype: torch.dtype) -> Any:
        from diffusers import AutoPipelineForText2Image

        return AutoPipelineForText2Image.from_pretrained(model_id, revision=revision, **_dtype_kwarg(dtype))


class _EditBackend(_DiffusersBackend):
    needs_source = True

    def _invalid(self, r: SynthRequest) -> str | None:
        if r.source is None:
            return f"{self.kind} needs a source image"
        if min(r.source.size) < 1:
            return f"source image has no pixels: {r.source.size}"
        return None

    def _call_size(self, r: SynthRequest) -> tuple[int, int]:
        """Pipelines need sides that are multiples of 8: the source is resized for the call and
        the result resized back to the source size."""
        w, h = _source(r).size
        return _snap8(w), _snap8(h)

    @staticmethod
    def _resized(image: Image.Image, size: tuple[int, int],
                 resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
        return image if image.size == size else image.resize(size, resample)

    def _finish(self, r: SynthRequest, image: Image.Image) -> Image.Image:
        return self._resized(image, _source(r).size)


class InpaintBackend(_EditBackend):
    """Repaints the mask's white pixels (exactly 255) of `request.source`; every other pixel of
    the output is the source's, exactly (pasted back with the pipeline's `apply_overlay`: a VAE
    round trip does not preserve them). Output size = source size."""

    kind = "inpaint"
    needs_mask = True

    def _load(self, model_id: str, revision: str | None, dtype: torch.dtype) -> Any:
        from diffusers import AutoPipelineForInpainting

        return AutoPipelineForInpainting.from_pretrained(model_id, revision=revision, **_dtype_kwarg(dtype))

    def _invalid(self, r: SynthRequest) -> str | None:
        if (bad := super()._invalid(r)) is not None:
            return bad
        if r.mask is None:
            return "inpaint needs a mask"
        if r.mask.size != _source(r).size:
            return f"mask size {r.mask.size} differs from source size {_source(r).size}"
        return None

    @staticmethod
    def _binary_mask(r: SynthRequest) -> Image.Image:
        assert r.mask is not None  # _invalid() refused requests without one
        return r.mask.convert("L").point(lambda v: 255 if v == 255 else 0)

    def _call_kwargs(self, rows: Sequence[SynthRequest], size: tuple[int, int]) -> dict[str, Any]:
        return {
            "image": [self._resized(_source(r).convert("RGB"), size) for r in rows],
            "mask_image": [self._resized(self._binary_mask(r), size, Image.Resampling.NEAREST) for r in rows],
            "width": size[0],
            "height": size[1],
        }

    def _finish(self, r: SynthRequest, image: Image.Image) -> Image.Image:
        source = _source(r).convert("RGB")
        return self.pipe.image_processor.apply_overlay(self._binary_mask(r), source, super()._finish(r, image))


class InstructBackend(_EditBackend):
    """InstructPix2Pix-style editing: the prompt is the instruction ("add ...", "remove ...")."""

    kind = "instruct"
    prompt_style: PromptStyle = "instruction"

    def __init__(self, model_id: str, *, image_guidance_scale: float = 1.5, **kwargs: Any) -> None:
        self.image_guidance_scale = float(image_guidance_scale)
        super().__init__(model_id, **kwargs)
        self._extra["image_guidance_scale"] = self.image_guidance_scale

    def _load(self, model_id: str, revision: str | None, dtype: torch.dtype) -> Any:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        return StableDiffusionInstructPix2PixPipeline.from_pretrained(model_id, revision=revision, **_dtype_kwarg(dtype))

    def _call_kwargs(self, rows: Sequence[SynthRequest], size: tuple[int, int]) -> dict[str, Any]:
        return {"image": [self._resized(_source(r).convert("RGB"), size) for r in rows],
                "image_guidance_scale": self.image_guidance_scale}
