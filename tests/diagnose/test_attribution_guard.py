"""The pre-softmax attack (Lerma & Lucas, arXiv 2307.03305) cannot move our maps; it moves raw-logit maps.

A forward hook on `lm_head` adds K * t(x) to every vocabulary logit, where t is a statistic of the
language model's hidden states over the image tokens (so it depends on the image, and its gradient
reaches every attribution). Every next-token probability stays the same; attributions of the default
target (log-softmax over the option letters) stay the same up to float32 rounding of the shifted logits;
attributions of a raw letter logit change (cosine < 0.9). Then the same on a tiny CNN with Grad-CAM: on a
raw logit the map collapses toward the class-agnostic map sum_k A_k, on the default target it does not.
"""

from __future__ import annotations

import io
from contextlib import contextmanager, nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spuriverse.diagnose.attribution.engine import Attributor
from spuriverse.diagnose.attribution.methods import METHODS, MethodParams
from spuriverse.diagnose.attribution.target import letter_score
from spuriverse.models.base import ImageInput, Request
from spuriverse.models.hf import HFBackend

KS = (1, 100, 1000)
CASES = [("ig", "pixels"), ("ig", "embedding"), ("gradcam", "vision")]


def _image(seed: int) -> ImageInput:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return ImageInput.from_bytes(buf.getvalue())


@contextmanager
def shifted(model, k: float):
    """lm_head's output + k * t(x); t = mean over the image tokens of the last hidden state . v (|v| = 1)."""
    v = torch.randn(model.config.text_config.hidden_size, generator=torch.Generator().manual_seed(0))
    v = v / v.norm()
    seen: dict[str, torch.Tensor] = {}

    def keep_ids(m, args, kwargs):
        seen["ids"] = kwargs["input_ids"]

    def keep_hidden(m, args, kwargs, out):
        seen["h"] = out.last_hidden_state

    def shift(m, args, out):
        img = (seen["ids"] == model.config.image_token_id).float()[..., None]
        t = ((seen["h"] * img) @ v).sum(1) / img.sum(1)[:, 0]
        return out + k * t[:, None, None]

    handles = [model.register_forward_pre_hook(keep_ids, with_kwargs=True),
               model.model.language_model.register_forward_hook(keep_hidden, with_kwargs=True),
               model.lm_head.register_forward_hook(shift)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@pytest.fixture(scope="module")
def guard_runs(tiny_llava):
    """For each case and K (0 = no hook): next-token probabilities and the default / raw attributions."""
    backend = HFBackend(str(tiny_llava), device="cpu")
    reqs = [Request(system=None, prompt=f"Question {i}? (A) x (B) y (C) z", image=_image(i), letters=("A", "B", "C"))
            for i in range(2)]
    params = MethodParams(ig_steps=8)
    out = {}
    for k in (0, *KS):
        with shifted(backend.model, k) if k else nullcontext():
            _, _, _, inputs = backend._prepare(reqs)
            with torch.no_grad():
                probs = torch.softmax(backend.model(**inputs, logits_to_keep=1).logits[:, -1].float(), -1)
            for raw in (False, True):
                att = Attributor(backend, target="predicted", raw=raw)
                batch = att.prepare(["a", "b"], reqs, ["A", "B"])
                for method, space in CASES:
                    out[(method, space, raw, k)] = METHODS[method].run(att, batch, space, params).values.flatten(1)
            out[("probs", k)] = probs
    return out


@pytest.mark.parametrize("k", KS)
def test_next_token_probabilities_unchanged(guard_runs, k):
    assert (guard_runs[("probs", k)] - guard_runs[("probs", 0)]).abs().max() < 1e-6


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("method,space", CASES)
def test_default_target_is_immune_raw_logits_are_not(guard_runs, method, space, k):
    ref, hooked = guard_runs[(method, space, False, 0)], guard_runs[(method, space, False, k)]
    # the shifted logits lose float32 precision in proportion to K * |t|: ~1e-6 of the map per unit of K
    assert torch.allclose(hooked, ref, rtol=1e-3, atol=max(1e-5, 5e-6 * k) * float(ref.abs().max()))
    assert F.cosine_similarity(hooked, ref, dim=1).min() > 0.9999
    raw_ref, raw_hooked = guard_runs[(method, space, True, 0)], guard_runs[(method, space, True, k)]
    assert F.cosine_similarity(raw_hooked, raw_ref, dim=1).max() < 0.9


class TinyCNN(torch.nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.head = torch.nn.Linear(16, classes)
        self.shift = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv2(F.relu(self.conv1(x))))
        self.maps = a
        logits = self.head(a.mean((2, 3)))
        return logits + self.shift * a.mean((1, 2, 3))[:, None]  # the attack: t(x) = mean of sum_k A_k


def _gradcam(cnn: TinyCNN, x: torch.Tensor, raw: bool, k: float) -> torch.Tensor:
    from captum.attr import LayerGradCam

    n, c = x.shape[0], cnn.head.out_features
    ids, mask = torch.arange(c).expand(n, c), torch.ones(n, c, dtype=torch.bool)
    weights = F.one_hot(torch.zeros(n, dtype=torch.long), c).float()
    cnn.shift = k

    def forward(inp):
        return letter_score(cnn(inp), ids, mask, weights, raw=raw)

    return LayerGradCam(forward, cnn.conv2).attribute(x, relu_attributions=True).detach().flatten(1)


def test_gradcam_collapses_to_the_class_agnostic_map_on_raw_logits_only():
    cnn = TinyCNN()
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cnn.shift = 0.0
        cnn(x)
        agnostic = F.relu(cnn.maps.sum(1)).flatten(1)  # sum_k A_k
    for k in (100.0, 1000.0):
        raw_ref, raw_attacked = _gradcam(cnn, x, True, 0.0), _gradcam(cnn, x, True, k)
        assert F.cosine_similarity(raw_attacked, agnostic, dim=1).min() > 0.99
        assert F.cosine_similarity(raw_attacked, raw_ref, dim=1).max() < 0.9
        ours_ref, ours_attacked = _gradcam(cnn, x, False, 0.0), _gradcam(cnn, x, False, k)
        assert torch.allclose(ours_attacked, ours_ref, rtol=1e-3, atol=1e-5 * float(ours_ref.abs().max()) * k)
        assert F.cosine_similarity(ours_ref, agnostic, dim=1).max() < 0.9
