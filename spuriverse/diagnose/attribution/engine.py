"""The attribution engine: a batch of items as the model sees them, the score captum differentiates,
and the input spaces it can differentiate in.

Inputs come from `HFBackend._prepare`, the function the log-prob scorer calls (eval prompt, chat
template, processor, left padding, option letters tokenized in context), and the score reads the same
last-position logits. Input spaces:

- `pixels`: the processor's `pixel_values` (one batch-first tensor per batch, see `layouts`);
- `embedding`: the projected image-token embeddings (replaced inside the forward by a hook);
- `image`: the original image itself, re-processed on every forward (occlusion, deletion/insertion);
- `vision`: the vision tower's last used layer (Grad-CAM; through an identity probe module).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from spuriverse.diagnose.attribution.geometry import views_to_raster
from spuriverse.diagnose.attribution.layouts import ItemGeometry, Layout, layout_for
from spuriverse.diagnose.attribution.target import letter_score, option_logprobs, target_weights
from spuriverse.models.base import ImageInput, Request
from spuriverse.schema import LETTERS

BASELINES = ("black", "blurred", "mean")
SPACES = ("pixels", "embedding")


def baseline_image(image: Image.Image, kind: str) -> Image.Image:
    """The IG / occlusion reference image: `black` (zeros), `mean` (the image's mean colour everywhere)
    or `blurred` (Gaussian blur, radius 1/8 of the shorter side)."""
    if kind == "black":
        return Image.new("RGB", image.size)
    if kind == "mean":
        mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(0)
        return Image.new("RGB", image.size, tuple(int(round(c)) for c in mean))
    if kind == "blurred":
        return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(image.size) / 8)))
    raise ValueError(f"unknown baseline {kind!r} ({', '.join(BASELINES)})")


def baseline_description(kind: str) -> str:
    return {"black": "a black image", "mean": "the image's mean colour",
            "blurred": "the image blurred (Gaussian, radius 1/8 of the shorter side)"}[kind]


def pixels_input(image: Image.Image) -> ImageInput:
    """A decoded image for a local model (local backends read the pixels, never the bytes)."""
    return ImageInput(data=b"", mime="image/png", size=image.size, _pil=image)


def item_seed(key: str, seed: int) -> int:
    """A stable seed per item (noise for SmoothGrad and the robustness metrics): batch-size invariant."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:4], "little")


@dataclass
class Batch:
    """Items (all with images of one size) as the model sees them, with their targets."""

    keys: list[str]
    requests: list[Request]
    texts: list[str]
    images: list[Image.Image]
    pixels: torch.Tensor
    static: dict[str, torch.Tensor]
    letter_ids: torch.Tensor
    letter_mask: torch.Tensor
    answer: torch.Tensor
    geos: list[ItemGeometry]
    logprobs: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    weights: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def __len__(self) -> int:
        return len(self.keys)

    def letter_args(self) -> tuple[torch.Tensor, ...]:
        return self.letter_ids, self.letter_mask, self.weights

    def static_args(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.static[k] for k in sorted(self.static))

    def select(self, idx: Sequence[int]) -> Batch:
        """The items at `idx` (their padded rows of the batch: the same tensors, indexed)."""
        if list(idx) == list(range(len(self))):
            return self
        ix = torch.tensor(list(idx), dtype=torch.long)

        def pick(values: list) -> list:
            return [values[i] for i in idx]

        return replace(self, keys=pick(self.keys), requests=pick(self.requests), texts=pick(self.texts),
                       images=pick(self.images),
                       pixels=self.pixels[ix.to(self.pixels.device)],
                       static={k: v[ix.to(v.device)] for k, v in self.static.items()},
                       letter_ids=self.letter_ids[ix.to(self.letter_ids.device)],
                       letter_mask=self.letter_mask[ix.to(self.letter_mask.device)], answer=self.answer[ix],
                       geos=pick(self.geos), logprobs=self.logprobs[ix],
                       weights=self.weights[ix.to(self.weights.device)])

    def item(self, i: int) -> Batch:
        """Item `i` alone."""
        return self.select([i])


@dataclass
class Attribution:
    """A method's output for a batch: attributions in its input space, and per-item extras."""

    space: str  # pixels | embedding | image | vision
    values: torch.Tensor
    delta: torch.Tensor | None = None  # IG: sum of attributions - (score(x) - score(baseline)), per item
    score: torch.Tensor | None = None  # IG: score(x) and score(baseline), per item
    score_baseline: torch.Tensor | None = None


class _Probe(torch.nn.Identity):
    """An identity module Grad-CAM hooks: the vision site's tokens pass through it as [N, D, tokens]."""


@contextmanager
def site_hook(module: torch.nn.Module, kind: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """While active, the tensor passing `module`'s input (`kind="input"`) or output becomes fn(tensor)."""
    if kind == "input":
        handle = module.register_forward_pre_hook(lambda m, args: (fn(args[0]), *args[1:]))
    else:
        handle = module.register_forward_hook(lambda m, args, out: fn(out))
    try:
        yield
    finally:
        handle.remove()


class Attributor:
    """Builds batches and the differentiable score of one model (an `HFBackend`)."""

    def __init__(self, backend: Any, *, target: str = "predicted", raw: bool = False, baseline: str = "blurred",
                 max_rows: int | None = None) -> None:
        self.backend, self.model = backend, backend.model
        self.model.requires_grad_(False)  # gradients flow to the inputs only
        self.layout: Layout = layout_for(self.model, backend.processor)
        self.target, self.raw, self.baseline, self.max_rows = target, raw, baseline, max_rows
        self._rows = 0

    # -- batches ---------------------------------------------------------------------------------
    def prepare(self, keys: Sequence[str], requests: Sequence[Request], answers: Sequence[str]) -> Batch:
        """Scorer inputs for items whose images share one size, their option log-probs (one plain
        forward, the numbers `spuriverse eval` records) and the target weights."""
        _, texts, letter_lists, inputs = self.backend._prepare(list(requests))
        n = len(requests)
        ids = torch.zeros(n, len(LETTERS), dtype=torch.long)
        mask = torch.zeros(n, len(LETTERS), dtype=torch.bool)
        for row, lids in enumerate(letter_lists):
            ids[row, : len(lids)] = torch.tensor(lids)
            mask[row, : len(lids)] = True
        pixels, static = self.layout.pack(inputs)
        if any(r.image is None for r in requests):
            raise ValueError("attribution needs an image in every request")
        images = [r.image.pil() for r in requests if r.image is not None]
        geos = [self.layout.geometry(inputs, row, im.size) for row, im in enumerate(images)]
        answer = torch.tensor([LETTERS.index(a) for a in answers])
        batch = Batch(list(keys), list(requests), texts, images, pixels, static,
                      ids.to(pixels.device), mask.to(pixels.device), answer, geos)
        with torch.no_grad():
            logits = self.model(**inputs, logits_to_keep=1).logits[:, -1, :]
        batch.logprobs = option_logprobs(logits, batch.letter_ids, batch.letter_mask).cpu()
        batch.weights = target_weights(self.target, batch.logprobs, answer).to(pixels.device)
        return batch

    def baseline_batch(self, batch: Batch) -> tuple[list[Image.Image], torch.Tensor]:
        """The baseline images of a batch and their pixel tensor (processed like the images)."""
        images = [baseline_image(im, self.baseline) for im in batch.images]
        reqs = [replace(r, image=pixels_input(im)) for r, im in zip(batch.requests, images)]
        return images, self.layout.pack(self.backend._inputs(reqs, batch.texts))[0]

    # -- the differentiable score ------------------------------------------------------------------
    def _score(self, kwargs: dict[str, torch.Tensor], letters: Sequence[torch.Tensor]) -> torch.Tensor:
        logits = self.model(**kwargs, logits_to_keep=1).logits[:, -1, :]
        ids, mask, weights = letters
        return letter_score(logits, ids, mask, weights, raw=self.raw)

    def pixel_forward(self, batch: Batch) -> Callable[..., torch.Tensor]:
        """f(pixels, *static, letter_ids, letter_mask, weights) -> [rows] scores (captum expands the
        extra arguments along with the inputs)."""
        names = sorted(batch.static)

        def forward(pixels: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
            self._rows = pixels.shape[0]
            static = dict(zip(names, args[: len(names)]))
            return self._score(self.layout.model_kwargs(pixels, static), args[len(names):])

        return forward

    def embedding_forward(self, batch: Batch) -> Callable[..., torch.Tensor]:
        """f(tokens, pixels, *static, letters...): the projected image tokens replaced by `tokens`."""
        pixel_f = self.pixel_forward(batch)
        module, kind = self.layout.site("embedding")

        def forward(tokens: torch.Tensor, pixels: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
            def swap(x: torch.Tensor) -> torch.Tensor:
                return self.layout.tokens_from_batch("embedding", tokens.to(x.dtype), x)

            with site_hook(module, kind, swap):
                return pixel_f(pixels, *args)

        return forward

    def embeddings(self, batch: Batch, pixels: torch.Tensor) -> torch.Tensor:
        """[N, tokens, D]: the projected image tokens of `pixels` (the batch's or a baseline's)."""
        module, kind = self.layout.site("embedding")
        caught: list[torch.Tensor] = []

        def keep(x: torch.Tensor) -> torch.Tensor:
            caught.append(x.detach())
            return x

        with torch.no_grad(), site_hook(module, kind, keep):
            self.model(**self.layout.model_kwargs(pixels, batch.static), logits_to_keep=1)
        return self.layout.tokens_to_batch("embedding", caught[-1], len(batch))

    @contextmanager
    def vision_probe(self) -> Iterator[_Probe]:
        """An identity module the vision site's tokens pass through as [rows, D, tokens] (the layout
        captum's LayerGradCam expects: channels, then positions)."""
        probe = _Probe()
        module, kind = self.layout.site("vision")

        def through(x: torch.Tensor) -> torch.Tensor:
            tokens = self.layout.tokens_to_batch("vision", x, self._rows)
            return self.layout.tokens_from_batch("vision", probe(tokens.transpose(1, 2)).transpose(1, 2), x)

        with site_hook(module, kind, through):
            yield probe

    def image_forward(self, batch: Batch) -> Callable[..., torch.Tensor]:
        """f(images [rows, H, W, 3] in 0..255, letters...): the images re-processed (resize, crop, tile)
        on every call, so a perturbation lives on the original raster. Rows are the batch's items
        repeated (captum expands perturbations that way)."""

        def forward(images: torch.Tensor, *letters: torch.Tensor) -> torch.Tensor:
            reps = images.shape[0] // len(batch)
            reqs = [replace(r, image=pixels_input(Image.fromarray(im)))
                    for r, im in zip(batch.requests * reps, to_uint8(images))]
            inputs = self.backend._inputs(reqs, batch.texts * reps)
            return self._score(inputs, letters)

        return forward

    # -- maps on the original raster -----------------------------------------------------------------
    def rasters(self, attribution: Attribution, batch: Batch) -> list[np.ndarray]:
        """Each item's attribution carried onto its original image raster (height x width)."""
        out = []
        for i, geo in enumerate(batch.geos):
            w, h = geo.size
            a = attribution.values[i].detach().float().cpu()
            if attribution.space == "image":
                out.append(a.mean(-1).numpy())
                continue
            if attribution.space == "pixels":
                planes = self.layout.pixel_planes(a, geo)
            elif attribution.space == "embedding":  # [tokens, D]: a token's attribution is its sum
                planes = self.layout.token_planes("embedding", a.sum(-1).reshape(-1), geo)
            else:  # vision (Grad-CAM): [1, tokens]
                planes = self.layout.token_planes("vision", a.reshape(-1), geo)
            out.append(views_to_raster(planes, geo.frames, h, w).numpy())
        return out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[rows, H, W, 3] float images (0..255) as uint8 arrays (perturbations mix two uint8 images)."""
    return images.detach().round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def image_tensor(images: Sequence[Image.Image], device: torch.device) -> torch.Tensor:
    """[N, H, W, 3] float tensor of same-sized RGB images."""
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])).float().to(device)
