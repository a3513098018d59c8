"""`spuriverse study finetune` end to end on the tiny LLaVA: the grid, its folders, the prompts, a study
killed mid-cell (SIGKILL) and resumed, and the ways to run single cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.study_data import quick_args
from spuriverse.cli import main
from spuriverse.eval.prompts import get_template, render_prompt
from spuriverse.schema import RunManifest
from spuriverse.schema.study import VOLATILE_FIELDS, StudyPlan, StudyResult
from spuriverse.schema.train import TrainManifest
from spuriverse.train.checkpoints import MARKER

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
# Every data type and two ablation points (--quick: 0 and 100 %); 2 epochs, so that a checkpoint (written
# after each epoch) exists while a cell is still training.
GRID = ("--epochs", "2")


def _stable(study: Path) -> dict:
    """study.json without its volatile fields (clock times, durations, resumes, code version)."""
    data = json.loads((study / "study.json").read_text())
    for key in VOLATILE_FIELDS:
        if key.startswith("cells.*."):
            for cell in data["cells"]:
                cell.pop(key.split(".")[-1])
        else:
            data.pop(key)
    return data


@pytest.fixture(scope="module")
def reference(tiny_llava, study_bench, tmp_path_factory) -> Path:
    """An uninterrupted quick study (in process, through the CLI's own entry point)."""
    out = tmp_path_factory.mktemp("study") / "ref"
    assert main(quick_args(tiny_llava, study_bench, out, *GRID)) == 0
    return out


def test_the_grid_writes_ordinary_train_and_eval_folders(reference, capsys):
    plan = StudyPlan.model_validate_json((reference / "plan.json").read_text())
    study = StudyResult.model_validate_json((reference / "study.json").read_text())
    assert [c.name for c in plan.cells] == ["seed-3/base", "seed-3/anchor", "seed-3/group", "seed-3/non_spurious",
                                            "seed-3/mixed", "seed-3/ablation-group-0", "seed-3/ablation-group-9"]
    assert [r.label for r in study.table] == ["base model", "anchor", "group", "non_spurious", "mixed"]
    assert study.splits == ["anchor", "spurious", "counter", "control"] and len(study.ablation) == 2
    split = json.loads((reference / "splits" / "seed-3.json").read_text())
    for cell in plan.cells:
        run = RunManifest.model_validate_json((reference / "cells" / cell.name / "eval" / "run.json").read_text())
        assert Path(run.config.dataset) == (reference / "data" / "seed-3" / "heldout.parquet").resolve()
        assert (reference / "cells" / cell.name / "eval" / "report.md").is_file()
        if cell.kind == "base":
            continue
        manifest = TrainManifest.model_validate_json((reference / "cells" / cell.name / "model" /
                                                      "train.json").read_text())
        assert manifest.status == "complete" and manifest.train.n_examples == cell.n_train
        groups = {g for spec in manifest.config.train_data if spec.variants != ["control"] for g in spec.groups}
        assert not groups & set(split["test"])  # never a held-out correlation
    ablation = [c for c in plan.cells if c.kind == "ablation"]
    assert len({c.n_train for c in ablation}) == 1 and ablation[0].n_train == 18  # 9 correlations x 2 images
    # the held-out set: the test groups' items and the control sample (2 x the held-out anchors per source)
    base = study.cells[0]
    assert base.accuracy["anchor"].n == len(split["test"]) and base.accuracy["control"].n == 2 * len(split["test"])
    assert len(split["heldout_controls"]) == 2 * len(split["test"])
    a, b = (str(reference / "cells" / n / "eval") for n in ("seed-3/group", "seed-3/base"))
    assert main(["compare", a, b]) == 0 and "McNemar" in capsys.readouterr().out
    assert (reference / "report.md").read_text().count("| mixed |") == 2
    assert (reference / "study_accuracy.png").stat().st_size and (reference / "study_ablation.png").stat().st_size


def test_training_and_evaluation_render_the_same_prompt(reference, tiny_llava):
    from spuriverse.models.base import Request
    from spuriverse.models.hf import HFBackend
    from spuriverse.train.batching import Batcher
    from spuriverse.train.data import load_examples

    cell = reference / "cells" / "seed-3" / "mixed"
    manifest = TrainManifest.model_validate_json((cell / "model" / "train.json").read_text())
    run = RunManifest.model_validate_json((cell / "eval" / "run.json").read_text())
    assert manifest.config.strategy == run.config.strategy == "direct"
    assert run.config.prompt_hash == get_template(manifest.config.strategy).hash
    backend = HFBackend(str(tiny_llava), batch_size=4)
    batcher = Batcher(backend, strategy=manifest.config.strategy)
    examples = load_examples(manifest.config.train_data)
    assert {ex.variant for ex in examples} == {"spurious", "control"}
    for ex in examples[:: max(1, len(examples) // 6)]:
        rp = render_prompt(ex.question, list(ex.options), run.config.strategy)  # what the eval runner sends
        asked = Request(system=rp.system, prompt=rp.user, image=ex.image_input(), letters=rp.letters)
        assert backend.render(batcher.request(ex)) == backend.render(asked)


def test_a_study_killed_mid_cell_resumes_to_the_same_study(reference, tiny_llava, study_bench, tmp_path):
    out = tmp_path / "killed"
    args = quick_args(tiny_llava, study_bench, out, *GRID)
    proc = subprocess.Popen([sys.executable, "-m", "spuriverse", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if next(out.glob(f"cells/*/*/model/checkpoints/checkpoint-*/{MARKER}"), None) is not None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the study finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started = [p.parent for p in out.glob("cells/*/*/.spuriverse.lock")]
    unfinished = [c for c in started if not (c / "cell.json").exists()]
    assert len(unfinished) == 1 and not (out / "study.json").exists()  # killed mid-cell
    cell = unfinished[0]
    mid_training = json.loads((cell / "model" / "train.json").read_text())["status"] == "running" and any(
        (c / MARKER).exists() for c in (cell / "model" / "checkpoints").glob("checkpoint-*"))
    assert main(args) == 0  # the same command again
    if mid_training:  # (nearly always: the kill follows the first checkpoint within milliseconds)
        assert json.loads((cell / "model" / "train.json").read_text())["resumed_from"]  # not from scratch
    assert _stable(out) == _stable(reference)


def test_a_changed_configuration_is_refused(reference, tiny_llava, study_bench, capsys):
    before = (reference / "plan.json").read_bytes()
    assert main(quick_args(tiny_llava, study_bench, reference, *GRID, "--lr", "1e-3")) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "learning_rate" in err
    assert (reference / "plan.json").read_bytes() == before


def test_single_cells_list_and_summarize(reference, tiny_llava, study_bench, tmp_path, capsys):
    out = tmp_path / "cells"
    args = quick_args(tiny_llava, study_bench, out, *GRID, "--data-types", "anchor", "--ablation", "none")
    assert main([*args, "--list-cells"]) == 0
    listing = capsys.readouterr().out
    assert "0  todo" in listing and "seed-3/base" in listing and "seed-3/anchor" in listing
    assert main([*args, "--summarize"]) == 2 and "2 of 2 cells have not finished" in capsys.readouterr().err
    assert main([*args, "--cell", "1"]) == 0 and not (out / "cells" / "seed-3" / "base" / "cell.json").exists()
    assert main([*args, "--cell", "7"]) == 2 and "cells 0 to 1" in capsys.readouterr().err
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom spuriverse.locking import folder_lock\n"
                               f"with folder_lock({str(out / 'cells' / 'seed-3' / 'base')!r}, stage='test'):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*args, "--cell", "0"]) == 2 and "in use by" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert main([*args, "--cell", "0"]) == 0
    assert main([*args, "--summarize"]) == 0
    small = StudyResult.model_validate_json((out / "study.json").read_text())
    full = StudyResult.model_validate_json((reference / "study.json").read_text())
    # a cell does not depend on which other cells the study has
    for name in ("seed-3/base", "seed-3/anchor"):
        mine, ref = (next(c for c in s.cells if c.name == name) for s in (small, full))
        assert mine.accuracy == ref.accuracy
