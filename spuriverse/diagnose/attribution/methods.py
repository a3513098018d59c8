"""The attribution methods: one registry entry each (`METHODS`), all computed by captum.

| name | captum | input space |
|---|---|---|
| saliency | `Saliency` (absolute gradient) | pixels or embedding |
| input_x_gradient | `InputXGradient` | pixels or embedding |
| ig | `IntegratedGradients` (Gauss-Legendre, from the stated baseline) | pixels or embedding |
| smoothgrad | `NoiseTunnel(Saliency)`, seeded per item | pixels or embedding |
| occlusion | `FeatureAblation` with a patch mask on the original image, filled from the baseline | image |
| gradcam | `LayerGradCam` on the vision tower's last used layer (ReLU) | vision |

Batched: a call takes a whole batch of items; IG's steps of all items run as one forward/backward
(`max_rows` caps the rows per pass), occlusion's patches as many per pass as `max_rows` allows.
SmoothGrad runs item by item (its samples as one batch) so that each item's noise is seeded by the
item alone, and results do not depend on which items share a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from spuriverse.diagnose.attribution.engine import Attribution, Attributor, Batch, image_tensor, item_seed


@dataclass(frozen=True)
class MethodParams:
    ig_steps: int = 32
    smooth_samples: int = 16
    smooth_noise: float = 0.15  # noise sd as a fraction of each item's input range
    occlusion_patch: int | None = None  # pixels on the original image (default: 1/8 of the shorter side)
    seed: int = 0


@dataclass(frozen=True)
class Method:
    name: str
    captum: str
    spaces: tuple[str, ...]
    summary: str
    run: Callable[[Attributor, Batch, str, MethodParams], Attribution]
    # gradient methods: the captum call itself, for the robustness metrics (they re-run it)
    call: Callable[[Attributor, Batch, str, MethodParams], Call] | None = None


@dataclass
class Call:
    """One captum attribution call: `explain(inputs, **kwargs)`; `forward(inputs, *args)` is the score."""

    explain: Callable[..., torch.Tensor]
    inputs: torch.Tensor
    kwargs: dict[str, Any]
    forward: Callable[..., torch.Tensor]
    args: tuple[torch.Tensor, ...]

    def __call__(self) -> torch.Tensor:
        return self.explain(self.inputs, **self.kwargs).detach()


def _inputs(att: Attributor, batch: Batch, space: str) -> tuple[torch.Tensor, Callable, tuple]:
    """(captum input, forward, additional forward args) of an input space."""
    extra = batch.static_args() + batch.letter_args()
    if space == "embedding":
        x, f, args = att.embeddings(batch, batch.pixels), att.embedding_forward(batch), (batch.pixels, *extra)
    else:
        x, f, args = batch.pixels, att.pixel_forward(batch), extra
    return x.detach().clone().requires_grad_(True), f, args


def _gradient_call(cls_name: str) -> Callable[[Attributor, Batch, str, MethodParams], Call]:
    def call(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Call:
        import captum.attr

        x, f, args = _inputs(att, batch, space)
        kw: dict[str, Any] = {"additional_forward_args": args, **({"abs": True} if cls_name == "Saliency" else {})}
        return Call(getattr(captum.attr, cls_name)(f).attribute, x, kw, f, args)

    return call


def _ig_call(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Call:
    from captum.attr import IntegratedGradients

    x, f, args = _inputs(att, batch, space)
    _, base_pixels = att.baseline_batch(batch)
    base = att.embeddings(batch, base_pixels) if space == "embedding" else base_pixels
    kw = {"baselines": base, "additional_forward_args": args, "n_steps": p.ig_steps,
          "internal_batch_size": att.max_rows}
    return Call(IntegratedGradients(f).attribute, x, kw, f, args)


def _smoothgrad_call(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Call:
    """One item's SmoothGrad (call it under the item's seed, see `seeded`)."""
    from captum.attr import NoiseTunnel, Saliency

    x, f, args = _inputs(att, batch, space)
    kw = {"nt_type": "smoothgrad", "nt_samples": p.smooth_samples, "stdevs": float(p.smooth_noise * (x.max() - x.min()).detach()),
          "nt_samples_batch_size": att.max_rows or p.smooth_samples, "additional_forward_args": args, "abs": True}
    return Call(NoiseTunnel(Saliency(f)).attribute, x, kw, f, args)


@contextmanager
def seeded(key: str, seed: int, device: torch.device) -> Iterator[None]:
    """The global torch RNG seeded by the item alone inside the block, restored after it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(item_seed(key, seed))
        yield


def _plain(call: Callable[[Attributor, Batch, str, MethodParams], Call]) -> Callable[..., Attribution]:
    def run(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Attribution:
        return Attribution(space, call(att, batch, space, p)())

    return run


def _ig(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Attribution:
    """IG, then the score at the image and at the baseline in one extra forward (completeness:
    delta = sum of attributions - (score - score_baseline), what captum's convergence delta is)."""
    c = _ig_call(att, batch, space, p)
    values = c()
    base, n = c.kwargs["baselines"], len(batch)
    with torch.no_grad():
        both = c.forward(torch.cat([c.inputs.detach(), base]), *(torch.cat([a, a]) for a in c.args))
    fx, fb = both[:n].detach(), both[n:].detach()
    delta = values.flatten(1).sum(1).to(fx.dtype) - (fx - fb)
    return Attribution(space, values, delta, fx, fb)


def _smoothgrad(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Attribution:
    out = []
    for i in range(len(batch)):
        one = batch.item(i)
        with seeded(one.keys[0], p.seed, one.pixels.device):
            out.append(_smoothgrad_call(att, one, space, p)())
    return Attribution(space, torch.cat(out))


def occlusion_mask(height: int, width: int, patch: int) -> torch.Tensor:
    """[1, H, W, 3] patch ids (row-major patches of `patch` pixels; the last row / column may be smaller)."""
    rows = torch.arange(height) // patch
    cols = torch.arange(width) // patch
    ids = rows[:, None] * ((width + patch - 1) // patch) + cols[None, :]
    return ids[None, :, :, None].expand(1, height, width, 3).contiguous()


def occlusion_patch(size: tuple[int, int], p: MethodParams) -> int:
    return p.occlusion_patch or max(1, min(size) // 8)


def _occlusion(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Attribution:
    from captum.attr import FeatureAblation

    device = batch.pixels.device
    x = image_tensor(batch.images, device)
    base = image_tensor(att.baseline_batch(batch)[0], device)
    w, h = batch.images[0].size
    mask = occlusion_mask(h, w, occlusion_patch((w, h), p)).to(device)
    per_eval = max(1, (att.max_rows or 64 * len(batch)) // len(batch))
    with torch.no_grad():
        values = FeatureAblation(att.image_forward(batch)).attribute(
            x, baselines=base, feature_mask=mask, additional_forward_args=batch.letter_args(),
            perturbations_per_eval=per_eval)
    return Attribution("image", values.detach())


def _gradcam(att: Attributor, batch: Batch, space: str, p: MethodParams) -> Attribution:
    from captum.attr import LayerGradCam

    with att.vision_probe() as probe:
        values = LayerGradCam(att.pixel_forward(batch), probe).attribute(
            batch.pixels, additional_forward_args=batch.static_args() + batch.letter_args(), relu_attributions=True)
    return Attribution("vision", values.detach())


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("saliency", "Saliency", ("pixels", "embedding"), "absolute gradient of the score",
           _plain(_gradient_call("Saliency")), _gradient_call("Saliency")),
    Method("input_x_gradient", "InputXGradient", ("pixels", "embedding"), "input times gradient",
           _plain(_gradient_call("InputXGradient")), _gradient_call("InputXGradient")),
    Method("ig", "IntegratedGradients", ("pixels", "embedding"), "integrated gradients from the baseline", _ig, _ig_call),
    Method("smoothgrad", "NoiseTunnel(Saliency)", ("pixels", "embedding"),
           "saliency averaged over Gaussian-noised copies", _smoothgrad, _smoothgrad_call),
    Method("occlusion", "FeatureAblation", ("image",), "score drop when a patch of the image is replaced by the baseline",
           _occlusion),
    Method("gradcam", "LayerGradCam", ("vision",), "Grad-CAM on the vision tower's last used layer", _gradcam),
)}


class UnknownMethod(ValueError):
    """A method name not in the registry."""


def parse_methods(value: str) -> list[str]:
    """`ig,occlusion` -> ["ig", "occlusion"], each checked against the registry."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise UnknownMethod(f"unknown attribution method {', '.join(map(repr, unknown)) or '(none given)'}; "
                            f"available (all computed by captum): {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def method_space(name: str, requested: str) -> str:
    """The input space a method runs in given `--input` (methods with one fixed space ignore it)."""
    spaces = METHODS[name].spaces
    return requested if requested in spaces else spaces[0]
