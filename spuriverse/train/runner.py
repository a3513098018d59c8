"""`spuriverse train`: fine-tune a local HF vision-language model (LoRA or full) on multiple-choice
items, through the HF `Trainer`, into a folder `spuriverse eval --model DIR` loads.

Layout of `--out`:
- the model: a peft adapter (`adapter_config.json` + weights; loads as base + adapter), or with
  `--merge` the merged model (adapter kept in `adapter/`), or the full model (`--full`), plus the
  processor;
- `train.json`: the manifest (config, data fingerprints, per-epoch losses, validation, versions);
- `checkpoints/` while training (removed after success unless `--keep-checkpoints`).

A re-run with the same `--out` and the same configuration resumes from the last complete
checkpoint (also after kill -9); another configuration is refused.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spuriverse.atomic import atomic_write_text
from spuriverse.provenance import RUN_PACKAGES, harness_info, now_iso, package_versions
from spuriverse.models.registry import build_model, resolve_model
from spuriverse.schema.core import config_diffs
from spuriverse.schema.train import (
    EpochRecord,
    EvalRecord,
    LoraSettings,
    TrainConfig,
    TrainDataSpec,
    TrainManifest,
)
from spuriverse.train.data import TrainDataError, check_trainable, load_examples, summarize
from spuriverse.train.methods import MethodOptions
from spuriverse.train.methods.plan import plan_method
from spuriverse.locking import folder_lock

MANIFEST = "train.json"
CHECKPOINTS = "checkpoints"


class TrainConfigMismatch(RuntimeError):
    """`--out` holds a training run with another configuration."""


class TrainModelError(ValueError):
    """`--model` is not a model this stage can train (API models, baselines)."""


@dataclass
class TrainOptions:
    model: str
    out: Path
    train_data: list[TrainDataSpec]
    val_data: list[TrainDataSpec] = field(default_factory=list)
    model_revision: str | None = None
    tuning: str = "lora"  # which weights train: lora | full (--lora / --full)
    method: str = "erm"  # the training method (spuriverse.train.methods.METHODS)
    method_options: MethodOptions = field(default_factory=MethodOptions)
    lora_r: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target: str = "language"
    lora_target_modules: str | None = None  # a regex overriding lora_target
    objective: str = "option"
    strategy: str = "direct"
    vocab_weight: float = 0.0
    epochs: float = 3.0
    max_steps: int | None = None
    learning_rate: float | None = None  # default: 2e-4 (LoRA), 2e-5 (full)
    lr_scheduler: str = "linear"
    warmup: float = 0.0  # a ratio of the steps if < 1, else a number of steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 8
    eval_batch_size: int | None = None
    grad_accum: int = 1
    seed: int = 0
    dtype: str | None = None
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    save_steps: int | None = None
    save_total_limit: int = 2
    merge: bool = False
    keep_checkpoints: bool = False
    allow_single_class: bool = False
    device: str | None = None
    num_workers: int = 0
    prefetch: bool | None = None  # collate the next step's batches in a background thread; None: auto (SpuriTrainer)
    progress: bool = True
    callbacks: tuple[Any, ...] = ()  # extra transformers TrainerCallbacks (programmatic use: timing, logging)
    backend_options: dict[str, Any] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _checkpointing_args(training_args: Any, on: bool) -> dict[str, Any]:
    """Activation (gradient) checkpointing, under the name this transformers uses (newer releases
    renamed `gradient_checkpointing` and warn on the old name)."""
    name = "activation_checkpointing" if "activation_checkpointing" in training_args.__dataclass_fields__ \
        else "gradient_checkpointing"
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def _training_args(opts: TrainOptions, has_val: bool, find_unused: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    strategy = "steps" if opts.save_steps else "epoch"
    return TrainingArguments(
        output_dir=str(opts.out / CHECKPOINTS),
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size or opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps or -1,
        learning_rate=opts.learning_rate or (2e-4 if opts.tuning == "lora" else 2e-5),
        lr_scheduler_type=opts.lr_scheduler,
        warmup_steps=opts.warmup,
        weight_decay=opts.weight_decay,
        max_grad_norm=opts.max_grad_norm,
        seed=opts.seed,
        data_seed=opts.seed,
        eval_strategy=strategy if has_val else "no",
        save_strategy=strategy,
        save_steps=opts.save_steps or 500,
        eval_steps=opts.save_steps if has_val else None,
        save_total_limit=opts.save_total_limit,
        load_best_model_at_end=has_val,
        metric_for_best_model="accuracy" if has_val else None,
        greater_is_better=True if has_val else None,
        logging_strategy="steps",
        logging_steps=1,  # per-step losses in trainer_state.json: per-epoch means survive a resume
        report_to=[],
        disable_tqdm=not opts.progress,
        bf16=opts.bf16,
        fp16=opts.fp16,
        **_checkpointing_args(TrainingArguments, opts.gradient_checkpointing),
        remove_unused_columns=False,
        dataloader_num_workers=opts.num_workers,
        use_cpu=(opts.device == "cpu") or not torch.cuda.is_available(),
        ddp_find_unused_parameters=find_unused,
        save_only_model=False,
    )


def _config(opts: TrainOptions, spec: Any, train_fp: str, val_fp: str | None, lora: LoraSettings | None,
            args: Any, dtype: str, plan: Any) -> TrainConfig:
    precision = "bf16" if opts.bf16 else "fp16" if opts.fp16 else "fp32"
    return TrainConfig(
        model=opts.model, checkpoint=spec.checkpoint, revision=spec.revision, train_data=opts.train_data,
        val_data=opts.val_data, train_fingerprint=train_fp, val_fingerprint=val_fp, tuning=opts.tuning, lora=lora,
        **plan.settings(args.learning_rate),
        objective=opts.objective, strategy=opts.strategy, vocab_weight=opts.vocab_weight, epochs=opts.epochs,
        max_steps=opts.max_steps, learning_rate=args.learning_rate, lr_scheduler=opts.lr_scheduler,
        warmup=opts.warmup, weight_decay=opts.weight_decay, max_grad_norm=opts.max_grad_norm,
        batch_size=opts.batch_size, grad_accum=opts.grad_accum,
        global_batch_size=opts.batch_size * opts.grad_accum * args.world_size, seed=opts.seed, dtype=dtype,
        precision=precision, gradient_checkpointing=opts.gradient_checkpointing, save_steps=opts.save_steps,
        merge=opts.merge,
    )


def _check_out(out: Path, config: TrainConfig) -> TrainManifest | None:
    path = out / MANIFEST
    if not path.exists():
        if out.is_dir() and any(p.name != CHECKPOINTS for p in out.iterdir()):
            raise TrainConfigMismatch(f"{out} is not empty and holds no {MANIFEST}: choose another --out")
        return None
    old = TrainManifest.model_validate_json(path.read_text("utf-8"))
    diffs = config_diffs(old.config, config)
    if diffs:
        raise TrainConfigMismatch(
            f"{out} holds a training run with a different configuration ({'; '.join(diffs)}). "
            "Use another --out (a re-run only resumes an identical configuration)."
        )
    return old


def _history(log_history: list[dict[str, Any]]) -> tuple[list[EpochRecord], list[EvalRecord]]:
    """Per-epoch mean training loss (from the per-step log) and every validation result."""
    by_epoch: dict[int, list[float]] = {}
    evals = []
    for rec in log_history:
        if "loss" in rec and "epoch" in rec:
            by_epoch.setdefault(max(1, math.ceil(round(rec["epoch"], 6))), []).append(float(rec["loss"]))
        if "eval_accuracy" in rec:
            evals.append(EvalRecord(step=rec.get("step", 0), epoch=rec.get("epoch", 0.0),
                                    val_loss=rec.get("eval_loss"), val_accuracy=rec["eval_accuracy"],
                                    n=int(rec.get("eval_n", 0))))
    epochs = [EpochRecord(epoch=e, train_loss=sum(v) / len(v), steps=len(v)) for e, v in sorted(by_epoch.items())]
    return epochs, evals


def _load_backend(opts: TrainOptions, spec: Any, args: Any, dtype: str) -> Any:
    from spuriverse.models.hf import HFBackend

    overrides = {**opts.backend_options, "dtype": dtype, "device": str(args.device),
                 "batch_size": opts.eval_batch_size or opts.batch_size}
    backend = build_model(spec, **overrides)
    if not isinstance(backend, HFBackend):
        raise TrainModelError(f"model {opts.model!r} did not load as a local HF model")
    backend._need_letters = True  # an option letter that is not one token is an error here
    return backend


def _base_name(spec: Any) -> str:
    """What the trained model applies to: a hub id, or the loaded folder as an absolute path (for an
    adapter folder that is the adapter itself, which loads as its base + adapter)."""
    return str(Path(spec.checkpoint).resolve()) if Path(spec.checkpoint).is_dir() else spec.checkpoint


def _prepare_model(opts: TrainOptions, spec: Any, backend: Any) -> tuple[Any, LoraSettings | None]:
    from transformers import set_seed

    from spuriverse.train.lora import apply_lora, target_regex

    set_seed(opts.seed)  # LoRA's initialisation is random
    model = backend.model
    if opts.tuning == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, None
    regex = opts.lora_target_modules or target_regex(model, opts.lora_target)
    lora = LoraSettings(r=opts.lora_r, alpha=opts.lora_alpha, dropout=opts.lora_dropout, target=opts.lora_target,
                        target_modules=regex)
    peft_model = apply_lora(model, r=opts.lora_r, alpha=opts.lora_alpha, dropout=opts.lora_dropout,
                            target_modules=regex)
    # peft would record the loaded weights' own name: a relative path, or for an adapter folder the
    # base *without* that adapter (which eval would then silently load). Record what was loaded.
    for cfg in peft_model.peft_config.values():
        cfg.base_model_name_or_path = _base_name(spec)
    return peft_model, lora


def _save_final(trainer: Any, model: Any, backend: Any, opts: TrainOptions) -> str:
    """The trained model into `--out` (rank 0). Returns the output kind."""
    out = opts.out
    if opts.tuning == "full":
        trainer.save_model(str(out))
        kind = "full"
    elif opts.merge:
        trainer.save_model(str(out / "adapter"))
        if trainer.is_world_process_zero():
            merged = model.merge_and_unload()
            merged.save_pretrained(str(out))
        kind = "merged"
    else:
        trainer.save_model(str(out))
        kind = "adapter"
    if trainer.is_world_process_zero():
        backend.processor.save_pretrained(str(out))
    return kind


def _running_manifest(opts: TrainOptions, spec: Any, backend: Any, model: Any, config: TrainConfig,
                      train_sum: Any, val_sum: Any, old: TrainManifest | None, args: Any) -> TrainManifest:
    """The manifest of a run that starts (or resumes after `old`)."""
    from spuriverse.train.lora import count_params

    trainable, total = count_params(model)
    base_rev = getattr(getattr(backend.model, "config", None), "_commit_hash", None)
    return TrainManifest(
        status="running", created=old.created if old else now_iso(), config=config, train=train_sum, val=val_sum,
        output="full" if opts.tuning == "full" else ("merged" if opts.merge else "adapter"),
        base_model=_base_name(spec),
        base_revision=base_rev, trainable_params=trainable, total_params=total, processes=args.world_size,
        device=str(args.device), resumed_from=list(old.resumed_from) if old else [],
        wall_time_s=old.wall_time_s if old else 0.0, harness=harness_info(),
        packages=package_versions((*RUN_PACKAGES, "peft")),
    )


def _trainer(opts: TrainOptions, args: Any, model: Any, backend: Any, train: list, val: list, plan: Any,
             config: TrainConfig) -> Any:
    """The HF Trainer (the method's) with our collator, objectives, checkpoint markers and progress bar."""
    from transformers import PrinterCallback, ProgressCallback

    from spuriverse.train.batching import ExampleDataset, mixed_fillers
    from spuriverse.train.checkpoints import CompletionMarker
    from spuriverse.train.methods.plan import trainer_kwargs
    from spuriverse.train.methods.trainers import MethodBatcher
    from spuriverse.train.trainer import EpochSetter, QuietProgress, accuracy

    dataset = ExampleDataset(train, seed=opts.seed, shuffle=True)
    # Data parallel: every process runs the same forwards each step (see Batcher.fillers).
    fillers = mixed_fillers(train) if args.world_size > 1 and opts.objective == "option" else {}
    batcher_kw, method_kw = trainer_kwargs(plan, config, backend, opts.strategy)
    batcher = MethodBatcher(backend, objective=opts.objective, strategy=opts.strategy, fillers=fillers, **batcher_kw)
    trainer = plan.method.trainer_class()(
        model=model, args=args, data_collator=batcher, train_dataset=dataset,
        eval_dataset=ExampleDataset(val, seed=opts.seed, shuffle=False) if val else None,
        compute_metrics=accuracy if val else None, processing_class=backend.processor,
        callbacks=[CompletionMarker(), EpochSetter(dataset), *opts.callbacks], vocab_weight=opts.vocab_weight,
        eval_collator=batcher.eval_batch, prefetch=opts.prefetch, **method_kw,
    )
    for cb in (ProgressCallback, PrinterCallback):  # one dict printed per step: replaced by a bar postfix
        trainer.remove_callback(cb)
    if opts.progress:
        trainer.add_callback(QuietProgress())
    return trainer


def run_train(opts: TrainOptions) -> TrainManifest | None:
    """Train (or resume) into `opts.out`; returns the manifest (None on non-main processes).

    One training run per output folder: the lock sits beside it (``.NAME.train.lock`` in its parent,
    so a fresh `--out` is not created before its inputs are checked); every rank takes its own."""
    out = Path(opts.out)
    if not out.parent.is_dir():
        return _run_train_locked(opts)
    with folder_lock(out.parent, stage="train", name=f".{out.name}.train.lock"):
        return _run_train_locked(opts)


def _run_train_locked(opts: TrainOptions) -> TrainManifest | None:
    from spuriverse.train.checkpoints import last_complete_checkpoint

    t0 = time.perf_counter()
    if opts.tuning not in ("lora", "full") or opts.objective not in ("option", "completion"):
        raise ValueError("tuning must be lora|full and objective option|completion")
    if opts.bf16 and opts.fp16:
        raise ValueError("--bf16 and --fp16 are exclusive")
    spec = resolve_model(opts.model, opts.model_revision)
    if spec.backend != "hf":
        raise TrainModelError(
            f"cannot train {opts.model!r}: it is a{'n API' if spec.backend == 'openai' else ' ' + spec.backend} "
            "model. spuriverse train fine-tunes local Hugging Face models (an alias such as llava-1.5, a hub id "
            "or a folder saved with save_pretrained)."
        )
    # Data first: bad input fails before any model loads.
    train = load_examples(opts.train_data)
    train_sum = summarize(train)
    warning = check_trainable(train_sum, allow_single_class=opts.allow_single_class)
    if warning:
        _log(f"spuriverse train: {warning}")
    val = [ex for ex in load_examples(opts.val_data, role="validation") if ex.kind == "choice"] if opts.val_data else []
    if opts.val_data and not val:
        raise TrainDataError("the validation data has no multiple-choice items (naming rows are not validated)")
    val_sum = summarize(val) if val else None

    find_unused = opts.tuning == "full" or opts.lora_target != "language" or bool(opts.lora_target_modules)
    args = _training_args(opts, bool(val), find_unused)
    plan = plan_method(opts.method, opts.method_options, train, args.world_size, opts.objective)  # still before any model loads
    cpu = args.device.type == "cpu"
    dtype = opts.dtype or ("float32" if cpu or opts.tuning == "full" else ("float16" if opts.fp16 else "bfloat16"))
    backend = _load_backend(opts, spec, args, dtype)
    model, lora = _prepare_model(opts, spec, backend)
    config = _config(opts, spec, train_sum.fingerprint, val_sum.fingerprint if val_sum else None, lora, args, dtype, plan)
    is_main = args.process_index == 0
    # The main process checks --out and writes the manifest first; the others then read what it wrote.
    # (Checked concurrently, another rank could see the manifest's temporary file and refuse --out.)
    with args.main_process_first(local=False, desc="checking --out"):
        old = _check_out(opts.out, config)
        if old is None or old.status != "complete":
            manifest = _running_manifest(opts, spec, backend, model, config, train_sum, val_sum, old, args)
            if is_main:
                opts.out.mkdir(parents=True, exist_ok=True)
                atomic_write_text(opts.out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    if old is not None and old.status == "complete":
        _log(f"spuriverse train: {opts.out} is already trained with this configuration; nothing to do")
        return old if is_main else None

    train, summary = plan.before_training(opts, train, config, CHECKPOINTS)  # JTT's first stage
    trainer = _trainer(opts, args, model, backend, train, val, plan, config)
    # Only the main process sets incomplete checkpoints aside; the others then see complete ones only.
    with args.main_process_first(local=False, desc="finding the last complete checkpoint"):
        resume = last_complete_checkpoint(opts.out / CHECKPOINTS, log=_log if is_main else (lambda m: None))
    if resume is not None:
        if is_main:
            _log(f"spuriverse train: resuming from {resume}")
        manifest.resumed_from.append(resume.name)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    kind = _save_final(trainer, trainer.model, backend, opts)
    args.distributed_state.wait_for_everyone()
    if not is_main:
        return None
    state = trainer.state
    epochs, evals = _history(state.log_history)
    from spuriverse.train.checkpoints import weights_digest, weights_folder

    manifest = manifest.model_copy(update=dict(
        status="complete", finished=now_iso(), output=kind, epochs=epochs, evals=evals,
        weights_sha256=weights_digest(weights_folder(opts.out, kind)),
        best_step=state.best_global_step, best_val_accuracy=state.best_metric, global_steps=state.global_step,
        wall_time_s=manifest.wall_time_s + time.perf_counter() - t0,
        method_summary={**summary, **trainer.method_summary()},
    ))
    atomic_write_text(opts.out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    if not opts.keep_checkpoints:
        shutil.rmtree(opts.out / CHECKPOINTS, ignore_errors=True)
    return manifest
