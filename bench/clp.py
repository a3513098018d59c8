"""Cost of one CLP training step vs one ERM step on the same batch (LoRA on a tiny LLaVA, CPU).

Measured side by side, interleaved, in one run (median of `--repeats`):
- erm:        the option objective's forward + backward on the batch and nothing else (the floor);
- clp-2nd:    ClpTrainer.compute_loss + backward: forward with the hidden-state hook, characteristics,
              the meta step (virtual step through `functional_call` with create_graph, meta forwards on
              the clean/F/CF meta batch, backward to Omega, Adam), the perturbed loss, the background-
              saliency term (a double backward through the input gradient), and the final backward;
- clp-2nd-nosal: the same with --saliency-lambda 0;
- clp-1st:    --first-order (no graph through the virtual step; a JVP by two extra forwards), saliency on.
The ratios to erm are what to read (the machine may be shared: absolute times are noisy).

    python bench/clp.py [--batch-size 8] [--meta-batch 8] [--repeats 5] [--image-size 224]
    python bench/clp.py --quick       # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

from helpers.tiny_models import build_tiny_llava  # noqa: E402


def _trainers(model_dir: Path, world: Path, args: argparse.Namespace, work: Path) -> tuple[dict, Any, list]:
    """One CLP trainer per variant (sharing one LoRA model) and the training batch."""
    from transformers import TrainingArguments

    from spuriverse.models.hf import HFBackend
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import load_examples
    from spuriverse.train.lora import apply_lora, target_regex
    from spuriverse.train.methods import MethodOptions
    from spuriverse.train.methods.clp_trainer import ClpTrainer
    from spuriverse.train.methods.plan import plan_method, trainer_kwargs
    from spuriverse.train.methods.trainers import MethodBatcher

    backend = HFBackend(str(model_dir), device="cpu")
    torch.manual_seed(0)
    model = apply_lora(backend.model, r=8, alpha=16, dropout=0.0, target_modules=target_regex(backend.model, "language"))
    train = [ex for ex in load_examples([TrainDataSpec(source=str(world / "train"), config="biased", groups=None,
                                                             variants=None)])
             if ex.kind == "choice"][: args.batch_size]
    meta = TrainDataSpec(source=str(world / "train"), config="balanced", split="validation", groups=None, variants=None)
    variants = {"clp-2nd": (False, 0.5), "clp-2nd-nosal": (False, 0.0), "clp-1st": (True, 0.5)}
    trainers, batcher = {}, None
    for name, (first_order, lam) in variants.items():
        opts = MethodOptions(meta_data=meta, meta_size=2 * args.meta_batch, meta_batch=args.meta_batch,
                             first_order=first_order, saliency_lambda=lam)
        plan = plan_method("clp", opts, train)
        batcher_kw, kw = trainer_kwargs(plan, SimpleNamespace(**plan.settings(2e-4)), backend, "direct")
        batcher = MethodBatcher(backend, **batcher_kw)
        targs = TrainingArguments(output_dir=str(work / name), report_to=[], use_cpu=True, disable_tqdm=True,
                                  remove_unused_columns=False, per_device_train_batch_size=args.batch_size)
        trainers[name] = ClpTrainer(model=model, args=targs, data_collator=batcher, train_dataset=train,
                                    processing_class=backend.processor, **kw)
    return trainers, batcher, train


def _timed(fn, model) -> float:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, float]:
    from spuriverse.data.world import build_world
    from spuriverse.train.batching import option_loss

    with tempfile.TemporaryDirectory(prefix="bench-clp-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_llava(work / "model", image_size=args.image_size, patch_size=args.patch_size,
                                     hidden=args.hidden, layers=args.layers, vision_hidden=args.hidden)
        build_world(work / "world", n_train=4 * args.batch_size, n_val=4 * args.meta_batch, n_controls=1,
                    naming_frac=0.0)
        trainers, batcher, train = _trainers(model_dir, work / "world", args, work)
        any_trainer = next(iter(trainers.values()))
        model = any_trainer.model
        model.train()
        inputs = any_trainer._prepare_inputs({"n": torch.tensor(len(train)), "choice": batcher.choice_batch(train)})
        def erm() -> None:
            option_loss(model, inputs["choice"])[0].mean().backward()

        def clp(tr: Any) -> Callable[[], None]:
            return lambda: tr.compute_loss(model, inputs).backward()

        steps: dict[str, Callable[[], None]] = {"erm": erm, **{name: clp(tr) for name, tr in trainers.items()}}
        times: dict[str, list[float]] = {k: [] for k in steps}
        for fn in steps.values():  # warm-up
            _timed(fn, model)
        for _ in range(args.repeats):
            for name, fn in steps.items():
                times[name].append(_timed(fn, model))
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--meta-batch", type=int, default=8, help="clean meta items (+ as many F and CF)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=14)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.meta_batch, args.repeats = 4, 2, 1
        args.image_size, args.patch_size, args.hidden, args.layers = 32, 8, 32, 2
    torch.set_num_threads(args.threads)
    med = run(args)
    print(f"one training step, batch {args.batch_size}, meta batch {args.meta_batch} x 3 (clean/F/CF), "
          f"LoRA r8 on a {args.image_size}px / hidden {args.hidden} x {args.layers} LLaVA, {args.threads} thread(s), "
          f"median of {args.repeats}:")
    for name, t in med.items():
        print(f"  {name:14s} {t * 1000:9.1f} ms   x{t / med['erm']:.2f} of erm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
