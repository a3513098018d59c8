"""Full fine-tuning checkpoints load back: the best model really is the best checkpoint's weights, and a
resumed --full run goes on from the checkpoint's weights. (transformers 5 saves LLaVA under its legacy
weight names and the Trainer's own loading, load_state_dict(strict=False), matched none of them: the
final model was the last step's and a resumed run restarted from the base weights, silently.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from spuriverse.schema.train import TrainDataSpec
from spuriverse.train import TrainOptions, run_train

torch.set_num_threads(1)


def _opts(model: Path, data: Path, out: Path, **kw) -> TrainOptions:
    base = dict(model=str(model), out=out, tuning="full", train_data=[TrainDataSpec(source=str(data))],
                val_data=[TrainDataSpec(source=str(data), split="validation")], max_steps=6, save_steps=2,
                batch_size=4, learning_rate=2e-2, save_total_limit=5, keep_checkpoints=True, progress=False)
    base.update(kw)
    return TrainOptions(**base)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_the_best_checkpoint_is_the_saved_model(tiny_llava, train_data, tmp_path):
    m = run_train(_opts(tiny_llava, train_data, tmp_path / "run"))
    assert m.best_step is not None and m.global_steps == 6
    final = load_file(tmp_path / "run" / "model.safetensors")
    ckpts = {int(p.name.split("-")[1]): load_file(p / "model.safetensors")
             for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*")}
    assert set(ckpts) == {2, 4, 6}
    assert _max_diff(final, ckpts[m.best_step]) == 0.0
    # the checkpoints differ (lr 2e-2), so "the best" is a real choice
    assert all(_max_diff(ckpts[s], ckpts[m.best_step]) > 1e-4 for s in ckpts if s != m.best_step)


def test_a_resumed_full_run_ends_with_the_uninterrupted_weights(tiny_llava, train_data, tmp_path):
    ref = tmp_path / "ref"
    run_train(_opts(tiny_llava, train_data, ref, val_data=[]))
    out = tmp_path / "resumed"
    shutil.copytree(ref, out)
    # As after a kill once checkpoint-2 was written: later checkpoints and the outputs gone, status running.
    for p in out.iterdir():
        if p.name not in ("checkpoints", "train.json"):
            p.unlink()
    for p in (out / "checkpoints").glob("checkpoint-*"):
        if p.name != "checkpoint-2":
            shutil.rmtree(p)
    manifest = json.loads((out / "train.json").read_text())
    (out / "train.json").write_text(json.dumps({**manifest, "status": "running"}))
    m = run_train(_opts(tiny_llava, train_data, out, val_data=[]))
    assert m.resumed_from == ["checkpoint-2"]
    assert _max_diff(load_file(out / "model.safetensors"), load_file(ref / "model.safetensors")) <= 1e-6
