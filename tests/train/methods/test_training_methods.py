"""`spuriverse train --method ...` end to end on a tiny LLaVA and a tiny planted-cue world: every method
writes the same model folder and records its hyper-parameters; bad input fails before any training;
`compare-methods` writes its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spuriverse.cli import main
from spuriverse.schema.train import MethodComparison, TrainConfig, TrainManifest
from spuriverse.train.methods import METHODS

torch.set_num_threads(1)


def _argv(model: Path, world: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(world / "train"), "--config", "biased", "--out", str(out),
            "--no-val", "--no-progress", "--max-steps", "1", "--batch-size", "4", "--lr", "5e-3", *extra]


def _meta(world: Path) -> list[str]:
    return ["--meta-data", str(world / "train"), "--meta-config", "balanced", "--meta-split", "validation",
            "--meta-size", "8", "--meta-batch", "2"]


def test_cli_choices_come_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "{" + ",".join(METHODS) + "}" in text.replace("\n", "").replace(" ", "")


@pytest.mark.parametrize("method,extra", [
    ("erm-meta", ()),
    ("jtt", ("--jtt-first-epochs", "0.1", "--jtt-upweight", "3")),
    ("groupdro", ("--groupdro-step", "0.05")),
    ("clp", ("--first-order", "--delta-bound", "1.5")),
])
def test_each_method_trains_and_records_its_settings(tiny_llava, tiny_world, tmp_path, capsys, method, extra):
    out = tmp_path / method
    meta = _meta(tiny_world) if METHODS[method].needs_meta else []
    assert main(_argv(tiny_llava, tiny_world, out, "--method", method, *meta, *extra)) == 0
    m = TrainManifest.model_validate_json((out / "train.json").read_text())
    assert m.status == "complete" and m.output == "adapter" and m.config.method == method
    assert m.config.tuning == "lora" and (out / "adapter_model.safetensors").is_file()
    assert not (out / "checkpoints").exists()
    if METHODS[method].needs_meta:
        assert m.config.meta is not None and m.config.meta.n_clean == 8 and m.config.meta.n_counterfactual == 8
        assert m.config.meta.factual_from == "masks"
    if method == "jtt":
        assert m.config.jtt.upweight == 3 and m.config.jtt.first_epochs == 0.1
        assert m.method_summary["jtt_stage2_examples"] == 40 + 2 * m.method_summary["jtt_error_set"]
    if method == "groupdro":
        assert m.config.groupdro.step_size == 0.05 and len(m.config.groupdro.groups) >= 2
        assert 0 < m.method_summary["groupdro_max_weight"] <= 1
    if method == "clp":
        assert m.config.clp.first_order and m.config.clp.delta_bound == 1.5 and m.config.clp.n_options == 4
        assert m.config.clp.virtual_lr == 5e-3 and m.method_summary["clp_meta_steps"] == 1
    # a re-run of the same command finds the finished run
    assert main(_argv(tiny_llava, tiny_world, out, "--method", method, *meta, *extra)) == 0
    assert "already trained" in capsys.readouterr().err


def test_manifests_from_before_training_methods_still_load():
    old = {"model": "m", "checkpoint": "m", "train_data": [{"source": "d"}], "train_fingerprint": "x",
           "method": "full", "objective": "option", "epochs": 1, "learning_rate": 1e-3, "lr_scheduler": "linear",
           "warmup": 0, "weight_decay": 0, "max_grad_norm": 1, "batch_size": 1, "grad_accum": 1,
           "global_batch_size": 1, "seed": 0, "dtype": "float32", "precision": "fp32"}
    config = TrainConfig.model_validate(old)
    assert config.tuning == "full" and config.method == "erm"


def _fails(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("spuriverse train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_bad_input_fails_before_any_training(tiny_llava, tiny_world, train_data, tmp_path, capsys):
    out = tmp_path / "never"
    # a meta set without masks when CF items are requested
    line = _fails(capsys, _argv(tiny_llava, tiny_world, out, "--method", "clp", "--meta-data", str(train_data)))
    assert "no object masks" in line and "--counterfactual-weight 0" in line
    # K differs between items (the test set mixes 3-5 options)
    line = _fails(capsys, ["train", "--model", str(tiny_llava), "--data", str(train_data), "--out", str(out),
                           "--no-val", "--method", "clp", *_meta(tiny_world)])
    assert "same number of options" in line
    # group labels needed, none in the data
    line = _fails(capsys, ["train", "--model", str(tiny_llava), "--data", str(train_data), "--out", str(out),
                           "--no-val", "--method", "groupdro"])
    assert "needs group labels" in line and "aligned" in line
    # a meta method without a meta set
    assert "--meta-data" in _fails(capsys, _argv(tiny_llava, tiny_world, out, "--method", "erm-meta"))
    assert not out.exists()


def test_methods_with_state_refuse_data_parallel(tiny_world):
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import TrainDataError, load_examples
    from spuriverse.train.methods import MethodOptions
    from spuriverse.train.methods.plan import plan_method

    train = load_examples([TrainDataSpec(source=str(tiny_world / "train"), config="biased")])
    assert plan_method("erm", MethodOptions(), train, world_size=2).method.name == "erm"
    with pytest.raises(TrainDataError, match="one process"):
        plan_method("groupdro", MethodOptions(), train, world_size=2)
    with pytest.raises(TrainDataError, match="option objective"):
        plan_method("jtt", MethodOptions(), train, objective="completion")


def test_a_meta_set_without_masks_gives_counter_images_as_factual_items(train_data):
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.methods.meta import load_meta_set

    meta = load_meta_set(TrainDataSpec(source=str(train_data)), size=6, fill="tile", need_cf=False)
    assert meta.factual_from == "counter" and meta.factual and not meta.counterfactual
    assert all(ex.variant == "counter" for ex in meta.factual)
    assert all(ex.variant != "counter" for ex in meta.clean)


def test_compare_methods_writes_the_table(tiny_llava, tiny_world, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["train", "compare-methods", "--model", str(tiny_llava), "--data", str(tiny_world / "train"),
            "--config", "biased", "--out", str(out), "--no-progress", "--max-steps", "1", "--batch-size", "4",
            "--methods", "erm,groupdro", "--seeds", "0,1", "--test-data", str(tiny_world / "train"),
            "--test-config", "balanced", "--test-split", "validation"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = MethodComparison.model_validate_json((out / "compare.json").read_text())
    assert [r.method for r in result.methods] == ["erm", "groupdro"] and len(result.runs) == 4
    row = result.methods[0]
    assert row.seeds == [0, 1] and row.accuracy.low is not None and row.accuracy.low <= row.accuracy.mean
    for r in result.runs:
        assert r.worst_group_accuracy == min(r.group_accuracy.values()) <= r.accuracy
        assert (out / r.run / "train.json").is_file() and r.n_items == result.n_test
    assert sum(result.group_sizes.values()) == result.n_test
    assert "| erm | 2 |" in printed and (out / "compare.md").read_text() in printed
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert main(argv) == 0  # a re-run re-uses the runs and their scores
    assert json.loads((out / "compare.json").read_text())["runs"] == runs
