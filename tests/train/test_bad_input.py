"""Bad input to `spuriverse train` (and adapter folders in `spuriverse eval`): exit 2, one error line
naming the problem, no traceback, and nothing lost (no --out written, the adapter folder untouched).

Single-class data is refused (a model trained on it learns a constant); `--allow-single-class`
trains with a warning. One answer *letter* for every item is fine: options are shuffled per example.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.train_data import write_train_dataset
from helpers.bench_data import long_rows
from spuriverse.cli import main
from spuriverse.schema.train import TrainDataSpec
from spuriverse.train import TrainOptions, run_train
from spuriverse.train.batching import shuffle_options
from spuriverse.train.data import check_trainable, load_examples, summarize

torch.set_num_threads(1)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _fails(capsys, argv: list[str]) -> str:
    """Runs the CLI; asserts exit 2 with exactly one error line and no traceback; returns the line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"spuriverse {argv[0]}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def _train_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out), "--no-val", "--no-progress",
            "--max-steps", "1", "--batch-size", "4", *extra]


def _rows(seed: int = 1) -> list[dict]:
    return long_rows(n_groups=2, n_spurious=2, n_counter=0, n_controls=0, seed=seed)


def test_empty_training_data(tiny_llava, tmp_path, capsys):
    from datasets import Dataset, Value

    from spuriverse.data.layouts import long_features

    feats = long_features()
    feats["target"] = Value("string")
    (tmp_path / "empty" / "data").mkdir(parents=True)
    Dataset.from_dict({k: [] for k in feats}, features=feats).to_parquet(
        str(tmp_path / "empty" / "data" / "train-00000.parquet"))
    line = _fails(capsys, _train_argv(tiny_llava, tmp_path / "empty", tmp_path / "out"))
    assert "no training examples in" in line and str(tmp_path / "empty") in line
    assert not (tmp_path / "out").exists()
    # empty after the selection: says so
    data = write_train_dataset(tmp_path / "d", _rows())
    line = _fails(capsys, _train_argv(tiny_llava, data, tmp_path / "out", "--groups", "nope"))
    assert "no training examples" in line and "after --groups/--variants" in line
    assert not (tmp_path / "out").exists()


def test_single_class_is_refused_unless_allowed(tiny_llava, tmp_path, capsys):
    rows = [dict(r, options=["cat", "dog"], answer="A") for r in _rows()]
    data = write_train_dataset(tmp_path / "single", rows)
    line = _fails(capsys, _train_argv(tiny_llava, data, tmp_path / "out"))
    assert "single answer class" in line and "--allow-single-class" in line
    assert not (tmp_path / "out").exists()
    assert main(_train_argv(tiny_llava, data, tmp_path / "out", "--allow-single-class")) == 0
    err = capsys.readouterr().err
    assert "warning: the training data has a single answer class" in err
    assert json.loads((tmp_path / "out" / "train.json").read_text())["train"]["n_classes"] == 1


def test_one_answer_letter_with_several_classes_is_fine(tmp_path):
    rows = [dict(r, options=["cat", "dog"] if k % 2 else ["dog", "cat"], answer="A") for k, r in enumerate(_rows())]
    examples = load_examples([TrainDataSpec(source=str(write_train_dataset(tmp_path / "a", rows)))])
    summary = summarize(examples)
    assert summary.n_classes == 2 and check_trainable(summary) is None
    # the letter the model is trained on varies: options are shuffled per example
    assert {shuffle_options(ex, 0, 0).answer for ex in examples} == {"A", "B"}


def test_more_options_than_letters(tiny_llava, tmp_path, capsys):
    rows = _rows()
    rows[1] = dict(rows[1], options=[f"word{k}" for k in range(7)], answer="A")
    data = write_train_dataset(tmp_path / "seven", rows)
    line = _fails(capsys, _train_argv(tiny_llava, data, tmp_path / "out"))
    assert str(data) in line and f"item_id={rows[1]['item_id']!r}" in line
    assert "options" in line and "at most 6" in line and "not 7" in line
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def adapter_on_copy(tiny_llava, train_data, tmp_path_factory) -> tuple[Path, Path]:
    """(base folder, a 1-step LoRA adapter trained on it): the tests may break the base."""
    root = tmp_path_factory.mktemp("adapter")
    base = shutil.copytree(tiny_llava, root / "base")
    run_train(TrainOptions(model=str(base), out=root / "adapter", train_data=[TrainDataSpec(source=str(train_data))],
                           max_steps=1, batch_size=4, learning_rate=5e-2, progress=False))
    return base, root / "adapter"


def _eval_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "--model", str(model), "--dataset", str(data), "--split", "validation", "--output-dir", str(out),
            "--no-progress"]


def test_adapter_without_its_base(adapter_on_copy, train_data, tmp_path, capsys):
    base, adapter = adapter_on_copy
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    before = _digest(adapter)
    aside = base.with_name("base-moved")
    base.rename(aside)
    try:
        for argv in (_eval_argv(adapter, train_data, tmp_path / "ev"),
                     _train_argv(adapter, train_data, tmp_path / "out")):
            line = _fails(capsys, argv)
            assert f"LoRA adapter for the base model {str(base)!r}" in line and "does not exist" in line
        assert not (tmp_path / "out").exists()
        # present but unloadable (weights torn): the same message, with the loader's reason
        shutil.copytree(aside, base)
        weights = base / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:3000])
        line = _fails(capsys, _eval_argv(adapter, train_data, tmp_path / "ev2"))
        assert f"LoRA adapter for the base model {str(base)!r}" in line and "cannot be loaded" in line
    finally:
        shutil.rmtree(base, ignore_errors=True)
        aside.rename(base)
    assert _digest(adapter) == before  # nothing lost


def _logprobs(out: Path) -> list[dict]:
    return [json.loads(line)["logprobs"] for line in (out / "samples.jsonl").read_text().splitlines()]


def test_lora_trained_on_a_lora_loads_the_whole_chain(adapter_on_copy, train_data, tmp_path, capsys):
    """A LoRA trained on an adapter folder records that folder as its base (not the bare base peft
    would record, which eval would silently load without the first adapter)."""
    _, first = adapter_on_copy
    opts = dict(model=str(first), train_data=[TrainDataSpec(source=str(train_data))], max_steps=1, batch_size=4,
                learning_rate=5e-2, progress=False)
    run_train(TrainOptions(out=tmp_path / "second", **opts))
    run_train(TrainOptions(out=tmp_path / "merged", merge=True, **opts))
    cfg = json.loads((tmp_path / "second" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(first)
    for name in ("second", "merged"):
        assert main(_eval_argv(tmp_path / name, train_data, tmp_path / f"ev-{name}")) == 0
    assert main(_eval_argv(first, train_data, tmp_path / "ev-first")) == 0
    second, merged, one = (_logprobs(tmp_path / f"ev-{n}") for n in ("second", "merged", "first"))
    for x, y in zip(second, merged, strict=True):
        assert x == pytest.approx(y, abs=1e-5)
    assert any(abs(x["A"] - z["A"]) > 1e-4 for x, z in zip(second, one))


def test_kinds_selects_row_kinds_and_an_unknown_kind_is_refused(tiny_llava, train_data, tmp_path, capsys):
    line = _fails(capsys, _train_argv(tiny_llava, train_data, tmp_path / "out", "--kinds", "naming,mc"))
    assert "unknown row kind(s) mc" in line and "choice, naming" in line
    assert not (tmp_path / "out").exists()
    naming = load_examples([TrainDataSpec(source=str(train_data), kinds=["naming"])])
    choice = load_examples([TrainDataSpec(source=str(train_data), kinds=["choice"])])
    assert {ex.kind for ex in naming} == {"naming"} and {ex.kind for ex in choice} == {"choice"}
    assert len(naming) + len(choice) == len(load_examples([TrainDataSpec(source=str(train_data))]))
    assert main(_train_argv(tiny_llava, train_data, tmp_path / "out", "--kinds", "naming")) == 0
    manifest = json.loads((tmp_path / "out" / "train.json").read_text())
    assert manifest["train"]["n_choice"] == 0 and manifest["train"]["n_naming"] == len(naming)
    assert manifest["config"]["train_data"][0]["kinds"] == ["naming"]
