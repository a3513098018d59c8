"""Data-parallel training: a 2-process `accelerate launch` run (DDP over gloo, CPU) equals one process.

What "equals" means here: the same global batch made of the same micro-batches. Two processes with
per-device batch 2 run, at each optimizer step, the micro-batches one process with batch 2 and
gradient accumulation 2 runs (accelerate hands rank k the k-th of each consecutive pair): their
final LoRA weights agree within 1e-6 (measured: bit-equal), as do the per-epoch losses, and
validation counts every item once. Against one process with batch 4 (the same examples per step,
padded together) the bound is the accumulation test's, `test_gradient_accumulation_equals_a_larger_batch`.

The training data mixes choice items and naming rows, so some steps give one process a batch with
both kinds and the other a batch with one: the case that used to deadlock (see `Batcher.fillers`).

On CPU `accelerate launch --cpu --num_processes 2` silently runs one process (offline-models.md);
`--multi_gpu` with ACCELERATE_USE_CPU=1 runs two. Every launch has a hard timeout after which the
launcher and its workers (their own sessions) are killed, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from spuriverse.models.hf import HFBackend
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train import TrainOptions, run_train
from spuriverse.train.batching import Batcher, mixed_fillers
from spuriverse.train.data import load_examples
from spuriverse.train.trainer import SpuriTrainer

REPO = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 150  # measured ~30 s on 2 busy cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_killing_tree(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`subprocess.run` that, on timeout, kills the launcher and every worker it started."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        for pid in tree:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        out, err = proc.communicate()
        pytest.fail(f"{cmd[0]} did not finish in {timeout} s (killed):\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


ARGS = ["--epochs", "2", "--lr", "5e-3", "--lora-dropout", "0", "--seed", "0"]


def test_two_processes_equal_one_with_the_same_micro_batches(tiny_llava, train_data, tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("accelerate's launcher is not installed next to this interpreter")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    dp = _run_killing_tree(
        [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
         "-m", "spuriverse", "train", "--model", str(tiny_llava), "--data", str(train_data), *ARGS,
         # --prefetch on: `auto` leaves it off here (2 processes x 1 thread fill both cores); forced on,
         # each process collates ahead, and the result must not change
         "--batch-size", "2", "--threads", "1", "--prefetch", "on", "--no-progress", "--out", str(tmp_path / "dp")],
        env, LAUNCH_TIMEOUT_S)
    assert dp.returncode == 0, dp.stderr[-3000:]

    torch.set_num_threads(1)
    data = [TrainDataSpec(source=str(train_data))]
    val = [TrainDataSpec(source=str(train_data), split="validation")]
    one = run_train(TrainOptions(model=str(tiny_llava), out=tmp_path / "one", train_data=data, val_data=val,
                                 epochs=2, learning_rate=5e-3, lora_dropout=0.0, batch_size=2, grad_accum=2,
                                 progress=False))
    from spuriverse.schema.train import TrainManifest

    two = TrainManifest.model_validate_json((tmp_path / "dp" / "train.json").read_text())
    assert two.processes == 2 and one.processes == 1  # really two processes
    assert two.config.global_batch_size == one.config.global_batch_size == 4
    assert two.global_steps == one.global_steps == 10
    a = load_file(tmp_path / "dp" / "adapter_model.safetensors")
    b = load_file(tmp_path / "one" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    assert max(float(b[k].abs().max()) for k in b if "lora_B" in k) > 1e-3  # the weights did move
    for x, y in zip(two.epochs, one.epochs, strict=True):
        assert x.train_loss == pytest.approx(y.train_loss, abs=1e-6)
    assert [e.val_accuracy for e in two.evals] == [e.val_accuracy for e in one.evals]
    assert all(e.n == 6 for e in two.evals)  # every validation item counted once


def test_filler_rows_weigh_nothing(tiny_llava, train_data):
    """A batch given a filler of the missing kind has the loss and gradients it had without it."""
    torch.set_num_threads(1)
    backend = HFBackend(str(tiny_llava), batch_size=4)
    examples = load_examples([TrainDataSpec(source=str(train_data))])
    fillers = mixed_fillers(examples)
    assert set(fillers) == {"choice", "naming"}
    assert mixed_fillers([ex for ex in examples if ex.kind == "choice"]) == {}
    trainer = SpuriTrainer.__new__(SpuriTrainer)  # compute_loss alone: no Trainer machinery needed
    trainer.vocab_weight = 0.0
    model = backend.model
    choice_only = [ex for ex in examples if ex.kind == "choice"][1:4]
    for batch_examples, missing in ((choice_only, "lm"), ([ex for ex in examples if ex.kind == "naming"], "choice")):
        results = []
        for f in ({}, fillers):
            batch = Batcher(backend, fillers=f)(batch_examples)
            assert (missing in batch) == bool(f)
            model.zero_grad()
            loss = trainer.compute_loss(model, batch)
            loss.backward()
            results.append((float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
        (l0, g0), (l1, g1) = results
        assert l1 == pytest.approx(l0, abs=1e-7) and len(g0) == len(g1)
        assert all(torch.allclose(x, y, atol=1e-7) for x, y in zip(g0, g1))
