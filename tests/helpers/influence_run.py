"""A real LoRA training run of a tiny LLaVA for the influence tests (trained by the train stage), and
the influence problem on it."""

from __future__ import annotations

from pathlib import Path

from helpers.bench_data import long_rows
from helpers.train_data import naming_rows, write_train_dataset


_RUNS: dict[str, Path] = {}


def train_lora_run(tiny_llava: Path, tmp_path_factory) -> Path:
    """LoRA on both towers (the last CLIP layer gets adapters but no gradient), 16 choice items of
    4 groups (cue = spurious_attribute attr0..attr2) + 4 naming rows, 1 epoch. Trained once per
    test session (the test files' `lora_run` fixtures share it)."""
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions, run_train

    if str(tiny_llava) in _RUNS:
        return _RUNS[str(tiny_llava)]
    root = tmp_path_factory.mktemp("influence-run")
    data = write_train_dataset(root / "data", long_rows(n_groups=4, n_spurious=2, n_counter=1, n_controls=0,
                                                         seed=1) + naming_rows(4))
    out = root / "run"
    run_train(TrainOptions(model=str(tiny_llava), out=out, train_data=[TrainDataSpec(source=str(data))], epochs=1,
                           batch_size=4, learning_rate=5e-3, lora_r=4, lora_dropout=0.0, lora_target="both",
                           progress=False))
    _RUNS[str(tiny_llava)] = out
    return out


def problem_for(run: Path, *, measurement: str, queries_from_train: bool = False):
    """The influence problem on `run`: queries are its first 6 choice items (copies of training items
    when `queries_from_train`, else the same items read as queries: ids identical either way)."""
    from spuriverse.diagnose.influence.lvlm import LVLMProblem
    from spuriverse.diagnose.influence.trainrun import load_model, read_run

    tr = read_run(run)
    backend, model, _, _ = load_model(tr, device="cpu", batch_size=4)
    queries = [ex for ex in tr.train if ex.kind == "choice"][: 4 if queries_from_train else 6]
    c = tr.manifest.config
    return LVLMProblem(backend, model, tr.train, queries, objective=c.objective, strategy=c.strategy,
                       vocab_weight=c.vocab_weight, measurement=measurement)
