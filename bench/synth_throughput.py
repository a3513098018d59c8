"""Synthesis throughput: several prompts per pipeline call vs one image per call.

One run, same tiny random-weight Stable Diffusion pipeline (UNet 32/64, CLIP hidden 32, VAE 32/64,
built offline and loaded through `AutoPipelineForText2Image.from_pretrained`), same requests,
measured side by side through `Text2ImageBackend.generate`:

- single:  `batch_size=1`, one pipeline call per image (what a naive loop does);
- batched: `batch_size=B` for each B in `--batch-sizes`, several prompts per call.

Requests: `--candidates` x `--variants` groups of `--per-group` images (one prompt, `--per-group`
seeds from `derive_seed`): 2 x 2 x 10 = 40 images by default. Repetitions are interleaved and the
best of `--repeats` is kept (this machine is shared; the minimum is the least disturbed). With
`--profile`, where the time of one call goes: text encoder, UNet, VAE decode, the rest (scheduler
setup, latents, pre/post-processing, Python). Issue target: batched/single >= 3x.

    python bench/synth_throughput.py [--sizes 32 64] [--steps 2] [--batch-sizes 10 20] [--profile]
    python bench/synth_throughput.py --quick   # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

from helpers.tiny_diffusion import build_tiny_sd  # noqa: E402
from spuriverse.synth.base import SynthRequest, derive_seed, image_sha256  # noqa: E402
from spuriverse.synth.diffusers_backends import Text2ImageBackend  # noqa: E402

PROMPTS = {
    ("dog-snow", "spurious"): "a photo of a dog in the snow",
    ("dog-snow", "counter"): "a photo of a dog on a sunny beach",
    ("cow-grass", "spurious"): "a photo of a cow on green grass",
    ("cow-grass", "counter"): "a photo of a cow in a city street",
}


def make_requests(n_cand: int, n_var: int, per_group: int, size: int, steps: int) -> list[SynthRequest]:
    reqs = []
    for c in range(n_cand):
        for variant in ("spurious", "counter")[:n_var]:
            cid = f"cand-{c:03d}"
            prompt = PROMPTS.get((["dog-snow", "cow-grass"][c % 2], variant), f"candidate {c} {variant}")
            prompt = f"{prompt}, view {c // 2}" if c >= 2 else prompt
            for k in range(per_group):
                reqs.append(SynthRequest(candidate_id=cid, variant=variant, k=k, prompt=prompt,  # type: ignore[arg-type]
                                         seed=derive_seed(0, cid, variant, k), width=size, height=size, steps=steps))
    return reqs


def timed(backend: Text2ImageBackend, reqs: list[SynthRequest]) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    results = backend.generate(reqs)
    wall = time.perf_counter() - t0
    assert all(r.status == "ok" for r in results), [r.message for r in results if r.status != "ok"][:3]
    return wall, [image_sha256(r.image) for r in results]


def profile(backend: Text2ImageBackend, reqs: list[SynthRequest]) -> dict[str, float]:
    """Seconds per image in each part of the pipeline over one pass of `reqs`."""
    acc: dict[str, float] = collections.defaultdict(float)
    pipe, patched = backend.pipe, []

    def wrap(obj, attr, name):
        inner = getattr(obj, attr)

        def timed_call(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                acc[name] += time.perf_counter() - t0

        setattr(obj, attr, timed_call)
        patched.append((obj, attr, inner))

    wrap(pipe.text_encoder, "forward", "text encoder")
    wrap(pipe.unet, "forward", "unet")
    wrap(pipe.vae, "decode", "vae decode")
    wrap(pipe.image_processor, "postprocess", "postprocess")
    try:
        total, _ = timed(backend, reqs)
    finally:
        for obj, attr, inner in reversed(patched):
            setattr(obj, attr, inner)
    parts = {k: v / len(reqs) for k, v in acc.items()}
    parts["rest (scheduler, latents, python)"] = total / len(reqs) - sum(parts.values())
    parts["total"] = total / len(reqs)
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--model", help="a text-to-image pipeline folder or id (default: build the tiny one)")
    ap.add_argument("--candidates", type=int, default=2)
    ap.add_argument("--variants", type=int, default=2, choices=(1, 2))
    ap.add_argument("--per-group", type=int, default=10, help="images (seeds) per candidate variant")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image side(s) in pixels")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="per-part time per image (single vs best batched)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (4 images of 32 px, batch size 2, one repeat, "
                    "with --profile): a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.candidates, args.variants, args.per_group, args.sizes = 1, 2, 2, [32]
        args.batch_sizes, args.repeats, args.profile = [2], 1, True

    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        model = args.model or str(build_tiny_sd(Path(tmp) / "tiny-sd"))
        backends = {1: Text2ImageBackend(model, batch_size=1)}
        backends.update({b: Text2ImageBackend(model, batch_size=b) for b in args.batch_sizes})
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {'tiny SD' if not args.model else model}")
        for size in args.sizes:
            reqs = make_requests(args.candidates, args.variants, args.per_group, size, args.steps)
            print(f"\n== {len(reqs)} images ({args.candidates} candidates x {args.variants} variants x "
                  f"{args.per_group} seeds), {size}x{size}, {args.steps} steps, guidance 7.5 ==")
            for b, backend in backends.items():  # warm-up: one call of each shape
                backend.generate(reqs[: max(1, b)])
            best: dict[int, float] = {b: float("inf") for b in backends}
            shas: dict[int, list[str]] = {}
            for _ in range(args.repeats):
                for b, backend in backends.items():
                    wall, shas[b] = timed(backend, reqs)
                    best[b] = min(best[b], wall)
            single = best[1]
            print(f"{'mode':<24}{'wall s':>9}{'img/s':>9}{'speed-up':>10}   same pixels as single")
            print(f"{'one image per call':<24}{single:>9.3f}{len(reqs) / single:>9.1f}{1.0:>9.2f}x")
            for b in args.batch_sizes:
                same = sum(x == y for x, y in zip(shas[b], shas[1]))
                print(f"{f'batched, batch_size {b}':<24}{best[b]:>9.3f}{len(reqs) / best[b]:>9.1f}"
                      f"{single / best[b]:>9.2f}x   {same}/{len(reqs)}")
            top = min(args.batch_sizes, key=lambda b: best[b])
            verdict = "meets" if single / best[top] >= 3 else "below"
            print(f"best: batch_size {top}, {single / best[top]:.2f}x ({verdict} the 3x target)")
            if args.profile:
                prof = {b: profile(backends[b], reqs) for b in (1, top)}
                print(f"{'ms per image':<36}{'single':>9}{f'batch {top}':>10}")
                for part in prof[1]:
                    print(f"  {part:<34}{prof[1][part] * 1e3:>9.1f}{prof[top][part] * 1e3:>10.1f}")
        for backend in backends.values():
            backend.close()


if __name__ == "__main__":
    main()
