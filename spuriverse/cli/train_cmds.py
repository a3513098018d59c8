"""Training command: `spuriverse train` (fine-tune a local model; the folder it writes is a model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spuriverse.eval.prompts import STRATEGIES, strategies_help

if TYPE_CHECKING:  # imported where used: `spuriverse --help` does not load the training stack
    from spuriverse.schema.train import TrainDataSpec, TrainManifest
    from spuriverse.train import TrainOptions as TrainOptionsT

DESCRIPTION = """Fine-tune a local Hugging Face vision-language model on multiple-choice items (LoRA or full).
Prompts are the evaluator's own templates, image where eval puts it; the `option` objective is the
cross-entropy over the item's option letters at the answer position (the forward the log-prob scorer
runs, options shuffled per example and epoch), `completion` the cross-entropy of "(X) option text" on
the assistant tokens. Writes --out: the model (a LoRA adapter that `spuriverse eval --model OUT` loads as
base + adapter, the merged model with --merge, or the full model), train.json (the manifest) and, while
running, checkpoints/. Re-running the same command resumes from the last complete checkpoint."""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a local model (LoRA or full) on multiple-choice items",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="alias (see `spuriverse models`), hub id or local folder")
    p.add_argument("--model-revision", help="model revision (hub commit or tag)")
    p.add_argument("--out", required=True, type=Path, help="output folder (the trained model)")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, action="append", metavar="SRC",
                   help="training items: dataset folder, hub id or parquet/json(l) files (repeatable). Rows are "
                   "benchmark items (long or wide layout) or naming rows (item_id, question, target, image)")
    d.add_argument("--split", help="split of --data (default: train if present, else the only split)")
    d.add_argument("--config", help="dataset config name")
    d.add_argument("--groups", help="only these group ids: a,b,c or @file (one per line)")
    d.add_argument("--variants", help="only these variants, e.g. anchor,spurious")
    d.add_argument("--val-data", action="append", metavar="SRC",
                   help="validation items (default: --data's 'validation' split when it has one)")
    d.add_argument("--val-split", help="split of the validation source (default: validation if present)")
    d.add_argument("--val-groups", help="validation group ids: a,b,c or @file")
    d.add_argument("--val-variants", help="validation variants")
    d.add_argument("--no-val", action="store_true", help="no validation (no best-model selection)")
    d.add_argument("--allow-single-class", action="store_true",
                   help="train even when every example has the same correct answer")
    m = p.add_argument_group("method")
    x = m.add_mutually_exclusive_group()
    x.add_argument("--lora", dest="method", action="store_const", const="lora", help="peft LoRA (default)")
    x.add_argument("--full", dest="method", action="store_const", const="full", help="full fine-tuning")
    m.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default 16, the reference's)")
    m.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA alpha (default 16)")
    m.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    m.add_argument("--lora-target", choices=["language", "vision", "both"], default="language",
                   help="which tower's linear layers get adapters (default language)")
    m.add_argument("--lora-target-modules", metavar="REGEX", help="peft target_modules regex (overrides --lora-target)")
    m.add_argument("--merge", action="store_true", help="write the merged model (adapter kept in OUT/adapter)")
    m.add_argument("--objective", choices=["option", "completion"], default="option")
    m.add_argument("--strategy", choices=list(STRATEGIES), default="direct",
                   help="the eval prompt template to train with (default direct): " + strategies_help())
    m.add_argument("--vocab-weight", type=float, default=0.0,
                   help="option objective: add this x the full-vocabulary CE of the answer letter (default 0)")
    h = p.add_argument_group("optimisation")
    h.add_argument("--epochs", type=float, default=3.0)
    h.add_argument("--max-steps", type=int, help="stop after N optimizer steps (overrides --epochs)")
    h.add_argument("--lr", type=float, help="learning rate (default 2e-4 LoRA, 2e-5 full)")
    h.add_argument("--scheduler", default="linear", help="transformers lr scheduler (linear, cosine, constant...)")
    h.add_argument("--warmup", type=float, default=0.0, help="warmup: a ratio of the steps if < 1, else steps")
    h.add_argument("--weight-decay", type=float, default=0.0)
    h.add_argument("--max-grad-norm", type=float, default=1.0)
    h.add_argument("--batch-size", type=int, default=8, help="per-device batch size (default 8)")
    h.add_argument("--eval-batch-size", type=int, help="validation batch size (default --batch-size)")
    h.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    h.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("runtime")
    r.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    r.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                   help="weights dtype (default float32 on CPU and for --full; bf16/fp16 base weights for LoRA on GPU)")
    pr = r.add_mutually_exclusive_group()
    pr.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    pr.add_argument("--fp16", action="store_true", help="fp16 mixed precision (GPU)")
    r.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for activation memory")
    r.add_argument("--save-steps", type=int, help="checkpoint and validate every N steps (default: every epoch)")
    r.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept (default 2, + the best)")
    r.add_argument("--keep-checkpoints", action="store_true", help="keep OUT/checkpoints after success")
    r.add_argument("--threads", type=int, help="torch intra-op threads (1 is fastest for tiny models on CPU)")
    r.add_argument("--num-workers", type=int, default=0, help="dataloader worker processes")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train, method="lora")


def _cmd_train(a: argparse.Namespace) -> int:
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions, run_train
    from spuriverse.train.data import parse_selection, split_names

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    groups, variants = parse_selection(a.groups), parse_selection(a.variants)
    train = [TrainDataSpec(source=s, split=a.split, config=a.config, groups=groups, variants=variants)
             for s in a.data]
    val_sources = a.val_data or []
    if not val_sources and not a.no_val and a.val_split is None:
        # The training source's own validation split, when it has one.
        if a.split in (None, "train") and "validation" in split_names(a.data[0], a.config):
            val_sources = [a.data[0]]
    val_split = a.val_split or ("validation" if val_sources and not a.val_data else None)
    val = [] if a.no_val else [
        TrainDataSpec(source=s, split=val_split, config=a.config, groups=parse_selection(a.val_groups),
                      variants=parse_selection(a.val_variants)) for s in val_sources]
    from spuriverse.models.hf import LetterTokenError
    from spuriverse.train import TrainConfigMismatch

    try:
        manifest = run_train(_options(a, TrainOptions, train, val))
    except (TrainConfigMismatch, LetterTokenError) as exc:
        print(f"spuriverse train: error: {exc}", file=sys.stderr)
        return 2
    if manifest is not None:
        _print_summary(manifest, a.out)
    return 0


def _options(a: argparse.Namespace, TrainOptions: type[TrainOptionsT], train: list[TrainDataSpec],
             val: list[TrainDataSpec]) -> TrainOptionsT:
    """The command line as the stage's options."""
    return TrainOptions(
        model=a.model, out=a.out, train_data=train, val_data=val, model_revision=a.model_revision,
        method=a.method, lora_r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout,
        lora_target=a.lora_target, lora_target_modules=a.lora_target_modules, objective=a.objective,
        strategy=a.strategy, vocab_weight=a.vocab_weight, epochs=a.epochs, max_steps=a.max_steps,
        learning_rate=a.lr, lr_scheduler=a.scheduler, warmup=a.warmup, weight_decay=a.weight_decay,
        max_grad_norm=a.max_grad_norm, batch_size=a.batch_size, eval_batch_size=a.eval_batch_size,
        grad_accum=a.grad_accum, seed=a.seed, dtype=a.dtype, bf16=a.bf16, fp16=a.fp16,
        gradient_checkpointing=a.gradient_checkpointing, save_steps=a.save_steps,
        save_total_limit=a.save_total_limit, merge=a.merge, keep_checkpoints=a.keep_checkpoints,
        allow_single_class=a.allow_single_class, device=a.device, num_workers=a.num_workers,
        progress=not a.no_progress,
    )


def _print_summary(manifest: TrainManifest, out: Path) -> None:
    print(f"\n{manifest.config.model} -> {out} ({manifest.output}, {manifest.trainable_params:,} of "
          f"{manifest.total_params:,} parameters trained, {manifest.global_steps} steps, "
          f"{manifest.wall_time_s:.1f} s)")
    for e in manifest.epochs:
        ev = [r for r in manifest.evals if round(r.epoch) == e.epoch]
        acc = f", val accuracy {ev[-1].val_accuracy:.4f}" if ev and ev[-1].val_accuracy is not None else ""
        loss = "-" if e.train_loss is None else f"{e.train_loss:.4f}"
        print(f"  epoch {e.epoch}: train loss {loss}{acc}")
    if manifest.best_val_accuracy is not None:
        print(f"  best: step {manifest.best_step}, val accuracy {manifest.best_val_accuracy:.4f}")
    print(f"  evaluate it: spuriverse eval --model {out} --dataset ...", file=sys.stdout)


def register(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
