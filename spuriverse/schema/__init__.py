"""Every file format spuriverse writes, as pydantic models (the single source of truth).

`spuriverse schema --out DIR` exports them as JSON Schema; the exported copies live in
`spuriverse/schemas/` and a test keeps them in sync with these classes. Submodules: `core` (items,
samples, runs), `leaderboard`, `curate` (the curation folder and image provenance), `summaries` (the
stage summaries, ``*_summary.json``), `train` (`train.json`, `compare.json`), `attribution`
(`spuriverse diagnose attribution`), `influence` (`spuriverse diagnose influence`), `study` (the fine-tuning
study's files).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from spuriverse.schema.core import *  # noqa: F403
from spuriverse.schema.core import Item, RunConfig, RunManifest, RunResult, Sample
from spuriverse.schema.curate import *  # noqa: F403
from spuriverse.schema.curate import (
    Candidate,
    ErrorRecord,
    JudgeOutput,
    Judgment,
    ReviewDecision,
    SourceSpec,
    SynthProvenance,
    Verification,
)
from spuriverse.schema.leaderboard import *  # noqa: F403
from spuriverse.schema.leaderboard import BenchmarkRecord, Leaderboard
from spuriverse.schema.summaries import *  # noqa: F403
from spuriverse.schema.summaries import JudgeSummary, MineSummary, ModelMineSummary, VerifyStageSummary
from spuriverse.schema.influence import InfluenceManifest, InfluenceSummary, QueryInfluence, SelfInfluenceRow
from spuriverse.schema.train import MethodComparison, TrainManifest
from spuriverse.schema.attribution import AttributionManifest, AttributionRow, AttributionSummary, SanityRow
from spuriverse.schema.study import CellRecord, SplitFile, StudyPlan, StudyResult

EXPORTED: dict[str, type[BaseModel]] = {
    "item": Item,
    "sample": Sample,
    "run_config": RunConfig,
    "run_manifest": RunManifest,
    "run_result": RunResult,
    "benchmark_record": BenchmarkRecord,
    "leaderboard": Leaderboard,
    "error_record": ErrorRecord,
    "judgment": Judgment,
    "review_decision": ReviewDecision,
    "candidate": Candidate,
    "synth_provenance": SynthProvenance,
    "source_spec": SourceSpec,
    "judge_output": JudgeOutput,
    "verification": Verification,
    "mine_summary": MineSummary,
    "model_mine_summary": ModelMineSummary,
    "judge_summary": JudgeSummary,
    "verify_summary": VerifyStageSummary,
    "train_manifest": TrainManifest,
    "method_comparison": MethodComparison,
    "influence_manifest": InfluenceManifest,
    "influence_query": QueryInfluence,
    "influence_self": SelfInfluenceRow,
    "influence_summary": InfluenceSummary,
    "attribution_manifest": AttributionManifest,
    "attribution_row": AttributionRow,
    "attribution_sanity": SanityRow,
    "attribution_summary": AttributionSummary,
    "study_plan": StudyPlan,
    "study_split": SplitFile,
    "study_cell": CellRecord,
    "study_result": StudyResult,
}


def json_schemas() -> dict[str, dict]:
    """JSON Schema for every exported format, keyed by file stem."""
    return {name: model.model_json_schema() for name, model in EXPORTED.items()}


def export_json_schemas(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
