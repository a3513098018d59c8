"""Leaderboard commands: leaderboard init|render, submit."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="register a benchmark version, re-render boards",
                       description="Manage leaderboards (leaderboards/NAME/: benchmark.json, leaderboard.json, "
                       "README.md, index.html, submissions/).")
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = lsub.add_parser("init", help="register a benchmark version (+ random and frequent baselines)",
                           description="Register a benchmark version: writes benchmark.json (fingerprint, items, "
                           "answers) and a board holding the random and frequent baselines.")
    init.add_argument("--dataset", required=True, help="hub id, local dataset folder or parquet files")
    init.add_argument("--name", required=True, help="board name: lowercase letters, digits, . _ -")
    init.add_argument("--config")
    init.add_argument("--split")
    init.add_argument("--revision")
    init.add_argument("--side-table", action="append", dest="side_tables", metavar="[NAME=]FILE")
    init.add_argument("--leaderboard-dir", type=Path, default=Path("leaderboards"))
    init.add_argument("--max-failed-rate", type=float, default=0.05,
                      help="failed + unparsed share above which a submission is rejected/flagged (default 0.05)")
    init.add_argument("--on-exceed", choices=["reject", "flag"], default="reject")
    init.add_argument("--no-baselines", action="store_true", help="do not evaluate random/frequent")
    init.set_defaults(func=_cmd_leaderboard_init)
    ren = lsub.add_parser("render", help="regenerate README.md and index.html from leaderboard.json",
                          description="Regenerate the pages of one board (or all) from leaderboard.json alone.")
    ren.add_argument("name", nargs="?", help="board name (default: every board)")
    ren.add_argument("--leaderboard-dir", type=Path, default=Path("leaderboards"))
    ren.set_defaults(func=_cmd_leaderboard_render)


def _cmd_leaderboard_init(a: argparse.Namespace) -> int:
    from spuriverse.leaderboard.board import init_board
    from spuriverse.schema import LeaderboardPolicy

    board = init_board(a.dataset, a.name, a.leaderboard_dir, config=a.config, split=a.split, revision=a.revision,
                       side_tables=a.side_tables, baselines=not a.no_baselines,
                       policy=LeaderboardPolicy(max_failed_rate=a.max_failed_rate, on_exceed=a.on_exceed))
    print(f"registered {board} (pages: {board / 'README.md'}, {board / 'index.html'})")
    return 0


def _cmd_leaderboard_render(a: argparse.Namespace) -> int:
    from spuriverse.leaderboard.board import render

    for path in render(a.leaderboard_dir, a.name):
        print(path)
    return 0


def _add_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="verify a run, re-score it from its samples, put it on the leaderboard",
                       description="Validate results.json and samples.jsonl, check every item and answer against "
                       "the registered benchmark, re-score from the samples, store the submission and update "
                       "leaderboard.json and its pages. A rejection changes nothing on disk.")
    p.add_argument("run", type=Path, help="run folder or its results.json")
    p.add_argument("--leaderboard-dir", type=Path, default=Path("leaderboards"))
    p.add_argument("--name", help="board name (default: the board whose benchmark fingerprint matches)")
    p.add_argument("--display-name", help="name shown on the board (default: the model alias)")
    p.set_defaults(func=_cmd_submit)


def _cmd_submit(a: argparse.Namespace) -> int:
    from spuriverse.leaderboard.board import submit

    out = submit(a.run, a.leaderboard_dir, display_name=a.display_name, name=a.name)
    rank = next(i for i, e in enumerate(_board_entries(a.leaderboard_dir, out.board), 1) if e.slug == out.slug)
    acc = out.entry.metrics["overall_acc"].value
    print(f"{out.status}: {out.entry.display_name} on {out.board} as {out.slug} (rank {rank}, overall "
          f"{'-' if acc is None else f'{100 * acc:.1f}%'}; flags: {', '.join(out.entry.flags) or 'none'})")
    return 0


def _board_entries(leaderboard_dir: Path, name: str) -> list:
    from spuriverse.leaderboard.board import read_board

    return read_board(leaderboard_dir / name).entries


def register(sub: argparse._SubParsersAction) -> None:
    _add_leaderboard(sub)
    _add_submit(sub)
