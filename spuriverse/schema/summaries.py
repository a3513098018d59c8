"""Stage summaries: the ``*_summary.json`` file each curation stage writes at its end.

Counters are plain fields that the stage increments as it goes; `to_json` gives the file's bytes
(indented JSON, as these files have always been written).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Agreement", "JudgeSummary", "MineSummary", "ModelMineSummary", "VerifyModelSummary",
           "VerifyStageSummary"]


class _Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def _json(self, *, sort_keys: bool) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=sort_keys) + "\n"


class Agreement(_Summary):
    """Our parser vs the reference's ``parsed`` column (each with its own error rule)."""

    letter_disagreements: int = 0
    errors_ours: int = 0
    errors_reference: int = 0
    errors_only_ours: int = 0
    errors_only_reference: int = 0


class MineSummary(_Summary):
    """`mine_summary.json` of a CSV-mined folder: counts over the whole CSV (not only this run's appends)."""

    source: str
    preset: str
    source_file: str
    use_reference_parsed: bool
    rows: int = 0
    invalid_rows: int = 0
    rows_with_empty_options: int = 0
    errors: int = 0
    unparsed: int = 0
    unparsed_errors: int = 0
    appended: int = 0
    already_present: int = 0
    duplicate_ids: int = 0
    rows_per_category: dict[str, int] = {}
    errors_per_category: dict[str, int] = {}
    agreement: Agreement | None = None

    def to_json(self) -> str:
        return self._json(sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MineSummary:
        return cls.model_validate_json(text)


class ModelMineSummary(_Summary):
    """`mine_summary.json` of a model-mined folder: counts over every sample of the run."""

    source: str
    dataset: str
    model: str
    preset: str | None = None
    run_dir: str = "mine_run"  # MINE_RUN of spuriverse.curate.mine_model
    items: int = 0
    answered: int = 0
    correct: int = 0
    errors: int = 0
    unparsed_errors: int = 0
    failures: int = 0
    failures_by_type: dict[str, int] = {}
    appended: int = 0
    already_present: int = 0
    anchors_restored: int = 0
    duplicate_ids: int = 0
    per_source: dict[str, dict[str, int]] = {}
    items_per_category: dict[str, int] = {}
    errors_per_category: dict[str, int] = {}
    failures_per_category: dict[str, int] = {}
    eval_seconds: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> str:
        return self._json(sort_keys=True)


class JudgeSummary(_Summary):
    """`judge_summary.json`. `errors`: candidates in errors.jsonl; `cached`: skipped (same judge and
    prompt, verdict present); `judged` / `failed`: verdicts / failures recorded by this run;
    `spurious`: verdicts "yes" among all current verdicts of this judge and prompt (cached included);
    `not_attempted`: left out by `limit`; tokens and `requests` are this run's. `output_modes`: how
    many of this run's verdicts and failures were answered in each structured-output mode
    (``json_schema``, ``json_object``, ``prompt``; empty for judges without one, e.g. a local model)."""

    judge: str
    prompt_hash: str
    errors: int = 0
    cached: int = 0
    judged: int = 0
    failed: int = 0
    spurious: int = 0
    not_attempted: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    seconds: float = 0.0
    output_modes: dict[str, int] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self._json(sort_keys=False)

    def line(self) -> str:
        """One-line account of the run for the terminal."""
        return (f"judged {self.judged} ({self.spurious} spurious in all), failed {self.failed}, cached {self.cached} "
                f"of {self.errors} errors; {self.requests} requests, {self.prompt_tokens} prompt + "
                f"{self.completion_tokens} completion tokens; judge {self.judge}, prompt {self.prompt_hash}; "
                f"{self.seconds:.1f} s"
                + (f"; output modes {self.output_modes}" if set(self.output_modes) - {"json_schema"} else ""))


class VerifyModelSummary(_Summary):
    """One verifying model's counts in `verify_summary.json`."""

    mean_gap: float | None
    n_with_gap: int
    n_pass: int
    failed: int


class VerifyStageSummary(_Summary):
    """`verify_summary.json`: the verification settings and counts over every candidate."""

    threshold: float
    policy: str
    models: list[str]
    n_bootstrap: int
    confidence: float
    seed: int
    strategy: str
    n_candidates: int
    n_kept: int
    n_items: int
    benchmark_fingerprint: str
    per_model: dict[str, VerifyModelSummary]
