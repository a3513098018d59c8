"""The training commands' surface: `--help`, the progress bar, and the GPU flags (gradient
checkpointing, bf16 autocast), which also run on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spuriverse.cli import main
from spuriverse.data.world.build import main as world_main
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train import TrainOptions, run_train

torch.set_num_threads(1)


@pytest.mark.parametrize("entry,argv,must", [
    (main, ["train", "--help"], ["--model", "--data", "--out", "--lora", "--full", "--objective", "--merge",
                                 "--bf16", "--gradient-checkpointing", "--grad-accum", "--allow-single-class",
                                 "resumes from the last complete checkpoint"]),
    (world_main, ["--help"], ["--out", "--p-align", "--seed", "--n-train"]),
])
def test_help(entry, argv, must, capsys):
    with pytest.raises(SystemExit) as exc:
        entry(argv)
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    missing = [m for m in must if m not in text]
    assert not missing


def _opts(model: Path, data: Path, out: Path, **kw) -> TrainOptions:
    base = dict(model=str(model), out=out, train_data=[TrainDataSpec(source=str(data))], max_steps=3,
                batch_size=4, learning_rate=5e-3, lora_dropout=0.0, progress=False)
    return TrainOptions(**{**base, **kw})


def test_progress_bar_shows_steps_loss_and_validation(tiny_llava, train_data, tmp_path, capsys):
    run_train(_opts(tiny_llava, train_data, tmp_path / "out", progress=True, max_steps=None, epochs=1,
                    val_data=[TrainDataSpec(source=str(train_data), split="validation")]))
    err = capsys.readouterr().err
    assert "5/5" in err and "loss=" in err  # 20 examples / batch 4: one bar over 5 steps, loss as postfix
    assert "step 5 (epoch 1.00): val accuracy" in err
    assert "{'loss'" not in err  # no per-step dict printed


def _adapter(out: Path) -> dict:
    return load_file(out / "adapter_model.safetensors")


def test_gradient_checkpointing_changes_memory_not_the_result(tiny_llava, train_data, tmp_path):
    from torch.nn.modules.module import register_module_forward_hook

    def forwards(**kw) -> tuple[object, int]:
        """(manifest, module forward calls): checkpointing recomputes layers in the backward."""
        calls = []
        hook = register_module_forward_hook(lambda *_: calls.append(1))
        try:
            return run_train(_opts(tiny_llava, train_data, **kw)), len(calls)
        finally:
            hook.remove()

    (plain, n_plain), (ckpt, n_ckpt) = forwards(out=tmp_path / "plain"), forwards(
        out=tmp_path / "ckpt", gradient_checkpointing=True)
    assert n_ckpt > n_plain  # layers really ran again under activation checkpointing
    assert ckpt.config.gradient_checkpointing and not plain.config.gradient_checkpointing
    a, b = _adapter(tmp_path / "plain"), _adapter(tmp_path / "ckpt")
    assert max(float(t.abs().max()) for k, t in b.items() if "lora_B" in k) > 1e-3  # gradients reached LoRA
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_bf16_autocast_trains(tiny_llava, train_data, tmp_path):
    m = run_train(_opts(tiny_llava, train_data, tmp_path / "bf16", bf16=True))
    assert m.config.precision == "bf16" and m.global_steps == 3
    saved = _adapter(tmp_path / "bf16")
    assert all(torch.isfinite(t).all() for t in saved.values())
    assert max(float(t.abs().max()) for k, t in saved.items() if "lora_B" in k) > 1e-3
