"""Per-item scores of an attribution map (the gradient-attribution review, arXiv 2403.10415, sec. 5).

- **Localisation** (where the dataset carries masks, e.g. the planted-cue world's `core_mask` /
  `cue_mask`): *cue mass* and *core mass*, the share of the map's absolute attribution inside each mask
  (compare with the mask's area share, its value for a uniform map); the *pointing game*: which mask
  the map's largest absolute value falls in.
- **Faithfulness**: *deletion* / *insertion* AUC: the score as the highest-attributed pixels of the
  original image are replaced by the baseline (deletion: lower is more faithful) or revealed on it
  (insertion: higher is more faithful), at 17 fractions from 0 to 1; *infidelity* (captum.metrics).
- **Robustness**: *sensitivity-max* (captum.metrics): the largest relative change of the map under
  small uniform input noise.
- **Sanity / agreement**: Spearman rank correlation between two maps (model-randomisation check,
  cross-method agreement).

Noise is seeded by the item alone, so every score is independent of the batch it was computed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from spuriverse.diagnose.attribution.engine import Attribution, Attributor, Batch
from spuriverse.diagnose.attribution.methods import METHODS, MethodParams, seeded

METRICS = ("mass", "pointing", "deletion", "insertion", "infidelity", "sensitivity")
FRACTIONS = 16  # deletion / insertion: 0, 1/16, ..., 1 of the pixels


class MaskError(ValueError):
    """A ground-truth mask that does not fit its image."""


@dataclass
class Localisation:
    core_mass: float | None = None
    cue_mass: float | None = None
    core_area: float | None = None
    cue_area: float | None = None
    pointing: str | None = None  # core | cue | both | none


def check_mask(mask: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    """A boolean mask of the image's size (height x width), or `MaskError` naming both sizes."""
    w, h = size
    if mask.shape != (h, w):
        raise MaskError(f"{what} is {mask.shape[1]}x{mask.shape[0]} (width x height) but its image is {w}x{h}")
    return mask.astype(bool)


def localisation(raster: np.ndarray, core: np.ndarray | None, cue: np.ndarray | None) -> Localisation:
    a = np.abs(raster.astype(np.float64))
    total = a.sum()
    out = Localisation()
    peak = np.unravel_index(int(np.argmax(a)), a.shape) if total > 0 else None
    hits = []
    for name, mask in (("core", core), ("cue", cue)):
        if mask is None:
            continue
        setattr(out, f"{name}_mass", float(a[mask].sum() / total) if total > 0 else None)
        setattr(out, f"{name}_area", float(mask.mean()))
        if peak is not None and mask[peak]:
            hits.append(name)
    if peak is not None and (core is not None or cue is not None):
        out.pointing = "both" if len(hits) == 2 else (hits[0] if hits else "none")
    return out


def _auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equally spaced fractions of [0, 1]."""
    return float((curve[:-1] + curve[1:]).sum() / (2 * (len(curve) - 1)))


def deletion_insertion(att: Attributor, batch: Batch, rasters: list[np.ndarray]) -> list[tuple[float, float]]:
    """Per item (deletion AUC, insertion AUC) of the target score, pixels ranked by the map (largest first)."""
    base_images = att.baseline_batch(batch)[0]
    out = []
    for i, raster in enumerate(rasters):
        one = batch.item(i)
        x = np.asarray(batch.images[i], dtype=np.float32)
        b = np.asarray(base_images[i], dtype=np.float32)
        order = np.argsort(-raster.ravel(), kind="stable")
        rows = []
        for k in range(FRACTIONS + 1):
            m = np.zeros(raster.size, bool)
            m[order[: round(k * raster.size / FRACTIONS)]] = True
            m = m.reshape(raster.shape)[..., None]
            rows += [np.where(m, b, x), np.where(m, x, b)]
        scores = _score_images(att, one, np.stack(rows))
        out.append((_auc(scores[0::2]), _auc(scores[1::2])))
    return out


def _score_images(att: Attributor, one: Batch, images: np.ndarray) -> np.ndarray:
    """The target score of one item's request on each of `images` [rows, H, W, 3] (in chunks)."""
    forward = att.image_forward(one)
    step = att.max_rows or 64
    scores = []
    with torch.no_grad():
        for s in range(0, len(images), step):
            chunk = torch.from_numpy(images[s: s + step])
            letters = tuple(t.expand(len(chunk), *t.shape[1:]) for t in one.letter_args())
            scores.append(forward(chunk, *letters).float().cpu())
    return torch.cat(scores).numpy()


def robustness(att: Attributor, batch: Batch, method: str, space: str, p: MethodParams,
               attribution: Attribution, samples: int = 4) -> list[tuple[float | None, float | None]]:
    """Per item (infidelity, sensitivity-max) for gradient methods (None for the others: their maps live
    in another space than a perturbation of the input). Perturbations: Gaussian (infidelity) and uniform
    (sensitivity) noise of 2 % of the item's input range, seeded by the item."""
    from captum.metrics import infidelity, sensitivity_max

    make = METHODS[method].call
    if make is None:
        return [(None, None)] * len(batch)
    out: list[tuple[float | None, float | None]] = []
    for i in range(len(batch)):
        one = batch.item(i)
        with seeded(one.keys[0], p.seed + 1, one.pixels.device):
            call = make(att, one, space, p)
            x = call.inputs
            scale = float((x.max() - x.min()).detach()) * 0.02

            perturb = _gaussian(scale)
            infid = infidelity(call.forward, perturb, x, attribution.values[i: i + 1].to(x.device),
                               additional_forward_args=call.args, n_perturb_samples=samples,
                               max_examples_per_batch=samples)
            sens = sensitivity_max(call.explain, x, perturb_radius=scale, n_perturb_samples=samples,
                                   max_examples_per_batch=samples, **call.kwargs)
        out.append((float(infid[0]), float(sens[0])))
    return out


def _gaussian(scale: float):  # type: ignore[no-untyped-def]
    """captum infidelity's perturbation: (noise, input - noise), Gaussian with sd `scale`."""
    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn_like(inputs) * scale
        return noise, inputs - noise

    return perturb


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of two maps (ties get their average rank); None if either is constant."""
    ra = pd.Series(np.asarray(a, np.float64).ravel()).rank().to_numpy()
    rb = pd.Series(np.asarray(b, np.float64).ravel()).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def randomise_weights(model: torch.nn.Module, seed: int) -> None:
    """Model-randomisation sanity check (Adebayo et al.): every weight tensor redrawn from a normal
    distribution with its own mean and standard deviation (a fixed seed). In place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() < 2:
                continue
            mean, std = param.float().mean(), param.float().std()
            fresh = torch.randn(param.shape, generator=g) * std + mean
            param.copy_(fresh.to(param.dtype))


