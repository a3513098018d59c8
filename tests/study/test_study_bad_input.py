"""Bad input to `spuriverse study finetune`: one error line, exit 2, before any model loads and before
the study folder exists."""

from __future__ import annotations

import pytest

from helpers.bench_data import write_long_dataset
from helpers.study_data import quick_args, study_rows
from spuriverse.cli import main

CASES = {
    "too few groups": (dict(n_groups=9), (), "9 correlation group(s); splitting correlations into train / validation "
                                             "/ test needs at least 10"),
    "no spurious images": ("g04", (), "1 group(s) have no spurious images: g04"),
    "ablation point too large": ({}, ("--ablation", "0,10"), "ablation point '10' = 10 correlations, but a seed has "
                                                             "only 9 training correlations"),
    "too few controls": (dict(n_controls=2), (), "not enough control items of source"),
    "unknown data type": ({}, ("--data-types", "anchor,cue"), "data types ['anchor', 'cue']"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error_before_anything_is_written(case, tmp_path, capsys):
    kwargs, extra, message = CASES[case]
    if isinstance(kwargs, str):  # a group whose spurious images are missing
        rows = [r for r in study_rows() if not (r["group_id"] == kwargs and r["variant"] == "spurious")]
    else:
        rows = study_rows(**kwargs)
    bench = write_long_dataset(tmp_path / "bench", rows)
    out = tmp_path / "study"
    capsys.readouterr()
    assert main(quick_args(tmp_path / "no-model-is-loaded", bench, out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("spuriverse study: error:") and err.count("\n") == 1
    assert not out.exists()


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "finetune", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: spuriverse study finetune" in text and "--cell K" in text and "--quick" in text


def test_a_folder_that_is_not_a_study_is_refused(study_bench, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(quick_args(tmp_path / "no-model", study_bench, out)) == 2
    assert "is not empty (notes.txt) and holds no plan.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
