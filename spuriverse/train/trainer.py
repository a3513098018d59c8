"""The HF `Trainer`, taught our two objectives, option-accuracy validation, quiet progress, and how to
load a fully fine-tuned checkpoint back (best model, resume)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, ProgressCallback, Trainer, TrainerCallback

from spuriverse.train.batching import completion_loss, option_loss


class SpuriTrainer(Trainer):
    """`compute_loss`: per-example losses (option letters or target tokens) averaged over the
    batch, so a batch of 2k equals two accumulated batches of k and two processes of k each.
    `prediction_step`: validation scores choice items exactly like the log-prob scorer."""

    def __init__(self, *args: Any, vocab_weight: float = 0.0, eval_collator: Any = None,
                 prefetch: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vocab_weight = vocab_weight
        self.eval_collator = eval_collator
        self.prefetch = prefetch
        # Our loss is already a per-example mean: the Trainer divides by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._ahead: tuple[Iterator, Future] | None = None
        self._collate_pool: ThreadPoolExecutor | None = None

    # -- collation one step ahead ------------------------------------------------------------------
    # Collating a batch (chat template, tokenizer, image processor) costs about a fifth of a tiny
    # model's step on CPU. The next step's batches can be collated in one background thread while this
    # step runs (its own processor copy: `HFBackend._processor`), like eval's pipeline. Same batches,
    # same order: the iterator is only advanced ahead within an epoch (never past its last batch, so
    # the DataLoader's end-of-epoch bookkeeping stays on this thread), the first batch of an epoch is
    # drawn here, and nothing is left running when `train` returns. `prefetch=None` (auto): on where
    # the step does not occupy every core (an accelerator, or fewer torch threads, over all of this
    # machine's processes, than cores); with torch on every core the thread only competes with the
    # step (measured: bench/train_throughput.py).
    def _prefetching(self) -> bool:
        if self.args.dataloader_num_workers > 0 or not self.accelerator.gradient_state.in_dataloader:
            return False
        if self.prefetch is not None:
            return self.prefetch
        # CPU: every process on this machine runs its step on torch's threads
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", self.args.world_size))
        return self.args.device.type != "cpu" or torch.get_num_threads() * local_processes < _cores()

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches: list[Any] = []
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            batch = ahead[1].result()  # a collation error is raised here, as without prefetching
            if ahead[0] is epoch_iterator and batch is not _END:
                batches.append(batch)
        for _ in range(num_batches - len(batches)):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        if self._prefetching() and len(batches) == num_batches and not self.accelerator.gradient_state.end_of_dataloader:
            if self._collate_pool is None:
                self._collate_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spuriverse-collate")
            self._ahead = (epoch_iterator, self._collate_pool.submit(next, epoch_iterator, _END))
        return batches, self._get_num_items_in_batch(batches, device)

    def _finish_prefetch(self) -> None:
        """Wait for a batch collated ahead that will not be used (max_steps reached, an error)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].exception()  # waited for; the unused batch (or its error) is dropped
        if self._collate_pool is not None:
            self._collate_pool.shutdown(wait=True)
            self._collate_pool = None

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        finally:
            self._finish_prefetch()

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        # Validation waits for the collation in flight: it must not share the CPU with it.
        if self._ahead is not None:
            self._ahead[1].exception()
        return super().evaluate(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        losses, letters = [], None
        if "choice" in inputs:
            loss, letters = option_loss(model, inputs["choice"], self.vocab_weight)
            losses.append(_weighted(loss, inputs["choice"]))
        if "lm" in inputs:
            losses.append(_weighted(completion_loss(model, inputs["lm"]), inputs["lm"]))
        total = torch.cat(losses).sum() / inputs["n"]
        return (total, {"logits": letters}) if return_outputs else total

    # transformers 5 saves some architectures (LLaVA among them) under their legacy weight names, and
    # the Trainer loads a full checkpoint back with load_state_dict(strict=False): for those nothing
    # matched, so the best model was not loaded at the end and a resumed --full run went on from the base
    # weights, with no error. A full model checkpoint is loaded through from_pretrained instead.
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        target = self.model if model is None else model
        if not self._load_saved_model(target, resume_from_checkpoint):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        if not self._load_saved_model(self.model, self.state.best_model_checkpoint):
            super()._load_best_model()

    def _load_saved_model(self, model: Any, folder: str | None) -> bool:
        """Load a `save_pretrained` checkpoint of the whole model into `model` (strict: every weight);
        False where the Trainer's own loading applies (adapters, FSDP, DeepSpeed, no such files)."""
        if folder is None or self.is_fsdp_enabled or self.is_deepspeed_enabled or hasattr(model, "peft_config"):
            return False
        path = Path(folder)
        has_weights = any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json"))
        if not (path / "config.json").is_file() or not has_weights:
            return False
        saved = type(model).from_pretrained(str(path), dtype=next(model.parameters()).dtype)
        model.load_state_dict(saved.state_dict(), strict=True)
        return True

    def get_eval_dataloader(self, eval_dataset=None):
        # Validation batches are choice items in their own option order (the train collator shuffles).
        train_collator, self.data_collator = self.data_collator, self.eval_collator or self.data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, out = self.compute_loss(model, inputs, return_outputs=True)
        return loss.detach(), out["logits"].detach(), inputs["choice"]["answer_index"]


_END = object()  # the epoch iterator is exhausted


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _weighted(loss: torch.Tensor, part: dict[str, Any]) -> torch.Tensor:
    """Per-example losses x the part's weights (0 for a data-parallel filler row, see `Batcher`)."""
    weight = part.get("weight")
    return loss if weight is None else loss * weight.to(loss.device, loss.dtype)


def accuracy(pred: EvalPrediction) -> dict[str, float]:
    """Top letter == answer; ties go to the earliest letter (argmax), as in the scorer."""
    logits, labels = pred.predictions, pred.label_ids
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == labels)), "n": float(len(labels))}


class EpochSetter(TrainerCallback):
    """Tells the dataset which epoch runs, so the option shuffle differs per epoch yet is the
    same after a resume."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor(round(state.epoch or 0.0, 6)))
        return control


class QuietProgress(ProgressCallback):
    """The Trainer's bar, with the loss as a postfix instead of one printed dict per step;
    validation results are printed once each."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", epoch=f"{logs.get('epoch', 0):.2f}")
        if "eval_accuracy" in logs:
            self.training_bar.write(f"step {state.global_step} (epoch {logs.get('epoch', 0):.2f}): val accuracy "
                                    f"{logs['eval_accuracy']:.4f}, val loss {logs.get('eval_loss', float('nan')):.4f}",
                                    file=sys.stderr)  # with the bar, not amid the results on stdout
