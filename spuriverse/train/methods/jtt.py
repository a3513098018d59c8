"""JTT (Just Train Twice, Liu et al. 2021), first stage: an ERM model trained for `first_epochs` on
the same data (into `OUT/checkpoints/jtt-stage1`, resumable like any run, removed with the checkpoints)
predicts every multiple-choice training item; the items it gets wrong (the error set) appear
`upweight` times in the data of the final model. Naming rows are never in the error set."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from spuriverse.train.data import TrainExample

STAGE = "jtt-stage1"


def first_stage(opts: Any, train: list[TrainExample], upweight: int, first_epochs: float,
                checkpoints: str) -> tuple[list[TrainExample], dict[str, float | int | str]]:
    """(the second stage's training examples, what was measured). `opts` are the run's TrainOptions."""
    from spuriverse.train.methods import MethodOptions
    from spuriverse.train.methods.predict import load_scorer, predict_letters
    from spuriverse.train.runner import run_train

    stage_out = opts.out / checkpoints / STAGE
    stage_out.parent.mkdir(parents=True, exist_ok=True)
    stage = replace(opts, out=stage_out, method="erm", method_options=MethodOptions(), epochs=first_epochs,
                    max_steps=None, val_data=[], merge=False, keep_checkpoints=False, save_steps=None)
    run_train(stage)
    choice = [ex for ex in train if ex.kind == "choice"]
    backend = load_scorer(str(stage_out), device=opts.device, batch_size=opts.eval_batch_size or opts.batch_size)
    try:
        preds = predict_letters(backend, choice, opts.strategy)
    finally:
        backend.close()
    errors = [ex for ex, p in zip(choice, preds) if p != ex.answer]
    upsampled = list(train) + [ex for ex in errors for _ in range(upweight - 1)]
    summary: dict[str, float | int | str] = {
        "jtt_error_set": len(errors), "jtt_first_stage_accuracy": 1 - len(errors) / max(len(choice), 1),
        "jtt_stage2_examples": len(upsampled)}
    return upsampled, summary


__all__ = ["STAGE", "first_stage"]
