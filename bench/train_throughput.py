"""Training throughput: `spuriverse train` (LoRA) vs the pure forward + backward + optimizer floor.

One run, same model, same examples, the same number of optimizer steps at the same batch size,
measured side by side, alternately `--repeat` times, each in its own process (so each peak memory is
its own). Compared two ways: the fastest of each, and per round (each side over the floor run beside
it; median and range), which a host whose speed drifts between rounds disturbs less:

- ours:  the whole `run_train` call (read + validate the data, load the model, wrap it with LoRA,
         the HF Trainer's loop with our collator: chat template, processor, option letters; the option
         loss; checkpoint at the end; save the adapter and the manifest). Two figures: the training
         loop's samples/s (from the Trainer's start to the end of its last step: every batch's
         collation and every step, not the one-off load and save), and the whole call's wall time;
  run twice: `--prefetch on` (the next step's batches collated in a background thread while this
         step runs) and `--prefetch off` (collated in the loop's thread); the headline is the one
         `--prefetch auto` (the default) picks here: on only where the step leaves a core free;
- floor: the same LoRA-wrapped model, its batches collated beforehand by the same collator (the same
         examples, in order), then only forward (the same option loss) + backward + gradient clipping +
         AdamW step + zero_grad: what a perfect harness would cost.

Model: a medium-tiny LLaVA (CLIP 224 px / patch 14 = 256 image tokens, Llama hidden 128, 4 layers),
random weights, built offline; LoRA r 16 on the language model (the defaults). Target: ours/floor <= 1.3
in samples/s. `--threads N` sets torch's intra-op threads on every side (default: torch's own, all cores);
with fewer threads than cores the background collation has a core of its own, as on a GPU machine.

    python bench/train_throughput.py [--items 256] [--steps 40] [--batch-size 8] [--threads N] [--profile]
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
import statistics
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


def _options(model_dir: Path, data_dir: Path, out: Path, steps: int, batch_size: int, prefetch: bool,
             callbacks: tuple = ()):
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions

    spec = TrainDataSpec(source=str(data_dir), groups=None, variants=None, kinds=None)
    return TrainOptions(model=str(model_dir), out=out, train_data=[spec],
                        max_steps=steps, batch_size=batch_size, learning_rate=LR, lora_dropout=0.0,
                        progress=False, save_steps=steps, prefetch=prefetch, callbacks=callbacks)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


def ours(model_dir: Path, data_dir: Path, out: Path, steps: int, batch_size: int, prefetch: bool,
         threads: int | None, profile: bool) -> dict:
    """The whole `run_train` call, wall time (the libraries imported beforehand, as the floor's are),
    and its training loop (the Trainer's start to the end of its last step)."""
    import peft  # noqa: F401
    import transformers.trainer  # noqa: F401
    from transformers import TrainerCallback

    from spuriverse.train import run_train
    from spuriverse.train import batching, checkpoints, lora, trainer  # noqa: F401

    marks: dict[str, float] = {}

    class LoopClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks["begin"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            marks["last_step"] = time.perf_counter()

    _threads(threads)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    manifest = run_train(_options(model_dir, data_dir, out, steps, batch_size, prefetch, (LoopClock(),)))
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    text = ""
    if prof:
        buf = io.StringIO()
        sort, top = os.environ.get("PSORT", "cumulative"), int(os.environ.get("PN", "30"))
        pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(top)
        text = buf.getvalue()
    assert manifest is not None and manifest.global_steps == steps
    return {"seconds": marks["last_step"] - marks["begin"], "wall": wall, "peak_mb": _peak_mb(), "profile": text}


def floor(model_dir: Path, data_dir: Path, steps: int, batch_size: int, threads: int | None) -> dict:
    """forward (option loss) + backward + clip + AdamW step on batches collated beforehand."""
    import torch
    from transformers import set_seed

    from spuriverse.models.registry import build_model, resolve_model
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.batching import Batcher, option_loss, shuffle_options
    from spuriverse.train.data import load_examples
    from spuriverse.train.lora import apply_lora, target_regex

    backend = build_model(resolve_model(str(model_dir)), dtype="float32", device="cpu", batch_size=batch_size)
    _threads(threads)
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
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "wall": seconds, "peak_mb": _peak_mb(), "profile": ""}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


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
    ap.add_argument("--repeat", type=int, default=3, help="alternate the three sides this many times; the fastest of each")
    ap.add_argument("--threads", type=int, help="torch intra-op threads on every side (default: torch's own)")
    ap.add_argument("--profile", action="store_true", help="cProfile the `run_train` call (printed after; "
                    "env PSORT = pstats sort key, default cumulative; PN = rows, default 30)")
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
        print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, {os.cpu_count()} cores; "
              f"{len(rows[: args.items])} items, {args.steps} steps x batch {args.batch_size} = "
              f"{args.steps * args.batch_size} samples")
        runs: dict[str, list[dict]] = {"prefetch_on": [], "prefetch_off": [], "floor": []}
        common = (args.steps, args.batch_size)
        for k in range(1 if args.quick else args.repeat):
            runs["prefetch_on"].append(in_child("ours", model_dir, data_dir, tmp / f"on{k}", *common, True,
                                                args.threads, args.profile and k == 0))
            runs["floor"].append(in_child("floor", model_dir, data_dir, *common, args.threads))
            runs["prefetch_off"].append(in_child("ours", model_dir, data_dir, tmp / f"off{k}", *common, False,
                                                 args.threads, False))
        for name, rs in runs.items():
            print(f"  {name + ':':<14}" + ", ".join(f"{r['seconds']:.2f} s" for r in rs))
        best = {name: min(rs, key=lambda r: r["seconds"]) for name, rs in runs.items()}
        profile = runs["prefetch_on"][0]["profile"]
        auto = "prefetch_on" if (args.threads or torch.get_num_threads()) < len(os.sched_getaffinity(0)) \
            else "prefetch_off"  # what --prefetch auto picks on CPU (spuriverse.train.trainer)

    samples = args.steps * args.batch_size
    f = best["floor"]["seconds"]
    labels = {"prefetch_on": "ours, --prefetch on", "prefetch_off": "ours, --prefetch off",
              "floor": "fwd+bwd+AdamW (floor)"}
    print(f"\n{'':<32}{'loop s':>8}{'samples/s':>11}{'/ floor':>9}{'call s':>8}{'/ floor':>9}{'peak RSS MB':>13}")
    for name, r in best.items():
        print(f"{labels[name]:<32}{r['seconds']:>8.2f}{samples / r['seconds']:>11.2f}{r['seconds'] / f:>9.2f}"
              f"{r['wall']:>8.2f}{r['wall'] / f:>9.2f}{r['peak_mb']:>13.0f}")
    # Per round: each side against the floor run beside it (robust to the host's speed drifting
    # between rounds, which the fastest-of-each comparison is not).
    print("\nper round, against the floor run beside it (median [min, max]):")
    for name in ("prefetch_on", "prefetch_off"):
        loop = [r["seconds"] / fl["seconds"] for r, fl in zip(runs[name], runs["floor"])]
        call = [r["wall"] / fl["seconds"] for r, fl in zip(runs[name], runs["floor"])]
        print(f"  {labels[name]:<30} loop {_spread(loop)}   whole call {_spread(call)}")
    ours = best[auto]
    loop = [r["seconds"] / fl["seconds"] for r, fl in zip(runs[auto], runs["floor"])]
    print(f"\nours (--prefetch auto = {auto.split('_')[1]} here) / floor = {statistics.median(loop):.2f} in samples/s, "
          f"per-round median ({ours['seconds'] / f:.2f} fastest vs fastest; target <= 1.3; the training loop: every "
          f"batch collated, every step);\n    {ours['wall'] / f:.2f} fastest vs fastest for the whole run_train call "
          "(+ reading and validating the data, loading the model, saving)")
    if profile:
        print("\n--- profile: run_train (cumulative, top 30) ---\n" + profile)


if __name__ == "__main__":
    main()
