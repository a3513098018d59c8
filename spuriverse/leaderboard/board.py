"""`spuriverse leaderboard init` and `spuriverse submit`: register a benchmark version, verify and
store submissions, keep `leaderboard.json` ranked. Pages are rendered from that JSON alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from spuriverse.eval.compare import mcnemar_p
from spuriverse.eval.items import collapse_rotations
from spuriverse.persist import atomic_write_bytes, atomic_write_text
from spuriverse.leaderboard.store import (
    board_lock,
    check_board_name,
    clean_text,
    config_key,
    gzip_bytes,
    slugify,
)
from spuriverse.provenance import now_iso
from spuriverse.leaderboard.verify import SubmissionRejected, VerifiedRun, load_results, verify_run
from spuriverse.schema import (
    BenchmarkItemRecord,
    BenchmarkRecord,
    Leaderboard,
    LeaderboardEntry,
    LeaderboardPolicy,
    PairedTest,
    RunResult,
)

BENCHMARK = "benchmark.json"
BOARD = "leaderboard.json"
SUBMISSIONS = "submissions"
OUTCOMES = "outcomes.json"  # per entry: 1/0 per anchor+spurious item in benchmark order (paired tests)


@dataclass
class SubmitOutcome:
    status: str  # "added" | "updated" | "unchanged"
    board: str
    slug: str
    entry: LeaderboardEntry


def read_record(board_dir: Path) -> BenchmarkRecord:
    path = board_dir / BENCHMARK
    try:
        return BenchmarkRecord.model_validate_json(path.read_text("utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ValueError(f"{path}: not a valid benchmark record ({where}: {first['msg']}; "
                         f"{exc.error_count()} error(s))") from None


def read_board(board_dir: Path) -> Leaderboard:
    return Leaderboard.model_validate_json((board_dir / BOARD).read_text("utf-8"))


def render_pages(board_dir: Path) -> None:
    """The board's README.md and index.html from its leaderboard.json."""
    from spuriverse.leaderboard.render import render_board

    render_board(board_dir)


def find_board(leaderboard_dir: Path, fingerprint: str, name: str | None = None) -> Path:
    if name is not None:
        board_dir = leaderboard_dir / check_board_name(name)
        if not (board_dir / BENCHMARK).exists():
            raise SubmissionRejected(f"no leaderboard {name!r} in {leaderboard_dir}")
        if read_record(board_dir).fingerprint != fingerprint:
            raise SubmissionRejected(f"benchmark fingerprint does not match leaderboard {name!r}")
        return board_dir
    for bench in sorted(leaderboard_dir.glob(f"*/{BENCHMARK}")):
        try:
            found = read_record(bench.parent).fingerprint == fingerprint
        except (ValueError, OSError) as exc:  # one corrupt board must not break submit for all
            print(f"spuriverse: warning: skipping {bench}: unreadable ({str(exc).splitlines()[0][:200]})",
                  file=sys.stderr)
            continue
        if found:
            return bench.parent
    raise SubmissionRejected(f"benchmark fingerprint {fingerprint[:20]}... matches no registered leaderboard "
                             f"in {leaderboard_dir} (see `spuriverse leaderboard init`)")


def init_board(
    dataset: str,
    name: str,
    leaderboard_dir: Path = Path("leaderboards"),
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
    side_tables: list[str] | None = None,
    policy: LeaderboardPolicy | None = None,
    baselines: bool = True,
) -> Path:
    """Register a benchmark version and put the `random` and `frequent` baselines on its board."""
    from spuriverse.data import load_benchmark

    board_dir = leaderboard_dir / check_board_name(name)
    bench = load_benchmark(dataset, config, revision, split, side_tables)
    info = bench.info()
    with board_lock(board_dir):
        if (board_dir / BENCHMARK).exists():
            old = read_record(board_dir)
            if old.fingerprint != info.fingerprint:
                raise SubmissionRejected(
                    f"leaderboard {name!r} is registered for another benchmark version ({old.fingerprint[:20]}...); "
                    "register the new version under a new name"
                )
        else:
            record = BenchmarkRecord(
                name=name, created=now_iso(), source=dataset, config=config, split=split, revision=revision,
                fingerprint=info.fingerprint, n_items=info.n_items, n_groups=info.n_groups, counts=info.counts,
                items=[BenchmarkItemRecord(item_id=it.item_id, group_id=it.group_id, variant=it.variant,
                                           answer=it.answer, options=it.options,
                                           source_benchmark=it.source_benchmark,
                                           spurious_attribute=it.spurious_attribute) for it in bench.items()],
            )
            groups = sorted({it.group_id for it in record.items if it.variant != "control"})
            board = Leaderboard(name=name, fingerprint=info.fingerprint, updated=record.created,
                                policy=policy or LeaderboardPolicy(), groups=groups)
            atomic_write_text(board_dir / BENCHMARK, record.model_dump_json(indent=1) + "\n")
            atomic_write_text(board_dir / BOARD, board.model_dump_json(indent=1) + "\n")
            render_pages(board_dir)
    if baselines:
        from spuriverse.eval.runner import EvalOptions, run_eval

        for model in ("random", "frequent"):
            with tempfile.TemporaryDirectory() as tmp:
                run_eval(EvalOptions(model=model, dataset=dataset, config=config, split=split, revision=revision,
                                     side_tables=side_tables, output_dir=Path(tmp), progress=False, report=False))
                submit(Path(tmp), leaderboard_dir, name=name, baseline=True)
    return board_dir


def run_config_key(r: RunResult) -> str:
    """What makes two runs the same board entry: model, checkpoint, revision and the run's configuration."""
    return config_key(r.model.backend, r.model.alias, r.model.checkpoint, r.model.revision, r.strategy, r.scoring,
                      r.circular, r.model.blind, r.seed)


def outcome_vector(run: VerifiedRun, record: BenchmarkRecord) -> list[int]:
    """1/0 per anchor+spurious item in benchmark order (failed/unparsed count as wrong)."""
    items, _ = collapse_rotations(run.samples)
    correct = {it.item_id: int(it.correct) for it in items}
    return [correct.get(it.item_id, 0) for it in record.items if it.variant in ("anchor", "spurious")]


def board_entry(run: VerifiedRun, slug: str, key: str, display_name: str | None, baseline: bool,
           flags: list[str]) -> LeaderboardEntry:
    r, s = run.result, run.scores
    model = clean_text(r.model.alias, 200) or "model"
    return LeaderboardEntry(
        slug=slug, display_name=clean_text(display_name or "", 200) or model, model=model,
        backend=clean_text(r.model.backend, 40), checkpoint=clean_text(r.model.checkpoint, 200),
        revision=clean_text(r.model.revision, 80) if r.model.revision else None, strategy=r.strategy,
        scoring=r.scoring, circular=r.circular, blind=r.model.blind, seed=r.seed,
        prompt_hash=clean_text(r.prompt_hash, 64), parser_version=clean_text(r.parser_version, 20), config_key=key,
        submitted=now_iso(), run_created=clean_text(r.created, 40),
        harness_version=clean_text(r.harness.version, 40), baseline=baseline, verified=True, flags=flags,
        metrics=s.metrics, failed_rate=s.failures.failed_rate, unparsed_rate=s.failures.unparsed_rate,
        n_items=s.failures.n_samples, per_group={g.group_id: g.acc for g in s.per_group},
        samples_sha256=r.samples_sha256 or "",
    )


def rank_entries(board: Leaderboard, board_dir: Path) -> Leaderboard:
    """Best first by overall accuracy (then mean group accuracy, then slug); each entry is tested
    against the next one down (McNemar on the paired item outcomes)."""

    def key(e: LeaderboardEntry) -> tuple:
        ov, mg = e.metrics["overall_acc"].value, e.metrics["mean_group_acc"].value
        return (-(ov if ov is not None else -1), -(mg if mg is not None else -1), e.slug)

    entries = sorted(board.entries, key=key)
    vectors = {e.slug: np.array(json.loads((board_dir / SUBMISSIONS / e.slug / OUTCOMES).read_text()), dtype=np.int8)
               for e in entries}
    ranked = []
    for i, e in enumerate(entries):
        vs = None
        if i + 1 < len(entries):
            nxt = entries[i + 1]
            a, b = vectors[e.slug], vectors[nxt.slug]
            only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
            p, method = mcnemar_p(only_a, only_b)
            diff = float(a.mean() - b.mean()) if len(a) else None
            vs = PairedTest(other=nxt.slug, diff=diff, p_value=p, method=method, significant=p < board.policy.alpha)
        ranked.append(e.model_copy(update={"vs_next": vs}))
    return board.model_copy(update={"entries": ranked, "updated": now_iso()})


def submit(
    path: str | Path,
    leaderboard_dir: Path = Path("leaderboards"),
    *,
    display_name: str | None = None,
    name: str | None = None,
    baseline: bool = False,
) -> SubmitOutcome:
    """Verify a run (folder or results.json) and put it on the board of its benchmark.

    On rejection (SubmissionRejected) nothing on disk changes. An identical resubmission is a no-op.
    """
    loaded = load_results(path)
    board_dir = find_board(Path(leaderboard_dir), loaded[1].benchmark.fingerprint, name)
    record = read_record(board_dir)
    run = verify_run(path, record, loaded, max_bytes=read_board(board_dir).policy.max_submission_bytes)
    r = run.result
    key = run_config_key(r)
    slug = slugify(r.model.alias, key)
    with board_lock(board_dir):
        board = read_board(board_dir)
        flags: list[str] = []
        bad = run.scores.failures.failed_rate + run.scores.failures.unparsed_rate
        if bad > board.policy.max_failed_rate:
            msg = (f"{100 * bad:.1f} % of items failed or unparsed (policy limit "
                   f"{100 * board.policy.max_failed_rate:.1f} %)")
            if board.policy.on_exceed == "reject":
                raise SubmissionRejected(msg)
            flags.append(msg)
        old = next((e for e in board.entries if e.slug == slug), None)
        if old is not None and old.baseline and not baseline:
            raise SubmissionRejected(f"{slug!r} is one of the board's baselines; a submission cannot replace it")
        entry = board_entry(run, slug, key, display_name, baseline, flags)
        if old is not None and old.samples_sha256 == r.samples_sha256 and old.display_name == entry.display_name:
            return SubmitOutcome("unchanged", board.name, slug, old)
        sub = board_dir / SUBMISSIONS / slug
        # Stored results carry the recomputed numbers (identical to the claimed ones, as verified).
        stored = r.model_copy(update={"metrics": run.scores.metrics, "breakdowns": run.scores.breakdowns,
                                      "per_group": run.scores.per_group, "failures": run.scores.failures})
        atomic_write_bytes(sub / "samples.jsonl.gz", gzip_bytes(run.samples_bytes))
        atomic_write_text(sub / "results.json", stored.model_dump_json(indent=1) + "\n")
        atomic_write_text(sub / OUTCOMES, json.dumps(outcome_vector(run, record)))
        others = [e for e in board.entries if e.slug != slug]
        board = rank_entries(board.model_copy(update={"entries": [*others, entry]}), board_dir)
        atomic_write_text(board_dir / BOARD, board.model_dump_json(indent=1) + "\n")
        render_pages(board_dir)
        final = next(e for e in board.entries if e.slug == slug)
    return SubmitOutcome("updated" if old else "added", board.name, slug, final)


def render(leaderboard_dir: Path, name: str | None = None) -> list[Path]:
    """Re-render one board (or all) from leaderboard.json."""
    dirs = [leaderboard_dir / check_board_name(name)] if name else sorted(
        p.parent for p in leaderboard_dir.glob(f"*/{BOARD}"))
    out = []
    for d in dirs:
        with board_lock(d):
            render_pages(d)
        out += [d / "README.md", d / "index.html"]
    return out
