"""Leaderboard fixtures: one registered board (copied per test) and valid run folders to submit or
mutate into hostile ones.

- `board_world` (session): `leaderboards/` holding board `demo` (the small benchmark, with the random
  and frequent baselines) and board `other` (another benchmark, no baselines).
- `world` (per test): a private copy of it, `world.leaderboards` / `world.board` / `world.runs`.
- `llava_run` (session): a valid run of the tiny LLaVA (log-prob scoring, 200 bootstrap draws).
- `random_run` (session): a valid run of the random baseline with seed 1 (generate scoring).
- `frequent_run` (session): a valid run of the frequent baseline with alias `frequent-copy`.

Helpers: `snapshot(dir)` (every file and folder, with bytes) and `mutate_run(src, dst, fn)`; test
modules import them as `from leaderboard_helpers import ...` (this module registers itself under
that name, whatever pytest's import mode calls it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from spuriverse.eval.metrics import score_samples
from spuriverse.leaderboard.board import submit
from spuriverse.leaderboard.verify import SubmissionRejected
from spuriverse.schema import Sample, letters_for

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}

sys.modules.setdefault("leaderboard_helpers", sys.modules[__name__])

DIR = None  # marker value of a folder in a snapshot


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root` (files and folders, dot-files included): relpath -> bytes (None
    for a folder). Symlinks are recorded by their target text."""
    root = Path(root)
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = b"symlink:" + str(p.readlink()).encode()
        elif p.is_dir():
            out[rel] = DIR
        else:
            out[rel] = p.read_bytes()
    return out


def diff_snapshots(before: dict, after: dict) -> list[str]:
    """Human-readable differences (for assertion messages)."""
    out = [f"new: {k}" for k in sorted(after.keys() - before.keys())]
    out += [f"gone: {k}" for k in sorted(before.keys() - after.keys())]
    out += [f"changed: {k}" for k in sorted(before.keys() & after.keys()) if before[k] != after[k]]
    return out


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text("utf-8").splitlines() if line.strip()]


def samples_bytes(samples: list[dict]) -> bytes:
    """The run's own line format (pydantic's compact JSON)."""
    return b"".join(json.dumps(s, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
                    for s in samples)


def write_results(run_dir: Path, results: dict) -> None:
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def rehash(run_dir: Path) -> None:
    """Set results.json's samples_sha256 to the sha256 of the samples file as it is now."""
    results = json.loads((run_dir / "results.json").read_text("utf-8"))
    data = (run_dir / results.get("samples_file", "samples.jsonl")).read_bytes()
    results["samples_sha256"] = hashlib.sha256(data).hexdigest()
    write_results(run_dir, results)


def rescore(results: dict, samples: list[dict]) -> None:
    """Recompute every score in `results` from `samples` exactly as the project's scorer does
    (same bootstrap iterations/seed/level), so only the check under test can fail."""
    boot = results["bootstrap"]
    scores = score_samples([Sample.model_validate(s) for s in samples], n_bootstrap=boot["iterations"],
                           seed=boot["seed"], level=boot["level"],
                           failures_as_wrong=results.get("failures_count_as_wrong", True),
                           expected_items=results["benchmark"]["n_items"])
    results["metrics"] = {k: v.model_dump(mode="json") for k, v in scores.metrics.items()}
    results["breakdowns"] = {k: {kk: vv.model_dump(mode="json") for kk, vv in v.items()}
                             for k, v in scores.breakdowns.items()}
    results["per_group"] = [g.model_dump(mode="json") for g in scores.per_group]
    results["failures"] = scores.failures.model_dump(mode="json")
    results["bootstrap"] = scores.bootstrap.model_dump(mode="json")


def mutate_run(src: Path, dst: Path, fn: Callable[[dict, list[dict]], None] | None = None, *,
               rehash_samples: bool = True, rescore_metrics: bool = False) -> Path:
    """Copy the run folder `src` to `dst`, let `fn(results, samples)` edit results.json (a dict)
    and/or the sample lines (a list of dicts) in place, and write them back.

    The samples file is rewritten only when `fn` changed the samples. Then, unless
    `rehash_samples=False`, results.json's samples_sha256 is set to match the samples file as
    written (so a test reaches the checks past the hash). `rescore_metrics=True` also recomputes
    metrics/failures/per-group/breakdowns from the edited samples."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst)
    results = json.loads((dst / "results.json").read_text("utf-8"))
    samples = read_samples(dst)
    original = copy.deepcopy(samples)
    if fn is not None:
        fn(results, samples)
    if samples != original:
        (dst / "samples.jsonl").write_bytes(samples_bytes(samples))
    if rescore_metrics:
        rescore(results, samples)
    if rehash_samples:
        target = dst / "samples.jsonl"
        name = results.get("samples_file")
        if isinstance(name, str) and name and (dst / name).is_file() and (dst / name).resolve().is_relative_to(dst):
            target = dst / name
        results["samples_sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    write_results(dst, results)
    return dst


@dataclass
class World:
    root: Path  # holds leaderboards/ and runs/ (nothing else may change under it on a rejection)
    leaderboards: Path
    board: Path  # leaderboards/demo
    other: Path  # leaderboards/other (a different benchmark)
    runs: Path  # scratch folder for run copies


@pytest.fixture(scope="session")
def other_benchmark(tmp_path_factory) -> Path:
    """A second, different benchmark (3 groups, 2 controls)."""
    from helpers.bench_data import write_long_dataset

    return write_long_dataset(tmp_path_factory.mktemp("other-bench"), n_groups=3, n_controls=2, seed=7)


@pytest.fixture(scope="session")
def board_world(tmp_path_factory, small_benchmark, other_benchmark) -> Path:
    """Session copy source: `<root>/leaderboards/{demo,other}` registered through `init_board`."""
    from spuriverse.leaderboard.board import init_board

    root = tmp_path_factory.mktemp("board-world")
    init_board(str(small_benchmark), "demo", root / "leaderboards")
    init_board(str(other_benchmark), "other", root / "leaderboards", baselines=False)
    return root / "leaderboards"


@pytest.fixture
def world(board_world, tmp_path) -> World:
    root = tmp_path / "world"
    shutil.copytree(board_world, root / "leaderboards")
    (root / "runs").mkdir()
    lb = root / "leaderboards"
    return World(root=root, leaderboards=lb, board=lb / "demo", other=lb / "other", runs=root / "runs")


def _eval(tmp: Path, **kw) -> Path:
    from spuriverse.eval.runner import EvalOptions, run_eval

    out = tmp / "run"
    run_eval(EvalOptions(output_dir=out, progress=False, report=False, n_bootstrap=200, **kw))
    assert (out / "results.json").is_file()
    return out


@pytest.fixture(scope="session")
def llava_run(tmp_path_factory, tiny_llava, small_benchmark) -> Path:
    """A valid run of a tiny real LLaVA (log-prob scoring). Treat as read-only: copy before editing."""
    return _eval(tmp_path_factory.mktemp("llava-run"), model=str(tiny_llava), dataset=str(small_benchmark))


@pytest.fixture(scope="session")
def random_run(tmp_path_factory, small_benchmark) -> Path:
    """A valid run of the random baseline with seed 1 (generate scoring, bare-letter answers)."""
    return _eval(tmp_path_factory.mktemp("random-run"), model="random", dataset=str(small_benchmark), seed=1)


@pytest.fixture(scope="session")
def frequent_run(tmp_path_factory, small_benchmark) -> Path:
    """A valid run of the frequent baseline under another alias (its own slug on the board)."""
    from spuriverse.eval.runner import EvalOptions, run_eval

    out = tmp_path_factory.mktemp("frequent-run") / "run"
    run_eval(EvalOptions(model="frequent", dataset=str(small_benchmark), output_dir=out, progress=False,
                         report=False, n_bootstrap=200))
    return mutate_run(out, out.parent / "aliased", lambda r, s: r["model"].update(alias="frequent-copy"))


# --------------------------------------------------------------------------------------------
# assertions


def assert_rejected(world, run: Path, *needles: str, exc: type[Exception] = SubmissionRejected,
                    **kw) -> str:
    """submit() raises `exc` whose message contains every needle, and nothing on disk changed
    (the whole world: both boards, the run folders)."""
    before = snapshot(world.root)
    with pytest.raises(exc) as info:
        submit(run, world.leaderboards, **kw)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"message {msg!r} does not name {needle!r}"
    after = snapshot(world.root)
    assert after == before, f"a rejected submission changed the disk: {diff_snapshots(before, after)}"
    return msg


def bad_chars(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in BAD_CATEGORIES]


# --------------------------------------------------------------------------------------------
# small mutation helpers (all take the results dict and the list of sample dicts)


def first(samples: list[dict], pred: Callable[[dict], bool]) -> dict:
    s = next((s for s in samples if pred(s)), None)
    assert s is not None, "the fixture run has no sample of the kind this case needs"
    return s


def other_letter(s: dict, not_: str | None = None) -> str:
    return next(c for c in letters_for(s["n_options"]) if c != (not_ or s["prediction"]))


def fail_sample(s: dict) -> None:
    """Make a sample a failed API call, consistently with the Sample schema."""
    s.update(prediction=None, correct=False, parse_status=None, error="x", error_type="api", raw=None,
             logprobs=None)


def raw_results(run: Path, edit: Callable[[str], str | bytes]) -> None:
    """Rewrite results.json's text/bytes directly (for what json.dumps cannot produce)."""
    path = run / "results.json"
    out = edit(path.read_text("utf-8"))
    path.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8"))


def raw_samples(run: Path, line_index: int, new_line: bytes) -> None:
    """Replace one line of samples.jsonl by raw bytes, then fix the hash so the line is read."""
    path = run / "samples.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[line_index] = new_line
    path.write_bytes(b"\n".join(lines))
    results = json.loads((run / "results.json").read_text("utf-8"))
    results["samples_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_results(run, results)
