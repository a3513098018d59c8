"""Leaderboard file formats (leaderboards/NAME/...)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spuriverse.schema.core import SCHEMA_VERSION, MetricValue, Scoring, Strategy, StrictModel, Variant



class BenchmarkItemRecord(StrictModel):
    item_id: str
    group_id: str
    variant: Variant
    answer: str
    options: list[str]
    source_benchmark: str = ""
    spurious_attribute: str = ""


class BenchmarkRecord(StrictModel):
    """`leaderboards/NAME/benchmark.json`: a registered benchmark version (what submissions are
    checked against)."""

    schema_version: str = SCHEMA_VERSION
    name: str
    created: str
    source: str
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    fingerprint: str
    n_items: int
    n_groups: int
    counts: dict[str, int]
    items: list[BenchmarkItemRecord]


class PairedTest(StrictModel):
    """This entry vs the next one down on the board (paired, on shared items)."""

    other: str = Field(description="slug of the next entry")
    diff: float | None
    diff_ci: tuple[float, float] | None = None
    p_value: float | None
    method: str
    significant: bool


class LeaderboardEntry(StrictModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")
    display_name: str = Field(max_length=200)
    model: str
    backend: str
    checkpoint: str
    revision: str | None = None
    strategy: Strategy
    scoring: Scoring
    circular: bool = False
    blind: bool = False
    seed: int = 0
    prompt_hash: str
    parser_version: str
    config_key: str = Field(description="hash of (model, checkpoint, revision, strategy, scoring, circular, blind, seed)")
    submitted: str
    run_created: str
    harness_version: str
    baseline: bool = False
    verified: bool = Field(True, description="metrics recomputed from the samples by the leaderboard")
    flags: list[str] = Field(default_factory=list)
    metrics: dict[str, MetricValue]
    failed_rate: float
    unparsed_rate: float
    n_items: int
    per_group: dict[str, float | None] = Field(description="group_id -> accuracy (anchor + spurious)")
    samples_sha256: str
    vs_next: PairedTest | None = None


class LeaderboardPolicy(StrictModel):
    max_failed_rate: float = Field(0.05, ge=0, le=1, description="failed + unparsed items / all items")
    on_exceed: Literal["reject", "flag"] = "reject"
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level for adjacent-rank tests")
    max_submission_bytes: int = Field(64_000_000, gt=0, le=1_000_000_000,
                                      description="largest samples file a submission may bring (bytes)")


class Leaderboard(StrictModel):
    """`leaderboards/NAME/leaderboard.json`: the single source the pages are rendered from."""

    schema_version: str = SCHEMA_VERSION
    name: str
    fingerprint: str
    updated: str
    policy: LeaderboardPolicy = Field(default_factory=LeaderboardPolicy)
    groups: list[str] = Field(default_factory=list, description="group ids, in display order")
    entries: list[LeaderboardEntry] = Field(default_factory=list, description="ranked, best first")
