"""`spuriverse curate verify DIR`: stage 5, counterfactual verification through the eval harness.

Every synthesized image (status ok) of every accepted candidate becomes an item of a long-layout
benchmark in `DIR/verify/benchmark/` (the anchor's question, options and answer; variant spurious =
cue present, counter = cue absent). Each verifying model runs on it with `run_eval` into
`DIR/verify/runs/<model slug>/` (resumable: a killed run continues where it stopped). Per candidate
and model: accuracy on counter minus accuracy on spurious images, with a percentile bootstrap
interval (images resampled within each variant); failed requests are counted, never scored. A
candidate is kept when any (or all) models' gap exceeds the threshold.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from spuriverse.data.curation import accepted_candidates
from spuriverse.persist import atomic_write_bytes, atomic_write_json, atomic_write_jsonl
from spuriverse.schema import Candidate, ModelGap, Sample, SynthProvenance, Verification, VerifyStageSummary
from spuriverse.locking import locks_folder

VERIFICATION, SUMMARY = "verification.jsonl", "verify_summary.json"
VERIFY_DIR = "verify"
BENCH_PARQUET = "data/test-00000-of-00001.parquet"
VARIANTS = ("spurious", "counter")


class VerifyError(ValueError):
    """Nothing to verify, or inputs that cannot be verified."""


@dataclass
class VerifyOptions:
    models: list[str]
    threshold: float
    policy: Literal["any", "all"] = "any"
    n_bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    strategy: str = "direct"
    batch_size: int | None = None
    progress: bool = True
    backend_options: dict[str, Any] = field(default_factory=dict)  # base_url, api_key, device ...


@dataclass
class VerifySummary:
    verifications: list[Verification]
    n_items: int
    summary: dict[str, Any]


def ok_images(curation_dir: Path, candidate_id: str, variant: str) -> list[tuple[int, Path, SynthProvenance]]:
    """(k, png, provenance) of the usable images of one candidate and variant, by k."""
    folder = curation_dir / "images" / candidate_id / variant
    out = []
    for js in folder.glob("*.json") if folder.is_dir() else []:
        if not js.stem.isdigit():
            continue
        try:
            prov = SynthProvenance.model_validate_json(js.read_text("utf-8"))
        except ValueError:
            continue  # a torn or foreign file: synth redoes it; never verified
        png = folder / (prov.image_file or "")
        if prov.status == "ok" and prov.image_file and png.is_file():
            out.append((prov.k, png, prov))
    return sorted(out, key=lambda t: t[0])


def model_slug(model: str) -> str:
    """A folder name for a model string (an alias, a path, `openai:<name>`); a hash keeps it unique."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._-")[-60:].lstrip("._-") or "model"
    return slug if slug == model else f"{slug}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def item_rows(curation_dir: Path, candidates: list[Candidate]) -> list[dict[str, Any]]:
    """Long-layout rows of the verification benchmark, in canonical order (image bytes included)."""
    rows = []
    for c in candidates:
        for variant in VARIANTS:
            for k, png, _ in ok_images(curation_dir, c.candidate_id, variant):
                rows.append({
                    "item_id": f"{c.candidate_id}/{variant}_{k}", "group_id": c.candidate_id, "variant": variant,
                    "question": c.question, "options": list(c.options), "answer": c.answer,
                    "source_benchmark": c.source, "source_id": c.question_id,
                    "spurious_attribute": "; ".join(c.spurious_attributes),
                    "core_attribute": "; ".join(c.core_attributes), "category": "",
                    "image": {"bytes": png.read_bytes(), "path": None},
                })
    return rows


def parquet_bytes(rows: list[dict[str, Any]], features: Any) -> bytes:
    """Rows -> parquet bytes (deterministic: no timestamps in datasets' or pyarrow's writer)."""
    import tempfile

    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(prefix="spuriverse-parquet-") as tmp:
            path = Path(tmp) / "data.parquet"
            Dataset.from_list(rows, features=features).to_parquet(str(path))
            return path.read_bytes()
    finally:
        if not bars_were_off:
            enable_progress_bars()


def write_benchmark(curation_dir: Path, candidates: list[Candidate]) -> tuple[Path, int]:
    """Write `DIR/verify/benchmark/` (rewritten only when its content changes); (folder, n items)."""
    from spuriverse.data.layouts import long_features

    rows = item_rows(curation_dir, candidates)
    if not rows:
        raise VerifyError(f"{curation_dir}: no synthesized images (status ok) for any accepted candidate; "
                          "run `spuriverse synth` first")
    folder = curation_dir / VERIFY_DIR / "benchmark"
    target = folder / BENCH_PARQUET
    data = parquet_bytes(rows, long_features())
    if not target.is_file() or target.read_bytes() != data:
        atomic_write_bytes(target, data)
    return folder, len(rows)


def _prepare_run_dir(run_dir: Path, dataset: str, fingerprint: str) -> None:
    """A run made on an older verification benchmark (more images since, another path) cannot be
    resumed: it is moved aside (never deleted) and the model runs afresh."""
    from spuriverse.eval.results import MANIFEST
    from spuriverse.schema import RunManifest

    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        return
    old = RunManifest.model_validate_json(manifest.read_text("utf-8")).config
    if old.fingerprint != fingerprint or old.dataset != dataset:
        stale = run_dir.parent / ".stale" / f"{run_dir.name}-{old.fingerprint.split(':')[-1][:12]}"
        if stale.exists():
            shutil.rmtree(stale)
        stale.parent.mkdir(parents=True, exist_ok=True)
        run_dir.rename(stale)


def gap_of(model: str, spurious: list[Sample], counter: list[Sample], threshold: float, n_bootstrap: int,
           confidence: float, seed: int, key: str) -> ModelGap:
    """One model on one candidate: failures excluded and counted; a seeded percentile bootstrap
    resampling images within each variant; passes when gap > threshold."""
    s = np.array([x.correct for x in spurious if x.error is None], dtype=float)
    c = np.array([x.correct for x in counter if x.error is None], dtype=float)
    failed = sum(x.error is not None for x in [*spurious, *counter])
    acc_s = float(s.mean()) if len(s) else None
    acc_c = float(c.mean()) if len(c) else None
    gap = lo = hi = None
    if acc_s is not None and acc_c is not None:
        gap = acc_c - acc_s
        if n_bootstrap > 0:
            digest = hashlib.sha256(f"{seed}\0{key}\0{model}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
            bs = s[rng.integers(0, len(s), size=(n_bootstrap, len(s)))].mean(axis=1)
            bc = c[rng.integers(0, len(c), size=(n_bootstrap, len(c)))].mean(axis=1)
            q = np.percentile(bc - bs, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
            lo, hi = float(q[0]), float(q[1])
    return ModelGap(model=model, n_spurious=len(s), n_counter=len(c), failed=failed, acc_spurious=acc_s,
                    acc_counter=acc_c, gap=gap, ci_low=lo, ci_high=hi, passes=gap is not None and gap > threshold)


@locks_folder("curation_dir", stage="curate verify")
def verify(curation_dir: str | Path, opts: VerifyOptions) -> VerifySummary:
    """Run (or resume) every verifying model and write verification.jsonl + verify_summary.json."""
    from spuriverse.data import load_benchmark
    from spuriverse.eval.runner import EvalOptions, run_eval
    from spuriverse.eval.samples import read_run_samples
    from spuriverse.models.registry import resolve_model

    curation_dir = Path(curation_dir)
    if not opts.models:
        raise VerifyError("no verifying models (--models M1,M2,...)")
    if len(set(opts.models)) != len(opts.models):
        raise VerifyError(f"a model is named twice in {opts.models}")
    if opts.policy not in ("any", "all"):
        raise VerifyError(f"unknown policy {opts.policy!r} (any, all)")
    candidates = accepted_candidates(curation_dir)
    if not candidates:
        raise VerifyError(f"{curation_dir}: no accepted candidates (run `spuriverse curate review` first)")
    bench_dir, n_items = write_benchmark(curation_dir, candidates)
    dataset = str(bench_dir.resolve())
    fingerprint = load_benchmark(dataset).fingerprint

    by_model: dict[str, dict[str, list[Sample]]] = {}
    for m in opts.models:
        baseline = resolve_model(m).backend == "baseline"  # a batch size would only warn there
        run_dir = curation_dir / VERIFY_DIR / "runs" / model_slug(m)
        _prepare_run_dir(run_dir, dataset, fingerprint)
        run_eval(EvalOptions(model=m, dataset=dataset, output_dir=run_dir, strategy=opts.strategy,
                             batch_size=None if baseline else opts.batch_size, seed=opts.seed, n_bootstrap=0,
                             progress=opts.progress, report=False, backend_options=dict(opts.backend_options)))
        grouped: dict[str, list[Sample]] = {}
        for smp in read_run_samples(run_dir):
            grouped.setdefault(smp.item_id, []).append(smp)
        by_model[m] = grouped

    out: list[Verification] = []
    for c in candidates:
        per_model = []
        for m in opts.models:
            got = {v: [s for k, _, _ in ok_images(curation_dir, c.candidate_id, v)
                       for s in by_model[m].get(f"{c.candidate_id}/{v}_{k}", [])] for v in VARIANTS}
            per_model.append(gap_of(m, got["spurious"], got["counter"], opts.threshold, opts.n_bootstrap,
                                    opts.confidence, opts.seed, c.candidate_id))
        passes = [g.passes for g in per_model]
        out.append(Verification(
            candidate_id=c.candidate_id, threshold=opts.threshold, policy=opts.policy, models=list(opts.models),
            confidence=opts.confidence, n_bootstrap=opts.n_bootstrap, seed=opts.seed, per_model=per_model,
            kept=any(passes) if opts.policy == "any" else all(passes),
        ))
    atomic_write_jsonl(curation_dir / VERIFICATION, out)
    summary = summarize(out, opts, n_items, fingerprint)
    VerifyStageSummary.model_validate(summary)  # the file format is a schema model; the bytes stay the dict's
    atomic_write_json(curation_dir / SUMMARY, summary)
    return VerifySummary(out, n_items, summary)


def summarize(out: list[Verification], opts: VerifyOptions, n_items: int, fingerprint: str) -> dict[str, Any]:
    per_model = {}
    for i, m in enumerate(opts.models):
        gaps = [g for v in out if (g := v.per_model[i].gap) is not None]
        per_model[m] = {
            "mean_gap": float(np.mean(gaps)) if gaps else None,
            "n_with_gap": len(gaps),
            "n_pass": sum(v.per_model[i].passes for v in out),
            "failed": sum(v.per_model[i].failed for v in out),
        }
    return {
        "threshold": opts.threshold, "policy": opts.policy, "models": list(opts.models),
        "n_bootstrap": opts.n_bootstrap, "confidence": opts.confidence, "seed": opts.seed,
        "strategy": opts.strategy, "n_candidates": len(out), "n_kept": sum(v.kept for v in out),
        "n_items": n_items, "benchmark_fingerprint": fingerprint, "per_model": per_model,
    }


def read_verifications(curation_dir: str | Path) -> list[Verification]:
    """verification.jsonl (empty list when absent)."""
    from spuriverse.data.curation import read_jsonl

    return list(read_jsonl(Path(curation_dir) / VERIFICATION, Verification))


def format_table(out: list[Verification]) -> str:
    """A plain-text table: one row per candidate, gap [interval] per model, kept."""
    if not out:
        return "(no candidates)"
    models = out[0].models
    head = ["candidate", *(Path(m).name if "/" in m and Path(m).exists() else m for m in models), "kept"]
    body = []
    for v in out:
        cells = [v.candidate_id]
        for g in v.per_model:
            if g.gap is None:
                cells.append(f"- (n={g.n_spurious}/{g.n_counter})")
            else:
                ci = f" [{g.ci_low:+.2f}, {g.ci_high:+.2f}]" if g.ci_low is not None else ""
                cells.append(f"{g.gap:+.2f}{ci}{' *' if g.passes else ''}")
        cells.append("yes" if v.kept else "no")
        body.append(cells)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
