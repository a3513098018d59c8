"""Leaderboard speed with 1,000 entries: submit (validate + re-score + rank + render), and its parts.

Setup (not timed in the figures):

- a synthetic benchmark of 124 groups x 11 items (anchor + 10 spurious) = 1,364 items, registered
  with `init_board` (which also evaluates and submits the random and frequent baselines);
- one real run of the `random` baseline through `run_eval`; from its `run.json` manifest and
  samples, N synthetic models (`synth-0000` ...) are derived without any model: per model a seeded
  RNG draws a skill p and, per item, whether the answer is right (probability p) and otherwise a
  wrong letter uniformly; prediction, raw text (the bare letter, as the random baseline answers:
  it parses `strict`) and `correct` are set consistently; `results.json` is rebuilt with
  `spuriverse.eval.results.build_result` (1,000 bootstrap iterations) with `samples_sha256` set,
  so every synthetic run passes verification;
- the board is populated with the N runs in ONE pass through the functions `submit` uses
  (`board._entry`, `board._outcome_vector`, the same atomic writes of samples.jsonl.gz /
  results.json / outcomes.json per submission, then `board._rank` and one write of
  leaderboard.json and one render) instead of N calls to `submit`, each of which would re-rank and
  re-render the growing board (quadratic). `--populate submit` uses `submit` itself (slow).

Measured, side by side:

1. `submit` of one more valid run into the N-entry board: validate + re-score + rank + write +
   render (the issue's figure: target < 2 s with 1,000 entries), repeated `--repeat` times with a
   fresh run each time;
2. validate + re-score of a run alone (`verify_run`);
3. render alone of the board (`render_board`);
4. for completeness: re-verification of every stored submission, sequentially (each stored
   `samples.jsonl.gz` decompressed next to its `results.json`, then `verify_run`).

    python bench/leaderboard.py [--entries 1000] [--repeat 3] [--populate direct|submit] [--profile]
    python bench/leaderboard.py --quick   # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import hashlib
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from helpers.bench_data import write_long_dataset  # noqa: E402
from spuriverse.eval.results import build_result  # noqa: E402
from spuriverse.eval.samples import read_run_samples  # noqa: E402
from spuriverse.leaderboard import board as lb  # noqa: E402
from spuriverse.persist import atomic_write_bytes, atomic_write_text  # noqa: E402
from spuriverse.leaderboard.render import render_board  # noqa: E402
from spuriverse.leaderboard.store import (  # noqa: E402
    board_lock,
    gzip_bytes,
    slugify,
)
from spuriverse.leaderboard.verify import VerifiedRun, verify_run  # noqa: E402
from spuriverse.eval.metrics import Scores  # noqa: E402
from spuriverse.schema import RunManifest, Sample, letters_for  # noqa: E402

TARGET_S = 2.0


def synth_run(manifest: RunManifest, samples: list[Sample], k: int, out: Path,
              n_bootstrap: int) -> Path:
    """A valid run of synthetic model k (seeded), derived from the random baseline's run."""
    rng = np.random.default_rng(k)
    skill = rng.uniform(0.15, 0.95)
    right = rng.random(len(samples)) < skill
    pick = rng.random(len(samples))
    new = []
    for s, ok, u in zip(samples, right, pick):
        letters = letters_for(s.n_options)
        if ok:
            letter = s.answer
        else:
            wrong = [c for c in letters if c != s.answer]
            letter = wrong[int(u * len(wrong))]
        new.append(s.model_copy(update={"prediction": letter, "raw": letter, "correct": letter == s.answer,
                                        "parse_status": "strict"}))
    data = "".join(s.model_dump_json() + "\n" for s in new).encode("utf-8")
    model = manifest.model.model_copy(update={"alias": f"synth-{k:04d}"})
    man = manifest.model_copy(update={"model": model})
    result = build_result(man, new, n_bootstrap=n_bootstrap, samples_sha256=hashlib.sha256(data).hexdigest())
    out.mkdir(parents=True)
    (out / "samples.jsonl").write_bytes(data)
    (out / "run.json").write_text(man.model_dump_json(indent=2) + "\n", "utf-8")
    (out / "results.json").write_text(result.model_dump_json(indent=2) + "\n", "utf-8")
    return out


def populate_direct(board_dir: Path, runs: list[Path]) -> None:
    """What N submits leave behind, in one pass: the per-submission files exactly as `submit`
    writes them, then one ranking, one leaderboard.json, one render. The runs are built to be
    valid (checked on a sample by `verify_run` in main); their scores come from build_result."""
    record = lb.read_record(board_dir)
    with board_lock(board_dir):
        board = lb.read_board(board_dir)
        entries = {e.slug: e for e in board.entries}
        for path in runs:
            r = lb.load_results(path)[1]
            data = (path / r.samples_file).read_bytes()
            samples = [Sample.model_validate_json(line) for line in data.splitlines() if line.strip()]
            scores = Scores(metrics=r.metrics, breakdowns=r.breakdowns, per_group=r.per_group, failures=r.failures,
                            bootstrap=r.bootstrap, failures_as_wrong=r.failures_count_as_wrong)
            run = VerifiedRun(path, r, samples, data, scores)
            key = lb.run_config_key(r)
            slug = slugify(r.model.alias, key)
            sub = board_dir / lb.SUBMISSIONS / slug
            atomic_write_bytes(sub / "samples.jsonl.gz", gzip_bytes(data))
            atomic_write_text(sub / "results.json", r.model_dump_json(indent=1) + "\n")
            atomic_write_text(sub / lb.OUTCOMES, json.dumps(lb.outcome_vector(run, record)))
            entries[slug] = lb.board_entry(run, slug, key, None, False, [])
        board = lb.rank_entries(board.model_copy(update={"entries": list(entries.values())}), board_dir)
        atomic_write_text(board_dir / lb.BOARD, board.model_dump_json(indent=1) + "\n")
        render_board(board_dir)


def reverify_all(board_dir: Path, scratch: Path) -> tuple[float, int]:
    record = lb.read_record(board_dir)
    t0 = time.perf_counter()
    n = 0
    for sub in sorted((board_dir / lb.SUBMISSIONS).iterdir()):
        tmp = scratch / sub.name
        tmp.mkdir(parents=True)
        shutil.copyfile(sub / "results.json", tmp / "results.json")
        (tmp / "samples.jsonl").write_bytes(gzip.decompress((sub / "samples.jsonl.gz").read_bytes()))
        verify_run(tmp, record)
        n += 1
    return time.perf_counter() - t0, n


def profile(fn, label: str, top: int = 18) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    print(f"\n--- profile: {label} (cumulative, top {top}) ---")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1000, help="synthetic entries on the board (default 1000)")
    ap.add_argument("--groups", type=int, default=124, help="groups of 11 items (default 124 -> 1,364 items)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap iterations of every run (default 1000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed submits into the full board (default 3)")
    ap.add_argument("--populate", choices=["direct", "submit"], default="direct",
                    help="fill the board in one pass (default) or by calling submit per run (slow)")
    ap.add_argument("--skip-reverify", action="store_true", help="skip figure 4 (re-verify every submission)")
    ap.add_argument("--profile", action="store_true", help="cProfile one extra submit into the full board")
    ap.add_argument("--keep", type=Path, help="copy the populated leaderboard folder here")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (5 entries, 2 groups, 50 bootstrap iterations)")
    args = ap.parse_args()
    if args.quick:
        args.entries, args.groups, args.bootstrap, args.repeat = 5, 2, 50, 1

    from spuriverse.eval.runner import EvalOptions, run_eval

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("HF_HOME", str(tmp / "hf"))
        t0 = time.perf_counter()
        data_dir = write_long_dataset(tmp / "data", n_groups=args.groups, n_spurious=10, n_counter=0, n_controls=0,
                                      image_size=(32, 24))
        leaderboards = tmp / "leaderboards"
        board_dir = lb.init_board(str(data_dir), "bench", leaderboards)
        t_init = time.perf_counter() - t0
        template = tmp / "random-run"
        run_eval(EvalOptions(model="random", dataset=str(data_dir), output_dir=template, progress=False, report=False,
                             n_bootstrap=args.bootstrap))
        manifest = RunManifest.model_validate_json((template / "run.json").read_text("utf-8"))
        samples = read_run_samples(template)
        n_items = len(samples)

        t0 = time.perf_counter()
        n_total = args.entries + args.repeat + 1
        runs = [synth_run(manifest, samples, k, tmp / "runs" / f"synth-{k:04d}", args.bootstrap)
                for k in range(n_total)]
        t_synth = time.perf_counter() - t0
        board_runs, extra = runs[: args.entries], runs[args.entries :]
        record = lb.read_record(board_dir)
        for r in (board_runs[0], board_runs[-1]):
            verify_run(r, record)  # the synthetic runs are valid

        t0 = time.perf_counter()
        if args.populate == "direct":
            populate_direct(board_dir, board_runs)
        else:
            for r in board_runs:
                lb.submit(r, leaderboards)
        t_pop = time.perf_counter() - t0
        n_board = len(lb.read_board(board_dir).entries)
        size = (board_dir / lb.BOARD).stat().st_size
        pages = {p: (board_dir / p).stat().st_size for p in ("README.md", "index.html")}
        print(f"benchmark: {n_items} items ({args.groups} groups x 11); board: {n_board} entries "
              f"({args.entries} synthetic + 2 baselines), {args.bootstrap} bootstrap iterations per run")
        print(f"setup: init_board {t_init:.1f} s, {n_total} synthetic runs {t_synth:.1f} s, "
              f"populate ({args.populate}) {t_pop:.1f} s")
        print(f"leaderboard.json {size / 1e6:.1f} MB, README.md {pages['README.md'] / 1e6:.2f} MB, "
              f"index.html {pages['index.html'] / 1e6:.2f} MB")

        # (1) submit one more run into the full board
        submit_s = []
        for r in extra[: args.repeat]:
            t0 = time.perf_counter()
            out = lb.submit(r, leaderboards)
            submit_s.append(time.perf_counter() - t0)
            assert out.status == "added"
        # (2) validate + re-score alone
        verify_s = []
        for r in extra[: args.repeat]:
            t0 = time.perf_counter()
            verify_run(r, record)
            verify_s.append(time.perf_counter() - t0)
        # (3) render alone
        render_s = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            render_board(board_dir)
            render_s.append(time.perf_counter() - t0)
        n_final = len(lb.read_board(board_dir).entries)

        def fmt(xs: list[float]) -> str:
            return f"{statistics.median(xs):>8.3f}{min(xs):>8.3f}{max(xs):>8.3f}"

        print(f"\n{'':<60}{'median':>8}{'min':>8}{'max':>8}   (seconds, {args.repeat} runs)")
        print(f"{'(1) submit into the board (validate+re-score+rank+render)':<60}{fmt(submit_s)}")
        print(f"{'(2) validate + re-score alone (verify_run)':<60}{fmt(verify_s)}")
        print(f"{'(3) render alone (README.md + index.html)':<60}{fmt(render_s)}")
        if not args.skip_reverify:
            total, n = reverify_all(board_dir, tmp / "reverify")
            print(f"{'(4) re-verify every stored submission, sequentially':<60}{total:>8.1f}"
                  f"   total for {n} ({1000 * total / n:.0f} ms each)")
        med = statistics.median(submit_s)
        print(f"\nsubmit with {n_final - 1}+1 entries: {med:.2f} s (median)   target < {TARGET_S:.0f} s: "
              f"{'MET' if med < TARGET_S else 'MISSED'}")

        if args.profile:
            profile(lambda: lb.submit(extra[-1], leaderboards), f"submit into {n_final} entries")
        if args.keep:
            shutil.copytree(leaderboards, args.keep, dirs_exist_ok=True)


if __name__ == "__main__":
    main()
