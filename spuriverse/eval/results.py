"""Turn a run folder (`run.json` + `samples.jsonl`) into `results.json` and the report.

Scoring is a pure function of the saved samples: `spuriverse score DIR`, the end of `spuriverse
eval` and the leaderboard's re-scorer all go through `build_result`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from spuriverse.eval.metrics import score_samples
from spuriverse.eval.samples import SAMPLES, read_run_samples
from spuriverse.persist import atomic_write_text

# One definition each, in spuriverse.provenance; re-exported here for code that imported them from
# this module before (train).
from spuriverse.provenance import harness_info, now_iso, package_versions
from spuriverse.schema import RunManifest, RunResult, Sample

__all__ = ["MANIFEST", "RESULTS", "build_result", "file_sha256", "harness_info", "now_iso", "package_versions",
           "write_result"]

MANIFEST = "run.json"
RESULTS = "results.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_result(
    manifest: RunManifest,
    samples: list[Sample],
    *,
    timings: dict[str, float] | None = None,
    n_bootstrap: int = 1000,
    bootstrap_seed: int = 0,
    failures_as_wrong: bool = True,
    samples_sha256: str | None = None,
) -> RunResult:
    expected = manifest.benchmark.n_items
    if manifest.limit is not None:
        expected = min(expected, manifest.limit)
    scores = score_samples(samples, n_bootstrap=n_bootstrap, seed=bootstrap_seed,
                           failures_as_wrong=failures_as_wrong, expected_items=expected)
    cfg = manifest.config
    return RunResult(
        created=now_iso(),
        benchmark=manifest.benchmark,
        model=manifest.model,
        generation=manifest.generation,
        strategy=cfg.strategy,
        scoring=cfg.scoring,
        circular=cfg.circular,
        seed=cfg.seed,
        prompt_hash=cfg.prompt_hash,
        parser_version=cfg.parser_version,
        harness=manifest.harness,
        packages=manifest.packages,
        timings=timings or {},
        failures=scores.failures,
        failures_count_as_wrong=failures_as_wrong,
        bootstrap=scores.bootstrap,
        metrics=scores.metrics,
        breakdowns=scores.breakdowns,
        per_group=scores.per_group,
        samples_file=SAMPLES,
        samples_sha256=samples_sha256,
    )


def write_result(run_dir: Path, result: RunResult, *, report: bool = True) -> list[Path]:
    """Write `results.json` atomically, then the markdown report and its plots."""
    path = run_dir / RESULTS
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")
    written = [path]
    if report:
        from spuriverse.eval.report import write_report

        written += write_report(result, run_dir)
    return written


def score_run(run_dir: str | Path, *, n_bootstrap: int = 1000, failures_as_wrong: bool = True,
              report: bool = True) -> RunResult:
    """Recompute everything from `run.json` + `samples.jsonl` (no model is run)."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(f"{run_dir}: no {MANIFEST} (not a spuriverse run folder)")
    manifest = RunManifest.model_validate_json(manifest_path.read_text("utf-8"))
    samples = read_run_samples(run_dir)
    timings = {}
    old = run_dir / RESULTS
    if old.exists():
        try:
            timings = RunResult.model_validate_json(old.read_text("utf-8")).timings
        except ValueError:
            timings = {}
    sha = file_sha256(run_dir / SAMPLES) if (run_dir / SAMPLES).exists() else None
    result = build_result(manifest, samples, timings=timings, n_bootstrap=n_bootstrap,
                          failures_as_wrong=failures_as_wrong, samples_sha256=sha)
    write_result(run_dir, result, report=report)
    return result
