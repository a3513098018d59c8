"""The offline demo (`make eval` with no MODEL): everything a newcomer sees, offline."""

from __future__ import annotations

import json

from spuriverse.demo.offline import BOARD_NAME, TINY_NOTE, mini_path, run_demo
from spuriverse.schema import Leaderboard


def test_demo_runs_offline_and_says_the_weights_are_random(tmp_path, capsys):
    runs = run_demo(tmp_path / "demo", progress=False)
    out = capsys.readouterr().out
    assert "RANDOM weights" in TINY_NOTE and TINY_NOTE in out
    assert "demo finished in" in out and "index.html" in out
    assert [r.model.split("/")[-1] for r in runs] == ["random", "frequent", "tiny-llava-random-weights"]
    for r in runs:
        for name in ("samples.jsonl", "results.json", "report.md", "per_group_accuracy.png", "splits.png"):
            assert (r.run_dir / name).exists(), (r.run_dir, name)
    tiny_report = (runs[-1].run_dir / "report.md").read_text()
    assert "random-weights" in tiny_report and "**Note:** tiny LLaVA with RANDOM weights" in tiny_report
    board_dir = tmp_path / "demo" / "leaderboards" / BOARD_NAME
    board = Leaderboard.model_validate_json((board_dir / "leaderboard.json").read_text())
    assert len(board.entries) == 3 and sum(e.baseline for e in board.entries) == 2
    assert {e.display_name for e in board.entries} == {"random", "frequent", "tiny LLaVA (random weights)"}
    assert (board_dir / "index.html").exists() and (board_dir / "README.md").exists()
    results = json.loads((runs[-1].run_dir / "results.json").read_text())
    assert results["benchmark"]["source"] == str(mini_path())


def test_demo_twice_resumes_and_changes_nothing_on_the_board(tmp_path, capsys):
    run_demo(tmp_path / "demo", progress=False)
    board = tmp_path / "demo" / "leaderboards" / BOARD_NAME / "leaderboard.json"
    before = board.read_bytes()
    run_demo(tmp_path / "demo", progress=False)
    assert board.read_bytes() == before  # identical resubmissions are no-ops
