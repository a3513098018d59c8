"""Verify a submitted run against a registered benchmark; nothing is taken on the submitter's word.

Checks, in order (the first failure rejects, naming the field, line or item at fault): sizes,
strict JSON (no NaN/inf, no duplicate keys), the RunResult schema, the samples file (plain name,
size, sha256 as claimed), every sample line against the Sample schema, the items (each registered
item exactly once per rotation, no extra ones, group/variant/answer as registered), every prediction
(re-derived from the log-probs or re-parsed from the raw text with the project's parser), and
finally every claimed metric against the project's scorer run on the samples.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spuriverse.eval.metrics import Scores, score_samples
from spuriverse.eval.parsing import PARSER_VERSION, UnknownParserVersion, best_letter, parse_answer, parser_features
from spuriverse.eval.prompts import STRATEGIES, rotate_options
from spuriverse.schema import BenchmarkRecord, RunResult, Sample, letters_for
from spuriverse.persist import UnsafeFile, check_regular

MAX_RESULTS_BYTES = 5_000_000
MAX_SAMPLES_BYTES = 256_000_000
MAX_LINE_BYTES = 1_000_000
MAX_BOOTSTRAP = 10_000
TOLERANCE = 1e-9
_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SubmissionRejected(ValueError):
    """The submission fails verification; the message names what is wrong."""


@dataclass
class VerifiedRun:
    run_dir: Path
    result: RunResult
    samples: list[Sample]
    samples_bytes: bytes
    scores: Scores


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise SubmissionRejected(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def strict_json(text: str | bytes, what: str) -> Any:
    """Parse JSON, refusing duplicate keys. NaN/Infinity/1e999 parse to non-finite floats, which
    every schema refuses (allow_inf_nan=False), so the error names the field that holds them."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except SubmissionRejected as exc:
        raise SubmissionRejected(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, absurd nesting
        raise SubmissionRejected(f"{what}: not valid JSON ({type(exc).__name__}: {str(exc)[:120]})") from None


def _field_errors(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"field '{loc}': {e['msg']}")
    return "; ".join(parts)


def _regular(path: Path, what: str) -> None:
    """A submitted file must be a plain file beside results.json: never a link, never a device
    (a folder or a missing file is reported by the caller's own check)."""
    if path.is_dir() and not path.is_symlink():
        return
    try:
        check_regular(path, what=what)
    except UnsafeFile as exc:
        raise SubmissionRejected(f"{exc}; submit plain files beside results.json") from None


def load_results(path: str | Path) -> tuple[Path, RunResult]:
    """`path` is a run folder or its results.json."""
    p = Path(path)
    results = p / "results.json" if p.is_dir() else p
    _regular(results, "results.json")
    if not results.is_file():
        raise SubmissionRejected(f"{path}: no results.json")
    size = results.stat().st_size
    if size > MAX_RESULTS_BYTES:
        raise SubmissionRejected(f"results.json is {size} bytes (limit {MAX_RESULTS_BYTES})")
    data = strict_json(results.read_bytes(), "results.json")
    if not isinstance(data, dict):
        raise SubmissionRejected("results.json: not a JSON object")
    try:
        result = RunResult.model_validate(data)
    except ValidationError as exc:
        raise SubmissionRejected(f"results.json: {_field_errors(exc)}") from None
    if result.strategy not in STRATEGIES:
        raise SubmissionRejected(f"results.json: field 'strategy': {result.strategy!r} is no prompt strategy this "
                                 f"leaderboard knows ({', '.join(STRATEGIES)})")
    return results.parent, result


def _read_samples(run_dir: Path, result: RunResult,
                  max_bytes: int = MAX_SAMPLES_BYTES) -> tuple[bytes, list[Sample]]:
    """Stream the samples file: size limit first, then line by line (hashing as it reads), so a padded
    or oversized file is refused in bounded memory. Blank lines are refused: a run never writes one."""
    name = result.samples_file
    if not _SAFE_FILE.match(name) or ".." in name:
        raise SubmissionRejected(f"results.json: field 'samples_file': unsafe file name {name!r}")
    path = run_dir / name
    _regular(path, "samples file")
    if not path.is_file():
        raise SubmissionRejected(f"samples file {name!r} named by results.json is missing")
    size = path.stat().st_size
    limit = min(max_bytes, MAX_SAMPLES_BYTES)
    if size > limit:
        raise SubmissionRejected(f"{name} is {size} bytes (this leaderboard's limit is {limit})")
    if result.samples_sha256 is None:
        raise SubmissionRejected("results.json: field 'samples_sha256' is required for a submission")
    digest, chunks, samples = hashlib.sha256(), [], []
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            digest.update(line)
            chunks.append(line)
            if len(line) > MAX_LINE_BYTES:
                raise SubmissionRejected(f"{name}:{line_no}: line of {len(line)} bytes (limit {MAX_LINE_BYTES})")
            if not line.strip():
                raise SubmissionRejected(f"{name}:{line_no}: blank line (a samples file has one sample per line)")
            obj = strict_json(line.rstrip(b"\n"), f"{name}:{line_no}")
            try:
                samples.append(Sample.model_validate(obj))
            except ValidationError as exc:
                raise SubmissionRejected(f"{name}:{line_no}: {_field_errors(exc)}") from None
            if f.tell() > limit:  # grown since the size check
                raise SubmissionRejected(f"{name} grew past this leaderboard's limit of {limit} bytes")
    if digest.hexdigest() != result.samples_sha256:
        raise SubmissionRejected(f"{name}: sha256 differs from results.json's samples_sha256 (file changed)")
    return b"".join(chunks), samples


def _check_items(samples: list[Sample], record: BenchmarkRecord, circular: bool) -> None:
    items = {it.item_id: it for it in record.items}
    seen: set[tuple[str, int | None]] = set()
    for s in samples:
        it = items.get(s.item_id)
        if it is None:
            raise SubmissionRejected(f"item {s.item_id!r} is not in the registered benchmark")
        key = (s.item_id, s.rotation)
        if key in seen:
            raise SubmissionRejected(f"item {s.item_id!r} (rotation {s.rotation}) appears more than once")
        seen.add(key)
        n = len(it.options)
        if (s.group_id, s.variant, s.n_options) != (it.group_id, it.variant, n):
            raise SubmissionRejected(f"item {s.item_id!r}: group/variant/option count differ from the registered ones")
        if circular != (s.rotation is not None) or (s.rotation is not None and not 0 <= s.rotation < n):
            raise SubmissionRejected(f"item {s.item_id!r}: rotation {s.rotation} does not fit circular={circular}")
        expected = it.answer if s.rotation is None else rotate_options(it.options, it.answer, s.rotation)[1]
        if s.answer != expected:
            raise SubmissionRejected(
                f"item {s.item_id!r}: answer {s.answer!r} differs from the registered answer {expected!r}"
            )
    wanted = {(i, r) for i, it in items.items() for r in (range(len(it.options)) if circular else [None])}
    missing = sorted(wanted - seen, key=str)
    if missing:
        raise SubmissionRejected(f"{len(missing)} registered item(s) missing, e.g. {missing[0][0]!r}")


def _check_predictions(samples: list[Sample], record: BenchmarkRecord, result: RunResult) -> None:
    # A run is re-parsed with the rules of the parser version it was scored with (older versions stay
    # reachable), so an upgrade of spuriverse never invalidates an honest submission.
    try:
        parser_features(result.parser_version)
    except UnknownParserVersion as e:
        raise SubmissionRejected(
            f"results.json: {e}; this leaderboard runs parser {PARSER_VERSION!r}: re-run the evaluation "
            f"with this spuriverse (`spuriverse eval` then `spuriverse score`)"
        ) from None
    options = {it.item_id: it.options for it in record.items}
    for s in samples:
        if s.scoring != result.scoring:
            raise SubmissionRejected(f"item {s.item_id!r}: scoring {s.scoring!r} but the run says {result.scoring!r}")
        if s.correct != (s.prediction is not None and s.prediction == s.answer):
            raise SubmissionRejected(f"item {s.item_id!r}: 'correct' does not match prediction vs answer")
        if s.error is not None:
            continue
        if s.scoring == "logprob":
            lps = s.logprobs or {}
            valid = set(letters_for(s.n_options))
            if not set(lps) <= valid:
                raise SubmissionRejected(f"item {s.item_id!r}: log-probs for letters that are no option")
            best = best_letter(lps)
            if s.prediction != best or s.parse_status != ("logprob" if best else "unparsed"):
                raise SubmissionRejected(f"item {s.item_id!r}: prediction {s.prediction!r} is not the arg-max log-prob")
        else:
            opts = options[s.item_id]
            if s.rotation is not None:
                opts = rotate_options(opts, "A", s.rotation)[0]
            parsed = parse_answer(s.raw, opts, version=result.parser_version)
            if (parsed.letter, parsed.status) != (s.prediction, s.parse_status):
                raise SubmissionRejected(
                    f"item {s.item_id!r}: the raw answer parses to {parsed.letter!r} ({parsed.status}), "
                    f"not {s.prediction!r} ({s.parse_status})"
                )


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=0, abs_tol=TOLERANCE)


def _check_metrics(result: RunResult, scores: Scores) -> None:
    claimed, real = result.metrics, scores.metrics
    if set(claimed) != set(real):
        raise SubmissionRejected(f"results.json: metrics {sorted(set(claimed) ^ set(real))} do not match the scorer's")
    for key in sorted(real):
        c, r = claimed[key], real[key]
        for part in ("value", "ci_low", "ci_high"):
            if not _close(getattr(c, part), getattr(r, part)):
                raise SubmissionRejected(
                    f"results.json: metric {key}.{part} is {getattr(c, part)!r} but the samples give "
                    f"{getattr(r, part)!r}"
                )
        if c.n != r.n:
            raise SubmissionRejected(f"results.json: metric {key}.n is {c.n} but the samples give {r.n}")
    if result.failures.model_dump() != scores.failures.model_dump():
        raise SubmissionRejected("results.json: field 'failures' does not match the samples")
    if [g.model_dump() for g in result.per_group] != [g.model_dump() for g in scores.per_group]:
        raise SubmissionRejected("results.json: field 'per_group' does not match the samples")
    if {k: {v: m.model_dump() for v, m in d.items()} for k, d in result.breakdowns.items()} != {
        k: {v: m.model_dump() for v, m in d.items()} for k, d in scores.breakdowns.items()
    }:
        raise SubmissionRejected("results.json: field 'breakdowns' does not match the samples")


def verify_run(path: str | Path, record: BenchmarkRecord,
               loaded: tuple[Path, RunResult] | None = None, *, max_bytes: int = MAX_SAMPLES_BYTES) -> VerifiedRun:
    """Everything short of writing: raises SubmissionRejected naming what is wrong. `loaded` is
    `load_results(path)` when the caller already has it."""
    run_dir, result = loaded or load_results(path)
    if result.benchmark.fingerprint != record.fingerprint:
        raise SubmissionRejected(
            f"benchmark fingerprint {result.benchmark.fingerprint[:20]}... is not {record.name}'s "
            f"({record.fingerprint[:20]}...)"
        )
    data, samples = _read_samples(run_dir, result, max_bytes)
    _check_items(samples, record, result.circular)
    _check_predictions(samples, record, result)
    boot = result.bootstrap
    if boot.iterations > MAX_BOOTSTRAP:
        raise SubmissionRejected(f"results.json: bootstrap.iterations {boot.iterations} (limit {MAX_BOOTSTRAP})")
    try:
        scores = score_samples(samples, n_bootstrap=boot.iterations, seed=boot.seed, level=boot.level,
                               failures_as_wrong=result.failures_count_as_wrong, expected_items=record.n_items)
    except ValueError as exc:
        raise SubmissionRejected(f"samples cannot be scored: {exc}") from None
    _check_metrics(result, scores)
    return VerifiedRun(run_dir, result, samples, data, scores)
