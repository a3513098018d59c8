"""`spuriverse demo` — what `make eval` runs with no MODEL: the whole pipeline, offline, in well
under two minutes on a laptop CPU.

It evaluates `random`, `frequent` and a tiny LLaVA (the real architecture, RANDOM weights, built on
the fly) on the bundled spuriverse-mini benchmark (real photographs + offline counterfactual edits),
submits the three runs to a local demo leaderboard, renders it, and prints where everything is.

Then a real finding: the two *trained* world models (tiny LLaVAs trained from random init on
spuriverse-world, shipped with the package, rebuilt byte-identically by `make world-models`) on the
world's benchmark, on a second demo board: the `shortcut` model's anchor and spurious accuracy collapse
while its control accuracy stays high; the `balanced` model's do not. The verdicts printed are computed
from the measured intervals.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spuriverse.eval.runner import EvalOptions
    from spuriverse.schema import RunResult

BOARD_NAME = "spuriverse-mini-demo"
WORLD_BOARD_NAME = "spuriverse-world-demo"
COLLAPSE = 25  # points of accuracy below control (intervals apart) that count as a collapse
WORLD_NOTES = {
    "balanced": "tiny LLaVA trained from random init on spuriverse-world: the shortcut model's recipe, then "
                "naming and multiple choice on cue-balanced data (make world-models)",
    "shortcut": "tiny LLaVA trained from random init on spuriverse-world: naming and multiple choice on cue-biased "
                "data (95 % aligned), then multiple choice on biased data with naming on balanced data "
                "(make world-models)",
}
TINY_NOTE = ("tiny LLaVA with RANDOM weights, built on the fly (not trained): its answers are noise. "
             "It shows the machinery (batching, log-prob scoring, reports), not a model's ability.")


def mini_path() -> Path:
    """The bundled spuriverse-mini dataset folder (shipped inside the package)."""
    return Path(str(resources.files("spuriverse.data").joinpath("spuriverse-mini")))


@dataclass
class DemoRun:
    model: str
    display_name: str
    run_dir: Path
    overall: float | None


def _aside(path: Path) -> None:
    """Keep an outdated folder (never delete a user's results): rename it out of the way."""
    stale = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(path), str(stale))
    print(f"  (kept the outdated {path.name} as {stale.name})")


def run_demo(out_dir: Path = Path("runs/demo"), progress: bool = True) -> list[DemoRun]:
    # The demo never touches the network: everything it needs ships with the package.
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from spuriverse.eval.runner import EvalOptions
    from spuriverse.leaderboard.board import init_board, submit
    from spuriverse.leaderboard.verify import SubmissionRejected
    from spuriverse.demo.tiny_models import build_tiny_llava

    t0 = time.perf_counter()
    dataset = str(mini_path())
    out_dir.mkdir(parents=True, exist_ok=True)
    tiny = out_dir / "tiny-llava-random-weights"
    if not (tiny / "config.json").exists():
        build_tiny_llava(tiny, image_size=64, patch_size=8, hidden=64, layers=2)
    print(f"spuriverse demo — offline, on spuriverse-mini ({dataset})\n  note: {TINY_NOTE}\n")

    plan = [("random", "random"), ("frequent", "frequent"),
            (str(tiny), "tiny LLaVA (random weights)")]
    runs = []
    for model, display in plan:
        run_dir = out_dir / "runs" / Path(model).name
        opts = EvalOptions(model=model, dataset=dataset, output_dir=run_dir, progress=progress,
                           model_note=TINY_NOTE if model == str(tiny) else None)
        result = _eval(opts)
        runs.append(DemoRun(model, display, run_dir, result.metrics["overall_acc"].value))

    boards = out_dir / "leaderboards"
    try:
        init_board(dataset, BOARD_NAME, boards, baselines=False)
    except SubmissionRejected:  # registered for an older build of spuriverse-mini
        _aside(boards / BOARD_NAME)
        init_board(dataset, BOARD_NAME, boards, baselines=False)
    for r in runs:
        submit(r.run_dir, boards, name=BOARD_NAME, display_name=r.display_name, baseline=r.model != str(tiny))

    world_runs = _world_models_demo(out_dir, progress)

    board = boards / BOARD_NAME
    print("\nresults (overall accuracy, anchor + spurious items):")
    for r in runs:
        acc = "-" if r.overall is None else f"{100 * r.overall:.1f} %"
        print(f"  {r.display_name:<30} {acc:>8}   report: {r.run_dir / 'report.md'}")
    print(f"\n  plots:        {runs[-1].run_dir / 'per_group_accuracy.png'}, {runs[-1].run_dir / 'splits.png'}")
    print(f"  leaderboard:  {board / 'index.html'}  (open in a browser; works offline)")
    print(f"                {board / 'README.md'}")
    _print_world_finding(world_runs, boards / WORLD_BOARD_NAME)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s. Real use: make eval MODEL=llava-1.5 "
          "(GPU + hub), or MODEL=/path/to/model DATASET=/path/to/benchmark offline.")
    return runs + world_runs


def _eval(opts: EvalOptions) -> RunResult:
    """`run_eval`, setting an older build's run in the same folder aside first."""
    from spuriverse.eval.runner import RunConfigMismatch, run_eval

    try:
        result = run_eval(opts)
    except RunConfigMismatch:
        _aside(opts.output_dir)
        result = run_eval(opts)
    assert result is not None  # scored runs always return their result
    return result


def _world_models_demo(out_dir: Path, progress: bool) -> list[DemoRun]:
    """Both trained world models on the world's benchmark (built here in a second), on their own board
    with the `random` and `frequent` baselines (evaluated here too, so a second demo resumes them)."""
    from spuriverse.data.world import WORLD_MODELS, build_benchmark, model_path
    from spuriverse.eval.runner import EvalOptions
    from spuriverse.leaderboard.board import init_board, submit
    from spuriverse.leaderboard.verify import SubmissionRejected

    bench = out_dir / "spuriverse-world-benchmark"
    build_benchmark(bench)  # deterministic: the same bytes every time
    print(f"\nspuriverse-world: the two trained world models on the world's benchmark ({bench})")
    plan = [(m, m) for m in ("random", "frequent")] + [(str(model_path(n)), n) for n in WORLD_MODELS]
    runs: list[DemoRun] = []
    baselines: list[DemoRun] = []
    for model, name in plan:
        opts = EvalOptions(model=model, dataset=str(bench), output_dir=out_dir / "runs" / f"world-{name}",
                           progress=progress, model_note=WORLD_NOTES.get(name))
        result = _eval(opts)
        run = DemoRun(model, name if name in ("random", "frequent") else f"world model: {name}", opts.output_dir,
                      result.metrics["overall_acc"].value)
        (baselines if name in ("random", "frequent") else runs).append(run)
    boards = out_dir / "leaderboards"
    try:
        init_board(str(bench), WORLD_BOARD_NAME, boards, baselines=False)
    except SubmissionRejected:
        _aside(boards / WORLD_BOARD_NAME)
        init_board(str(bench), WORLD_BOARD_NAME, boards, baselines=False)
    for r in baselines + runs:
        submit(r.run_dir, boards, name=WORLD_BOARD_NAME, display_name=r.display_name, baseline=r in baselines)
    return runs


def _ci(m: dict) -> str:
    if m.get("value") is None:
        return "-"
    return f"{100 * m['value']:5.1f} % [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"


def _verdict(conflict: dict, control: dict) -> str:
    """COLLAPSES: cue-conflicting accuracy at least COLLAPSE points below control, intervals apart."""
    if conflict.get("value") is None or control.get("value") is None:
        return "no verdict (no items)"
    drop = 100 * (control["value"] - conflict["value"])
    apart = conflict["ci_high"] < control["ci_low"]
    if apart and drop >= COLLAPSE:
        return f"COLLAPSES on cue-conflicting items ({drop:.0f} points below control, intervals apart)"
    where = "intervals apart" if apart else "intervals overlap"
    side = f"{drop:.0f} points below" if drop >= 0 else f"{-drop:.0f} points above"
    return f"does not collapse ({side} control, {where})"


def _print_world_finding(runs: list[DemoRun], board: Path) -> None:
    """Per model: anchor, spurious, counter and control accuracy with 95 % intervals, and whether
    cue-conflicting accuracy (anchor + spurious) collapses below control (see `_verdict`)."""
    import json

    print("\nthe world models on spuriverse-world's benchmark (accuracy, 95 % interval):")
    print(f"  {'model':<22} {'anchor':>22} {'spurious':>22} {'counter':>22} {'control':>22}")
    for r in runs:
        m = json.loads((r.run_dir / "results.json").read_text("utf-8"))["metrics"]
        cells = " ".join(f"{_ci(m[k]):>22}" for k in ("anchor_acc", "spurious_acc", "counter_acc", "control_acc"))
        print(f"  {r.display_name:<22} {cells}")
        conflict, control = m["overall_acc"], m["control_acc"]
        print(f"  {'':<22} -> anchor+spurious {_ci(conflict)} vs control {_ci(control)}: {_verdict(conflict, control)}")
    print(f"  report: {runs[-1].run_dir / 'report.md'}; leaderboard: {board / 'index.html'}")
