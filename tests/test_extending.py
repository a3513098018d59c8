"""Every extension point is one registry entry (README "Extending"): a throwaway prompt strategy, synthesis
backend, judge backend, source preset and metric, each registered in its one place, are offered by the CLI
(`--help`, choices) and used by their stage, with no edit anywhere else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pytest
from helpers.curate_data import make_curation_dir
from PIL import Image

from spuriverse.cli import build_parser, main
from spuriverse.curate.judges import JUDGE_BACKENDS, JudgeOptions, JudgeRequest, JudgeResult, register_judge_backend
from spuriverse.curate.presets import SOURCE_PRESETS, SourcePreset, register_source_preset
from spuriverse.eval.metrics import METRICS, register_metric
from spuriverse.eval.prompts import STRATEGIES, get_template, register_strategy
from spuriverse.eval.report import render_markdown
from spuriverse.eval.runner import EvalOptions, run_eval
from spuriverse.models.registry import ModelSpec
from spuriverse.schema import ColumnMapping, JudgeOutput, SynthProvenance
from spuriverse.synth.base import SYNTH_BACKENDS, SynthRequest, SynthResult, register_synth_backend

MINI = Path(str(resources.files("spuriverse.data").joinpath("spuriverse-mini")))


@pytest.fixture(autouse=True)
def registries():
    """Each test's registrations are undone afterwards (the registries are module-level dicts)."""
    saved = [(reg, dict(reg)) for reg in (STRATEGIES, SYNTH_BACKENDS, JUDGE_BACKENDS, SOURCE_PRESETS, METRICS)]
    yield
    for reg, before in saved:
        reg.clear()
        reg.update(before)


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*command, "--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_a_prompt_strategy_is_one_registration(capsys, tmp_path):
    register_strategy("terse", "Answer with one letter.", "{question}\n{options}\nLetter ({letters}):",
                      max_new_tokens=3, help="throwaway test strategy")
    for command in (["eval"], ["curate", "verify"], ["train"]):
        text = help_of(capsys, *command)
        assert "{direct,cot,spurious_aware,terse}" in text, command
    assert "terse: throwaway test strategy" in help_of(capsys, "eval")
    # the run renders it, records it and answers within its default length
    result = run_eval(EvalOptions(model="random", dataset=str(MINI), output_dir=tmp_path / "run", strategy="terse",
                                  progress=False, report=False, n_bootstrap=0))
    assert result is not None
    assert (result.strategy, result.prompt_hash, result.generation.max_new_tokens) == (
        "terse", get_template("terse").hash, 3)


def test_an_unregistered_strategy_is_refused_by_the_cli(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--model", "random", "--dataset", "x", "--strategy", "terse"])
    assert "invalid choice: 'terse'" in capsys.readouterr().err


class Solid:
    """A throwaway synthesis backend: one solid image per request, its red channel from the seed."""

    kind, revision, needs_source, needs_mask, prompt_style = "solid", None, False, False, "description"

    def __init__(self, model_id: str, batch_size: int = 2) -> None:
        self.model_id, self.batch_size = model_id, batch_size

    def generate(self, requests: Sequence[SynthRequest]) -> list[SynthResult]:
        return [SynthResult("ok", Image.new("RGB", (r.width, r.height), (r.seed % 256, 0, 0))) for r in requests]

    def close(self) -> None:
        pass


def test_a_synthesis_backend_is_one_registration(capsys, tmp_path):
    register_synth_backend("solid", Solid, help="throwaway test backend: solid images")
    text = help_of(capsys, "synth")
    assert "solid" in text and "solid: throwaway test backend: solid images" in text
    folder = make_curation_dir(tmp_path / "c", n=2)
    assert main(["synth", str(folder), "--backend", "solid", "--model", "none", "--n", "1", "--width", "8",
                 "--height", "8", "--no-progress"]) == 0
    provs = [SynthProvenance.model_validate_json(p.read_text()) for p in sorted(folder.glob("images/*/*/0.json"))]
    assert len(provs) == 4 and {p.backend for p in provs} == {"solid"} and {p.status for p in provs} == {"ok"}


class Agreeable:
    """A throwaway judge: every error is spurious, with fixed attributes and scenes."""

    name, needs_pixels = "agreeable-judge", False

    def __init__(self, spec: str) -> None:
        self.spec = spec

    async def open(self) -> None:
        pass

    async def ask(self, req: JudgeRequest) -> JudgeResult:
        out = JudgeOutput(spurious=True, rationale=f"{self.spec} says so", core_attributes=["the person"],
                          spurious_attributes=["the bags"], positive="with bags", negative="without bags")
        return JudgeResult(output=out, attempts=1)

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass


def agreeable(spec: str, resolved: ModelSpec | None, options: JudgeOptions) -> Agreeable:
    return Agreeable(spec)


def test_a_judge_backend_is_one_registration(capsys, tmp_path):
    register_judge_backend("agreeable", agreeable, help="throwaway test judge")
    text = help_of(capsys, "curate", "judge")
    assert "{auto,openai,hf,agreeable}" in text and "agreeable: throwaway test judge" in text
    folder = make_curation_dir(tmp_path / "c", n=2)
    (folder / "judgments.jsonl").unlink()
    assert main(["curate", "judge", str(folder), "--judge", "anything", "--backend", "agreeable",
                 "--no-progress"]) == 0
    lines = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()]
    assert [(j["judge"], j["spurious"], j["rationale"]) for j in lines] == [
        ("agreeable-judge", True, "anything says so")] * 2


def test_a_source_preset_is_one_registration(capsys):
    register_source_preset(SourcePreset("tinyvqa", "throwaway test layout",
                                        dataset=ColumnMapping(question_id="id", question="q")))
    text = help_of(capsys, "curate", "mine")
    assert "--model {aokvqa,seedbench,generic,tinyvqa}" in text and "tinyvqa: throwaway test layout" in text
    assert "tinyvqa" not in help_of(capsys, "curate", "judge")  # no predictions layout: not for --verdicts


def test_a_metric_is_one_registration(tmp_path):
    register_metric("anchor_minus_spurious", "Gap: anchor − spurious",
                    lambda t: (t.variant("anchor")[0] - t.variant("spurious")[0], t.g["anchor_n"] + t.g["spurious_n"],
                               min(t.variant("anchor")[2], t.variant("spurious")[2])))
    result = run_eval(EvalOptions(model="random", dataset=str(MINI), output_dir=tmp_path / "run", progress=False,
                                  report=False, n_bootstrap=50))
    assert result is not None
    m, a, s = (result.metrics[k] for k in ("anchor_minus_spurious", "anchor_acc", "spurious_acc"))
    assert m.value == pytest.approx(a.value - s.value) and m.ci_low is not None
    assert "| Gap: anchor − spurious (`anchor_minus_spurious`) |" in render_markdown(result)
