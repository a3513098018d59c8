"""`spuriverse` command line: parses arguments, calls the stage functions, prints. No logic here.
One module per stage registers its commands (eval_cmds, leaderboard_cmds, curate_cmds, train_cmds,
study_cmds, diagnose_cmds)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from spuriverse import __version__
from spuriverse.cli import curate_cmds, diagnose_cmds, eval_cmds, leaderboard_cmds, study_cmds, train_cmds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spuriverse",
        description="Benchmark vision-language models for spurious correlations.",
    )
    parser.add_argument("--version", action="version", version=f"spuriverse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in (eval_cmds, leaderboard_cmds, curate_cmds, train_cmds, study_cmds, diagnose_cmds):
        stage.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["build"]:  # hidden alias of the stage's old name
        print("spuriverse: note: `spuriverse build` is deprecated; use `spuriverse curate`", file=sys.stderr)
        argv[0] = "curate"
    if argv[:2] == ["train", "compare-methods"]:  # a command of the train stage, registered flat
        argv[:2] = ["train-compare-methods"]
    args = build_parser().parse_args(argv)
    from spuriverse.data.layouts import BenchmarkError
    from spuriverse.eval.runner import RunConfigMismatch
    from spuriverse.data.curation import CurationFileError
    from spuriverse.eval.samples import SamplesFileError
    from spuriverse.synth.runner import SynthInputError
    from spuriverse.leaderboard.store import UnsafeName
    from spuriverse.leaderboard.verify import SubmissionRejected
    from spuriverse.models.base import ModelLoadError
    from spuriverse.locking import FolderBusy
    from spuriverse.models.registry import ModelSpecError

    try:
        code = args.func(args)
    except SubmissionRejected as exc:
        print(f"spuriverse {args.command}: rejected: {exc}", file=sys.stderr)
        code = 3
    except (BenchmarkError, ModelSpecError, ModelLoadError, RunConfigMismatch, SamplesFileError, UnsafeName,
            CurationFileError, SynthInputError, FileNotFoundError, ValueError, FolderBusy) as exc:
        if os.environ.get("SPURIVERSE_DEBUG"):
            raise
        print(f"spuriverse {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except OSError as exc:  # full disk, read-only folder, an output path that is a file, ...
        if os.environ.get("SPURIVERSE_DEBUG") or exc.errno is None:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"spuriverse {args.command}: error: {where}{exc.strerror or exc} "
              f"({errno.errorcode.get(exc.errno, exc.errno)})", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished samples are saved; re-run the same command to resume", file=sys.stderr)
        code = 130
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        exit_process(code)
    return code


def exit_process(code: int) -> None:
    """Leave the process once its work is done and saved: tear down a process group, flush the
    output, and exit without the interpreter's teardown. A process that imported torch / transformers /
    pyarrow occasionally aborts in that teardown ("terminate called without an active exception",
    exit -6) after finishing its work, e.g. a second `eval` refused by a folder's lock; see
    docs/offline-models.md. Used by the console script and `python -m spuriverse`, never in-process."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run() -> None:
    """The console script `spuriverse`: `main()`, then `exit_process`."""
    exit_process(main())


if __name__ == "__main__":
    sys.exit(main())

