"""report.md and the two plots, from a RunResult built out of scored samples."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from PIL import Image

from spuriverse.eval.metrics import score_samples
from spuriverse.eval.report import render_markdown, write_report
from spuriverse.schema import (
    BenchmarkInfo,
    GenerationInfo,
    HarnessInfo,
    ModelInfo,
    RunResult,
    Sample,
)


def make_samples(n_groups: int, *, counters: bool = True, hostile: bool = False, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    out: list[Sample] = []

    def add(item_id: str, group_id: str, variant: str, **kw: str) -> None:
        r = rng.random()
        base = dict(index=len(out), item_id=item_id, group_id=group_id, variant=variant, n_options=4, answer="A",
                    scoring="generate", prompt_hash="abc123", **kw)  # fmt: skip
        if r < 0.03:
            out.append(Sample(**base, prediction=None, correct=False, parse_status=None, error="timeout", error_type="api"))
        elif r < 0.06:
            out.append(Sample(**base, prediction=None, correct=False, parse_status="unparsed"))
        else:
            ok = r < 0.5
            out.append(Sample(**base, prediction="A" if ok else "C", correct=ok, parse_status="strict"))

    for g in range(n_groups):
        gid = f"grp|{g:03d}" if hostile and g == 0 else f"g{g:03d}"
        attr = "snow | $cold$\nwinter" if hostile and g == 0 else f"attribute {g}"
        kw = dict(source_benchmark=["aokvqa", "seed"][g % 2], spurious_attribute=attr, category="color")
        add(f"{gid}-a", gid, "anchor", **kw)
        for j in range(5):
            add(f"{gid}-s{j}", gid, "spurious", **kw)
        if counters and g % 3 == 0:
            add(f"{gid}-k0", gid, "counter", **kw)
    for c in range(4 * n_groups):
        add(f"c{c:04d}", f"c{c:04d}", "control", source_benchmark=["aokvqa", "seed"][c % 2])
    return out


def make_result(samples: list[Sample], *, alias: str = "llava-1.5", n_bootstrap: int = 200) -> RunResult:
    sc = score_samples(samples, n_bootstrap=n_bootstrap, seed=0)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.variant] = counts.get(s.variant, 0) + 1
    return RunResult(
        created="2026-01-01T00:00:00Z",
        benchmark=BenchmarkInfo(source="yanyiwei/SpuriVerse", split="train", revision="abc1234", fingerprint="f" * 64,
                                n_items=len(samples), n_groups=len(sc.per_group), counts=counts),  # fmt: skip
        model=ModelInfo(alias=alias, backend="hf", checkpoint="llava-hf/llava-1.5-7b-hf", dtype="float16"),
        generation=GenerationInfo(max_new_tokens=16),
        strategy="direct",
        scoring="generate",
        prompt_hash="abc123",
        parser_version="2",
        harness=HarnessInfo(version="0.1.0", git_commit="0123456789abcdef0123", dirty=True),
        packages={"torch": "2.13.0", "transformers": "4.57.0"},
        timings={"total_s": 123.4, "model_load_s": 10.0},
        failures=sc.failures,
        failures_count_as_wrong=sc.failures_as_wrong,
        bootstrap=sc.bootstrap,
        metrics=sc.metrics,
        breakdowns=sc.breakdowns,
        per_group=sc.per_group,
        samples_sha256="ab" * 32,
    )


def check_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_write_report_files_and_content(tmp_path: Path) -> None:
    result = make_result(make_samples(12))
    paths = write_report(result, tmp_path / "run")
    assert [p.name for p in paths] == ["report.md", "per_group_accuracy.png", "splits.png"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    for p in paths[1:]:
        w, h = check_png(p)
        assert w > 300 and h > 200
    md = paths[0].read_text(encoding="utf-8")
    assert md.startswith("# SpuriVerse report: llava-1.5 (`llava-hf/llava-1.5-7b-hf`)")
    assert "`yanyiwei/SpuriVerse`" in md and "`ffffffffffff`" in md
    overall = result.metrics["overall_acc"]
    assert f"| {100 * overall.value:.1f} % | [{100 * overall.ci_low:.1f}, {100 * overall.ci_high:.1f}] | {overall.n} |" in md
    for key in result.metrics:
        assert f"(`{key}`)" in md
    f = result.failures
    assert (f"failed {f.n_failed} ({100 * f.failed_rate:.1f} %), unparsed {f.n_unparsed} "
            f"({100 * f.unparsed_rate:.1f} %)") in md and "counted as wrong" in md  # fmt: skip
    assert "(per_group_accuracy.png)" in md and "(splits.png)" in md
    assert "### By source benchmark" in md and "| aokvqa |" in md
    assert "Worst 12 of 12 groups" in md and "<details>" not in md
    for fact in ("Strategy `direct`", "scoring `generate`", "Prompt hash `abc123`", "parser version `2`",
                 "commit `0123456789ab`", "dirty working tree", "total_s 123.4 s", "torch 2.13.0"):  # fmt: skip
        assert fact in md, fact
    gap = result.metrics["gap_control_anchor"].value
    assert f"{100 * gap:+.1f} pp" in md


def test_markdown_escapes_user_strings(tmp_path: Path) -> None:
    result = make_result(make_samples(30, hostile=True), alias="my|model")
    paths = write_report(result, tmp_path)  # "$" in labels must not break matplotlib's mathtext
    md = paths[0].read_text(encoding="utf-8")
    assert "my\\|model" in md
    assert "| grp\\|000 |" in md and "snow \\| $cold$ winter" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| grp")]
    assert table_rows and all(len(re.findall(r"(?<!\\)\|", line)) == 12 for line in table_rows)  # 11 cells
    assert "Worst 20 of 30 groups" in md and "<details><summary>All 30 groups</summary>" in md
    check_png(paths[1])


def test_report_without_counters_intervals_or_groups(tmp_path: Path) -> None:
    result = make_result(make_samples(50, counters=False), n_bootstrap=0)
    paths = write_report(result, tmp_path)
    md = paths[0].read_text(encoding="utf-8")
    assert "Counter accuracy" in md and "| — | — | 0 |" in md  # null metric, no interval
    for p in paths[1:]:
        check_png(p)
    empty = make_result([], n_bootstrap=0)
    paths = write_report(empty, tmp_path / "empty")
    assert "## Per group" in render_markdown(empty)
    for p in paths[1:]:
        check_png(p)


def test_failures_excluded_wording() -> None:
    result = make_result(make_samples(5)).model_copy(update={"failures_count_as_wrong": False})
    assert "excluded from accuracy denominators" in render_markdown(result)


def test_pngs_are_deterministic(tmp_path: Path) -> None:
    result = make_result(make_samples(8))
    a = write_report(result, tmp_path / "a")
    b = write_report(result, tmp_path / "b")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), x.name


@pytest.mark.parametrize("n_groups", [3, 124])
def test_per_group_plot_sizes(tmp_path: Path, n_groups: int) -> None:
    result = make_result(make_samples(n_groups), n_bootstrap=50)
    paths = write_report(result, tmp_path)
    check_png(paths[1])
