"""`run_train` end to end on a tiny LLaVA: what trains, what is written, what loads in eval."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spuriverse.eval.runner import EvalOptions, run_eval
from spuriverse.schema.train import TrainDataSpec, TrainManifest
from spuriverse.train import TrainConfigMismatch, TrainOptions, run_train

torch.set_num_threads(1)


def _opts(model: Path, data: Path, out: Path, **kw) -> TrainOptions:
    base = dict(model=str(model), out=out, train_data=[TrainDataSpec(source=str(data))],
                val_data=[TrainDataSpec(source=str(data), split="validation")], epochs=2, batch_size=4,
                learning_rate=5e-3, lora_dropout=0.0, progress=False)
    base.update(kw)
    return TrainOptions(**base)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def lora_run(tiny_llava, train_data, tmp_path_factory):
    before = _digest(tiny_llava)
    out = tmp_path_factory.mktemp("lora") / "model"
    manifest = run_train(_opts(tiny_llava, train_data, out, lora_target="both"))
    assert _digest(tiny_llava) == before  # the base folder is never written
    return out, manifest


def test_lora_trains_only_adapter_weights(lora_run, tiny_llava):
    out, manifest = lora_run
    saved = load_file(out / "adapter_model.safetensors")
    assert saved and all("lora_A" in k or "lora_B" in k for k in saved)
    assert any("vision_tower" in k for k in saved) and any("language_model" in k for k in saved)
    assert manifest.trainable_params == sum(t.numel() for t in saved.values())
    assert manifest.trainable_params < manifest.total_params / 2
    # lora_B starts at zero: it moved, so training changed the model (and only through the adapter)
    assert any(float(t.abs().max()) > 0 for k, t in saved.items() if "lora_B" in k)


def test_manifest_records_the_run(lora_run, train_data):
    out, manifest = lora_run
    on_disk = TrainManifest.model_validate_json((out / "train.json").read_text())
    assert on_disk == manifest and manifest.status == "complete" and manifest.output == "adapter"
    assert [e.epoch for e in manifest.epochs] == [1, 2] and all(e.train_loss > 0 for e in manifest.epochs)
    assert [round(r.epoch) for r in manifest.evals] == [1, 2] and all(r.n == 6 for r in manifest.evals)
    assert manifest.best_val_accuracy == max(r.val_accuracy for r in manifest.evals)
    assert manifest.train.n_choice == 16 and manifest.train.n_naming == 4 and manifest.val.n_examples == 6
    assert manifest.config.lora.r == 16 and manifest.config.learning_rate == 5e-3
    assert manifest.packages["peft"] and manifest.harness.version
    assert not (out / "checkpoints").exists()  # removed after success


def test_rerun_is_a_no_op_and_another_config_is_refused(lora_run, tiny_llava, train_data):
    out, manifest = lora_run
    again = run_train(_opts(tiny_llava, train_data, out, lora_target="both"))
    assert again == manifest
    with pytest.raises(TrainConfigMismatch, match="learning_rate"):
        run_train(_opts(tiny_llava, train_data, out, lora_target="both", learning_rate=1e-3))


def _eval(model: Path, data: Path, out: Path) -> list[dict]:
    import json

    run_eval(EvalOptions(model=str(model), dataset=str(data), output_dir=out, split="validation", progress=False,
                         report=False, n_bootstrap=10))
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_adapter_and_merged_folders_load_in_eval(lora_run, tiny_llava, train_data, tmp_path):
    out, _ = lora_run
    merged = tmp_path / "merged"
    run_train(_opts(tiny_llava, train_data, merged, lora_target="both", merge=True))
    assert (merged / "config.json").exists() and (merged / "adapter" / "adapter_config.json").exists()
    a = _eval(out, train_data, tmp_path / "ev-adapter")
    b = _eval(merged, train_data, tmp_path / "ev-merged")
    base = _eval(tiny_llava, train_data, tmp_path / "ev-base")
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):  # the same trained model, loaded two ways
        assert x["logprobs"] == pytest.approx(y["logprobs"], abs=1e-5)
    assert any(abs(x["logprobs"]["A"] - z["logprobs"]["A"]) > 1e-4 for x, z in zip(a, base))


def test_gradient_accumulation_equals_a_larger_batch(tiny_llava, train_data, tmp_path):
    one = run_train(_opts(tiny_llava, train_data, tmp_path / "b4", val_data=[], epochs=1, batch_size=4))
    two = run_train(_opts(tiny_llava, train_data, tmp_path / "b2x2", val_data=[], epochs=1, batch_size=2,
                          grad_accum=2))
    assert one.global_steps == two.global_steps == 5
    wa, wb = load_file(tmp_path / "b4" / "adapter_model.safetensors"), load_file(
        tmp_path / "b2x2" / "adapter_model.safetensors")
    # Not bit-equal: the two batchings pad rows differently (left-padding invariance is ~5e-7 per
    # log-prob) and Adam rescales those differences; bounded far below the update itself (~1e-2).
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 5e-5
    assert max(float(wa[k].abs().max()) for k in wa if "lora_B" in k) > 1e-3


def test_full_fine_tuning_writes_a_full_model(tiny_llava, train_data, tmp_path):
    m = run_train(_opts(tiny_llava, train_data, tmp_path / "full", tuning="full", objective="completion",
                        epochs=1, learning_rate=1e-3))
    assert m.output == "full" and m.trainable_params == m.total_params
    assert m.config.objective == "completion" and m.evals[0].val_accuracy is not None
    assert len(_eval(tmp_path / "full", train_data, tmp_path / "ev")) == 6


def test_collating_ahead_changes_nothing_but_the_thread(tiny_llava, train_data, tmp_path, monkeypatch):
    """The next step's batches collated in a background thread: the same batches in the same order, so
    the same weights bit for bit, the same losses and validation; across epochs, gradient accumulation
    and a max_steps that ends mid-epoch; no thread left behind."""
    import threading

    from spuriverse.train.batching import Batcher

    threads: list[str] = []
    real_call = Batcher.__call__

    def spy(self, examples):
        threads.append(threading.current_thread().name)
        return real_call(self, examples)

    monkeypatch.setattr(Batcher, "__call__", spy)
    runs = {}
    for prefetch in (True, False, None):
        threads.clear()
        out = tmp_path / f"prefetch-{prefetch}"
        m = run_train(_opts(tiny_llava, train_data, out, batch_size=2, grad_accum=2, max_steps=7, save_steps=3,
                            prefetch=prefetch))
        collated_ahead = sum(name.startswith("spuriverse-collate") for name in threads)
        runs[prefetch] = (m, load_file(out / "adapter_model.safetensors"), collated_ahead)
    (on, w_on, ahead_on), (off, w_off, ahead_off) = runs[True], runs[False]
    assert ahead_on > 0 and ahead_off == 0
    # auto: on only where the step leaves a core free (these tests run torch on one thread)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    auto, w_auto, ahead_auto = runs[None]
    assert (ahead_auto > 0) == (torch.get_num_threads() < cores)
    assert all(torch.equal(w_auto[k], w_off[k]) for k in w_off) and auto.epochs == off.epochs
    assert on.global_steps == off.global_steps == 7
    assert [e.model_dump() for e in on.epochs] == [e.model_dump() for e in off.epochs]
    assert [e.model_dump() for e in on.evals] == [e.model_dump() for e in off.evals] and on.evals
    assert w_on.keys() == w_off.keys() and all(torch.equal(w_on[k], w_off[k]) for k in w_on)
    assert not [t for t in threading.enumerate() if t.name.startswith("spuriverse-collate")]
