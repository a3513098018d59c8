"""Training command: `spuriverse train` (fine-tune a local model; the folder it writes is a model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spuriverse.cli.backend_args import apply_threads
from spuriverse.cli.method_args import add_compare, add_method_args, method_options
from spuriverse.eval.prompts import STRATEGIES, strategies_help

if TYPE_CHECKING:  # imported where used: `spuriverse --help` does not load the training stack
    from spuriverse.schema.train import TrainDataSpec, TrainManifest
    from spuriverse.train import TrainOptions

DESCRIPTION = """Fine-tune a local Hugging Face vision-language model on multiple-choice items (LoRA or full).
Prompts are the evaluator's own templates, image where eval puts it; the `option` objective is the
cross-entropy over the item's option letters at the answer position (the forward the log-prob scorer
runs, options shuffled per example and epoch), `completion` the cross-entropy of "(X) option text" on
the assistant tokens. Writes --out: the model (a LoRA adapter that `spuriverse eval --model OUT` loads as
base + adapter, the merged model with --merge, or the full model), train.json (the manifest) and, while
running, checkpoints/. Re-running the same command resumes from the last complete checkpoint."""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a local model (LoRA or full) on multiple-choice items; "
                       "`spuriverse train compare-methods --help` compares training methods",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(p)
    add_method_args(p)
    p.set_defaults(func=_cmd_train, tuning="lora")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The options of a training run (shared by `train` and `train compare-methods`)."""
    p.add_argument("--model", required=True, help="alias (see `spuriverse models`), hub id or local folder")
    p.add_argument("--model-revision", help="model revision (hub commit or tag)")
    p.add_argument("--out", required=True, type=Path, help="output folder (the trained model)")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, action="append", metavar="SRC",
                   help="training items: dataset folder, hub id or parquet/json(l) files (repeatable). Rows are "
                   "benchmark items (long or wide layout) or naming rows (item_id, question, target, image)")
    d.add_argument("--split", help="split of --data (default: train if present, else the only split)")
    d.add_argument("--config", action="append",
                   help="dataset config name; given once per --data, each source gets its own (e.g. naming rows "
                   "of one config and multiple choice of another)")
    d.add_argument("--groups", help="only these group ids: a,b,c or @file (one per line)")
    d.add_argument("--variants", help="only these variants, e.g. anchor,spurious")
    d.add_argument("--kinds", action="append",
                   help="only these row kinds: choice (multiple choice), naming (open-ended), e.g. naming; given once "
                   "per --data, each source gets its own")
    d.add_argument("--val-data", action="append", metavar="SRC",
                   help="validation items (default: --data's 'validation' split when it has one)")
    d.add_argument("--val-split", help="split of the validation source (default: validation if present)")
    d.add_argument("--val-groups", help="validation group ids: a,b,c or @file")
    d.add_argument("--val-variants", help="validation variants")
    d.add_argument("--no-val", action="store_true", help="no validation (no best-model selection)")
    d.add_argument("--allow-single-class", action="store_true",
                   help="train even when every example has the same correct answer")
    groups = add_training_args(p)
    groups["optimisation"].add_argument("--seed", type=int, default=0)
    groups["runtime"].add_argument("--no-progress", action="store_true", help="no progress bar")


def add_training_args(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The tuning, optimisation and runtime options of a training run (`spuriverse train`, `train
    compare-methods`, and every cell of `spuriverse study finetune`), in argument groups (returned by
    name); `training_kwargs` turns them into `TrainOptions` keywords."""
    m = p.add_argument_group("method")
    x = m.add_mutually_exclusive_group()
    x.add_argument("--lora", dest="tuning", action="store_const", const="lora", help="peft LoRA (default)")
    x.add_argument("--full", dest="tuning", action="store_const", const="full", help="full fine-tuning")
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
    r.add_argument("--prefetch", choices=("auto", "on", "off"), default="auto",
                   help="collate the next step's batches in a background thread while this step runs (auto, the "
                        "default: on where the step leaves a core free, i.e. on an accelerator or with --threads x "
                        "this machine's training processes below the core count; never with --num-workers)")
    p.set_defaults(tuning="lora")
    return {"method": m, "optimisation": h, "runtime": r}


def train_options(a: argparse.Namespace) -> TrainOptions:
    """The command line as the stage's options (data selection and validation resolved)."""
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions
    from spuriverse.train.data import parse_selection, split_names

    apply_threads(a)
    groups, variants = parse_selection(a.groups), parse_selection(a.variants)
    configs = _per_source(a.config, len(a.data), "--config")
    kinds = [_kinds(k) for k in _per_source(a.kinds, len(a.data), "--kinds")]
    train = [TrainDataSpec(source=s, split=a.split, config=c, groups=groups, variants=variants, kinds=k)
             for s, c, k in zip(a.data, configs, kinds)]
    val_sources = a.val_data or []
    if not val_sources and not a.no_val and a.val_split is None:
        # The (first) training source's own validation split, when it has one.
        if a.split in (None, "train") and "validation" in split_names(a.data[0], configs[0]):
            val_sources = [a.data[0]]
    val_split = a.val_split or ("validation" if val_sources and not a.val_data else None)
    val = [] if a.no_val else [
        TrainDataSpec(source=s, split=val_split, config=configs[0], groups=parse_selection(a.val_groups),
                      variants=parse_selection(a.val_variants), kinds=None) for s in val_sources]
    return _options(a, TrainOptions, train, val)


def _cmd_train(a: argparse.Namespace) -> int:
    from spuriverse.models.hf import LetterTokenError
    from spuriverse.train import TrainConfigMismatch, run_train

    try:
        manifest = run_train(train_options(a))
    except (TrainConfigMismatch, LetterTokenError) as exc:
        print(f"spuriverse train: error: {exc}", file=sys.stderr)
        return 2
    if manifest is not None:
        _print_summary(manifest, a.out)
    return 0


def _per_source(values: list[str] | None, n_sources: int, flag: str) -> list[str | None]:
    """An option given once (every --data) or once per --data (in order) -> one value per source."""
    out: list[str | None] = [None] if not values else list(values)
    if len(out) == 1:
        return out * n_sources
    if len(out) != n_sources:
        from spuriverse.train.data import TrainDataError

        raise TrainDataError(f"{flag} was given {len(out)} times for {n_sources} --data sources: give it once "
                             "(for all) or once per --data, in the same order")
    return out


def _kinds(value: str | None) -> list | None:
    """--kinds a,b -> the row kinds (choice, naming); anything else is bad input."""
    from spuriverse.train.data import TrainDataError, parse_selection

    kinds = parse_selection(value)
    bad = [k for k in kinds or [] if k not in ("choice", "naming")]
    if bad:
        raise TrainDataError(f"unknown row kind(s) {', '.join(bad)} in --kinds (choose from choice, naming)")
    return kinds


def training_kwargs(a: argparse.Namespace) -> dict:
    """The `TrainOptions` keywords of `add_training_args`' options."""
    return dict(
        tuning=a.tuning, lora_r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout,
        lora_target=a.lora_target, lora_target_modules=a.lora_target_modules, objective=a.objective,
        strategy=a.strategy, vocab_weight=a.vocab_weight, epochs=a.epochs, max_steps=a.max_steps,
        learning_rate=a.lr, lr_scheduler=a.scheduler, warmup=a.warmup, weight_decay=a.weight_decay,
        max_grad_norm=a.max_grad_norm, batch_size=a.batch_size, eval_batch_size=a.eval_batch_size,
        grad_accum=a.grad_accum, dtype=a.dtype, bf16=a.bf16, fp16=a.fp16,
        gradient_checkpointing=a.gradient_checkpointing, save_steps=a.save_steps,
        save_total_limit=a.save_total_limit, merge=a.merge, keep_checkpoints=a.keep_checkpoints,
        allow_single_class=a.allow_single_class, device=a.device, num_workers=a.num_workers,
        prefetch={"auto": None, "on": True, "off": False}[a.prefetch],
    )


def _options(a: argparse.Namespace, options_class: type[TrainOptions], train: list[TrainDataSpec],
             val: list[TrainDataSpec]) -> TrainOptions:
    """The command line as the stage's options."""
    return options_class(model=a.model, out=a.out, train_data=train, val_data=val, model_revision=a.model_revision,
                        seed=a.seed, progress=not a.no_progress, method=a.method, method_options=method_options(a),
                        **training_kwargs(a))


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
    add_compare(sub)
