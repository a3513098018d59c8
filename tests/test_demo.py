"""The offline demo (`make eval` with no MODEL): everything a newcomer sees, offline."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from spuriverse.demo.offline import BOARD_NAME, TINY_NOTE, WORLD_BOARD_NAME, mini_path, run_demo
from spuriverse.schema import Leaderboard


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo run: (its folder, the runs, what it printed)."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runs = run_demo(folder, progress=False)
    return folder, runs, out.getvalue()


def test_demo_runs_offline_and_says_the_weights_are_random(demo):
    folder, runs, out = demo
    assert "RANDOM weights" in TINY_NOTE and TINY_NOTE in out
    assert "demo finished in" in out and "index.html" in out
    assert [r.model.split("/")[-1] for r in runs] == ["random", "frequent", "tiny-llava-random-weights", "balanced",
                                                       "shortcut"]
    for r in runs:
        for name in ("samples.jsonl", "results.json", "report.md", "per_group_accuracy.png", "splits.png"):
            assert (r.run_dir / name).exists(), (r.run_dir, name)
    tiny_report = (runs[2].run_dir / "report.md").read_text()
    assert "random-weights" in tiny_report and "**Note:** tiny LLaVA with RANDOM weights" in tiny_report
    board_dir = folder / "leaderboards" / BOARD_NAME
    board = Leaderboard.model_validate_json((board_dir / "leaderboard.json").read_text())
    assert len(board.entries) == 3 and sum(e.baseline for e in board.entries) == 2
    assert {e.display_name for e in board.entries} == {"random", "frequent", "tiny LLaVA (random weights)"}
    assert (board_dir / "index.html").exists() and (board_dir / "README.md").exists()
    results = json.loads((runs[2].run_dir / "results.json").read_text())
    assert results["benchmark"]["source"] == str(mini_path())


def test_demo_shows_the_world_models_finding(demo):
    """The trained world models on the world's benchmark: the shortcut model collapses on cue-conflicting
    items (anchor + spurious) while its control accuracy stays high; the balanced model does not."""
    folder, runs, out = demo
    world = {r.model.split("/")[-1]: json.loads((r.run_dir / "results.json").read_text())["metrics"]
             for r in runs[3:]}
    short, bal = world["shortcut"], world["balanced"]
    assert short["overall_acc"]["ci_high"] < short["control_acc"]["ci_low"]
    assert short["spurious_acc"]["value"] < 0.4 < 0.6 < short["control_acc"]["value"]
    assert bal["overall_acc"]["value"] > 0.7 and bal["overall_acc"]["ci_high"] > bal["control_acc"]["ci_low"]
    lines = [line for line in out.splitlines() if "anchor+spurious" in line]
    assert len(lines) == 2 and "does not collapse" in lines[0] and "COLLAPSES" in lines[1]
    board = Leaderboard.model_validate_json((folder / "leaderboards" / WORLD_BOARD_NAME / "leaderboard.json").read_text())
    names = {e.display_name for e in board.entries}
    assert {"world model: balanced", "world model: shortcut"} <= names and len(names) == 4  # + the baselines
    assert "shortcut" in (runs[4].run_dir / "report.md").read_text()


def test_demo_twice_resumes_and_changes_nothing_on_the_boards(demo, capsys):
    folder, _, _ = demo
    boards = [folder / "leaderboards" / name / "leaderboard.json" for name in (BOARD_NAME, WORLD_BOARD_NAME)]
    before = [b.read_bytes() for b in boards]
    run_demo(folder, progress=False)
    assert [b.read_bytes() for b in boards] == before  # identical resubmissions are no-ops
