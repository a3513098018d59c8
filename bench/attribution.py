"""Attribution throughput: integrated gradients (32 steps) on N items, three ways, side by side in one run.

- ours:     `spuriverse diagnose attribution`'s IG call on a prepared batch of N items: captum
            IntegratedGradients with every step of every item in one forward/backward, the baseline
            image processed, one extra forward for the completeness check (score at the image and at the
            baseline), and the maps carried onto the original raster;
- one-by-one: captum called one item at a time with `internal_batch_size=1` (one step per pass): what a
            loop over items with captum's defaults for memory safety costs;
- floor:    the same forward+backward passes in one batch and nothing else: the 32 x N interpolated
            inputs built by hand (Gauss-Legendre points, as captum), one forward, one backward.

Every variant attributes the same score (log-softmax over the option letters at the answer position) of
the same items. Model: a tiny LLaVA of the world models' architecture (CLIP 32 px / patch 8 = 16 image
tokens, 64 wide x 2 layers; Llama 64 wide x 2 layers), random weights, built offline; `--image-size 64`
gives 64 image tokens. Each timing is the median of --repeats, the three interleaved.
Targets: ours / floor <= 1.3, one-by-one / ours >= 5.

    python bench/attribution.py [--items 16] [--steps 32] [--repeats 3]
    python bench/attribution.py --quick     # 2 items, 4 steps, 1 repeat: a smoke run
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from helpers.tiny_models import build_tiny_llava  # noqa: E402


def requests(n: int, size: int):
    from spuriverse.models.base import ImageInput, Request

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray((np.random.default_rng(i).random((size, size, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
        out.append(Request(system=None, prompt=f"What is in picture {i}? (A) cat (B) dog (C) bus (D) tree",
                           image=ImageInput.from_bytes(buf.getvalue()), letters=("A", "B", "C", "D")))
    return out


def ours(att, batch, steps: int) -> float:
    from spuriverse.diagnose.attribution.methods import METHODS, MethodParams

    t0 = time.perf_counter()
    a = METHODS["ig"].run(att, batch, "pixels", MethodParams(ig_steps=steps))
    att.rasters(a, batch)
    return time.perf_counter() - t0


def one_by_one(att, batch, steps: int) -> float:
    from captum.attr import IntegratedGradients

    t0 = time.perf_counter()
    for i in range(len(batch)):
        one = batch.item(i)
        _, base = att.baseline_batch(one)
        IntegratedGradients(att.pixel_forward(one)).attribute(
            one.pixels, baselines=base, additional_forward_args=one.static_args() + one.letter_args(),
            n_steps=steps, internal_batch_size=1)
    return time.perf_counter() - t0


def floor(att, batch, base: torch.Tensor, steps: int) -> float:
    """One forward + backward of the 32 x N interpolated inputs, built by hand; nothing else."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    alpha = torch.tensor(alphas(steps), dtype=batch.pixels.dtype)
    shape = (steps,) + (1,) * batch.pixels.dim()
    x = (base[None] + alpha.view(shape) * (batch.pixels - base)[None]).flatten(0, 1).requires_grad_(True)
    args = tuple(torch.cat([a] * steps) for a in batch.static_args() + batch.letter_args())
    forward = att.pixel_forward(batch)
    t0 = time.perf_counter()
    torch.autograd.grad(forward(x, *args).sum(), x)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=32, help="CLIP image size (patch 8; default 32)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--quick", action="store_true", help="2 items, 4 steps, 1 repeat: a smoke run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.items, args.steps, args.repeats = 2, 4, 1

    from spuriverse.diagnose.attribution.engine import Attributor
    from spuriverse.models.hf import HFBackend

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_llava(Path(tmp) / "model", image_size=args.image_size, patch_size=8, hidden=64,
                                     vision_hidden=64)
        backend = HFBackend(str(model_dir), device="cpu")
        att = Attributor(backend, target="predicted", baseline="blurred")
        reqs = requests(args.items, args.image_size)
        batch = att.prepare([str(i) for i in range(args.items)], reqs, ["A"] * args.items)
        base = att.baseline_batch(batch)[1]
        ours(att, batch.item(0), 2)  # warm-up
        times: dict[str, list[float]] = {"ours": [], "one-by-one": [], "floor": []}
        for _ in range(args.repeats):
            times["floor"].append(floor(att, batch, base, args.steps))
            times["ours"].append(ours(att, batch, args.steps))
            times["one-by-one"].append(one_by_one(att, batch, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; IG {args.steps} steps on {args.items} items "
          f"({args.image_size}x{args.image_size} images, {(args.image_size // 8) ** 2} image tokens); median of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:<12} {v:8.3f} s   ({args.items * args.steps / v:7.1f} interpolated inputs/s)")
    print(f"\nours / floor        = {med['ours'] / med['floor']:.2f}   (target <= 1.3)")
    print(f"one-by-one / ours   = {med['one-by-one'] / med['ours']:.1f}   (target >= 5)")


if __name__ == "__main__":
    main()
