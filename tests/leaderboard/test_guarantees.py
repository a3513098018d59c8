"""Issue 17's guarantees for the leaderboard: padded or oversized submissions and symlinked files are
refused with the whole folder byte-identical; published files are readable by a web server; one
corrupt board does not break `submit` for the others."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from leaderboard_helpers import assert_rejected, mutate_run

from spuriverse.leaderboard.board import submit
from spuriverse.schema import Leaderboard


def _pad(src: Path, dst: Path, padding: bytes) -> Path:
    run = mutate_run(src, dst)
    samples = run / "samples.jsonl"
    samples.write_bytes(samples.read_bytes() + padding)
    results = json.loads((run / "results.json").read_text())
    results["samples_sha256"] = hashlib.sha256(samples.read_bytes()).hexdigest()  # the hash "adjusted"
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_a_samples_file_padded_with_blank_lines_is_refused(world, llava_run):
    run = _pad(llava_run, world.runs / "padded", b"\n" * 10_000)
    assert_rejected(world, run, "samples.jsonl:", "blank line")


def test_whitespace_only_padding_is_refused(world, llava_run):
    run = _pad(llava_run, world.runs / "padded", b"   \n\t\n" * 100)
    assert_rejected(world, run, "blank line")


def test_a_submission_over_the_boards_size_limit_is_refused_before_it_is_read(world, llava_run):
    path = world.board / "leaderboard.json"
    board = Leaderboard.model_validate_json(path.read_text())
    board.policy.max_submission_bytes = 2_000
    path.write_text(board.model_dump_json(indent=1) + "\n")
    size = (llava_run / "samples.jsonl").stat().st_size
    assert size > 2_000
    assert_rejected(world, llava_run, f"{size} bytes", "limit is 2000")


def test_a_symlinked_samples_file_is_refused(world, llava_run):
    run = mutate_run(llava_run, world.runs / "linked")
    real = world.runs / "elsewhere.jsonl"
    (run / "samples.jsonl").rename(real)
    (run / "samples.jsonl").symlink_to(real)
    assert_rejected(world, run, "symbolic link", "plain files beside results.json")


def test_a_symlinked_results_file_is_refused(world, llava_run):
    run = mutate_run(llava_run, world.runs / "linked")
    real = world.runs / "results-elsewhere.json"
    (run / "results.json").rename(real)
    (run / "results.json").symlink_to(real)
    assert_rejected(world, run, "symbolic link")


def test_published_files_are_readable_under_umask_022(world, llava_run):
    old = os.umask(0o022)
    try:
        out = submit(llava_run, world.leaderboards)
    finally:
        os.umask(old)
    assert out.status == "added"
    published = [world.board / n for n in ("index.html", "README.md", "leaderboard.json", "benchmark.json")]
    published += [p for p in (world.board / "submissions").rglob("*") if p.is_file()]
    assert len(published) > 4
    for p in published:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o044 == 0o044, f"{p}: mode {oct(mode)}"


def test_a_corrupt_sibling_board_is_skipped_with_a_warning(world, llava_run, capsys):
    bad = world.leaderboards / "broken"
    bad.mkdir()
    (bad / "benchmark.json").write_text("{}")
    out = submit(llava_run, world.leaderboards)
    assert out.status == "added"
    err = capsys.readouterr().err
    assert "skipping" in err and str(bad / "benchmark.json") in err


def test_a_corrupt_board_named_by_the_run_fails_clearly(world, llava_run):
    (world.board / "benchmark.json").write_text("{}")
    with pytest.raises(ValueError, match="benchmark.json: not a valid benchmark record"):
        submit(llava_run, world.leaderboards, name="demo")
