"""Training throughput: `spuriverse train` (LoRA) vs the pure forward + backward + optimizer floor.

One run, same model, same examples, the same number of optimizer steps at the same batch size,
measured side by side, alternately `--repeat` times (the fastest of each is compared; each in its own
process, so each peak memory is its own):

- ours:  the whole `run_train` call (read + validate the data, load the model, wrap it with LoRA,
         the HF Trainer's loop with our collator: chat template, processor, option letters; the option
         loss; checkpoint at the end; save the adapter and the manifest);
- floor: the same LoRA-wrapped model, its batches collated beforehand by the same collator (the same
         examples, in order), then only forward (the same option loss) + backward + gradient clipping +
         AdamW step + zero_grad: what a perfect harness would cost.

Model: a medium-tiny LLaVA (CLIP 224 px / patch 14 = 256 image tokens, Llama hidden 128, 4 layers),
random weights, built offline; LoRA r 16 on the language model (the defaults). Target: ours/floor <= 1.3.

    python bench/train_throughput.py [--items 256] [--steps 40] [--batch-size 8] [--profile]
    python bench/train_throughput.py --quick     # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LR = 2e-4


def _options(model_dir: Path, data_dir: Path, out: Path, steps: int, batch_size: int, workers: int):
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions

    spec = TrainDataSpec(source=str(data_dir), groups=None, variants=None, kinds=None)
    return TrainOptions(model=str(model_dir), out=out, train_data=[spec],
                        max_steps=steps, batch_size=batch_size, learning_rate=LR, lora_dropout=0.0,
                        progress=False, save_steps=steps, num_workers=workers)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(model_dir: Path, data_dir: Path, out: Path, steps: int, batch_size: int, workers: int,
         profile: bool) -> dict:
    """The whole `run_train` call, wall time (the libraries imported beforehand, as the floor's are)."""
    import peft  # noqa: F401
    import transformers.trainer  # noqa: F401

    from spuriverse.train import run_train
    from spuriverse.train import batching, checkpoints, lora, trainer  # noqa: F401

    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    manifest = run_train(_options(model_dir, data_dir, out, steps, batch_size, workers))
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    text = ""
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
        text = buf.getvalue()
    assert manifest is not None and manifest.global_steps == steps
    return {"seconds": wall, "peak_mb": _peak_mb(), "profile": text}


def floor(model_dir: Path, data_dir: Path, steps: int, batch_size: int) -> dict:
    """forward (option loss) + backward + clip + AdamW step on batches collated beforehand."""
    import torch
    from transformers import set_seed

    from spuriverse.models.registry import build_model, resolve_model
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.batching import Batcher, option_loss, shuffle_options
    from spuriverse.train.data import load_examples
    from spuriverse.train.lora import apply_lora, target_regex

    backend = build_model(resolve_model(str(model_dir)), dtype="float32", device="cpu", batch_size=batch_size)
    set_seed(0)
    model = apply_lora(backend.model, r=16, alpha=16.0, dropout=0.0,
                       target_modules=target_regex(backend.model, "language"))
    model.train()
    examples = load_examples([TrainDataSpec(source=str(data_dir), groups=None, variants=None, kinds=None)])
    batcher = Batcher(backend)
    order = [shuffle_options(examples[i % len(examples)], 0, 0) for i in range(steps * batch_size)]
    batches = [batcher(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    t0 = time.perf_counter()
    for batch in batches:
        loss, _ = option_loss(model, batch["choice"])
        (loss.sum() / batch["n"]).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "profile": ""}


def in_child(fn_name: str, *args) -> dict:
    """Run `fn_name(*args)` in a fresh process (its own peak memory); its exception is raised here."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(globals()[fn_name], *args).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=256, help="training items (default 256)")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2, help="alternate ours/floor this many times; the fastest of each")
    ap.add_argument("--profile", action="store_true", help="cProfile the `run_train` call (printed after)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (32 px model, 22 items, 2 steps): a smoke run")
    args = ap.parse_args()

    import torch

    from helpers.bench_data import long_rows
    from helpers.tiny_models import build_tiny_llava
    from helpers.train_data import write_train_dataset

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("HF_HOME", str(tmp / "hf"))
        if args.quick:
            args.items, args.steps, args.batch_size = 22, 2, 4
            model_dir = build_tiny_llava(tmp / "model")
        else:
            model_dir = build_tiny_llava(tmp / "model", image_size=224, patch_size=14, hidden=128, layers=4,
                                         vision_hidden=64)
        n_groups = max(2, -(-args.items // 11))
        rows = long_rows(n_groups=n_groups, n_spurious=10, n_counter=0, n_controls=0, image_size=(320, 240))
        data_dir = write_train_dataset(tmp / "data", rows[: args.items])
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(rows[: args.items])} items, "
              f"{args.steps} steps x batch {args.batch_size} = {args.steps * args.batch_size} samples")
        ours_runs, floor_runs = [], []
        for k in range(1 if args.quick else args.repeat):
            ours_runs.append(in_child("ours", model_dir, data_dir, tmp / f"run{k}", args.steps, args.batch_size, 0,
                                      args.profile and k == 0))
            floor_runs.append(in_child("floor", model_dir, data_dir, args.steps, args.batch_size))
        a = min(ours_runs, key=lambda r: r["seconds"])
        a["profile"] = ours_runs[0]["profile"]
        b = min(floor_runs, key=lambda r: r["seconds"])
        print("  ours:  " + ", ".join(f"{r['seconds']:.2f} s" for r in ours_runs))
        print("  floor: " + ", ".join(f"{r['seconds']:.2f} s" for r in floor_runs))

    samples = args.steps * args.batch_size
    print(f"\n{'':<34}{'seconds':>10}{'samples/s':>11}{'peak RSS MB':>13}")
    print(f"{'spuriverse train --lora (ours)':<34}{a['seconds']:>10.2f}{samples / a['seconds']:>11.2f}{a['peak_mb']:>13.0f}")
    print(f"{'fwd+bwd+AdamW (floor)':<34}{b['seconds']:>10.2f}{samples / b['seconds']:>11.2f}{b['peak_mb']:>13.0f}")
    print(f"\nours / floor = {a['seconds'] / b['seconds']:.2f}   (target <= 1.3; whole run_train call vs the bare loop)")
    if a["profile"]:
        print("\n--- profile: run_train (cumulative, top 30) ---\n" + a["profile"])


if __name__ == "__main__":
    main()
