"""The model registry: the paper's models as aliases, every alias resolving, the paper-settings preset,
`spuriverse models`, and quantized loading refused on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spuriverse.cli import main
from spuriverse.models.presets import PresetError, generation_preset, preset_families
from spuriverse.models.providers import providers
from spuriverse.models.registry import TESTED_ON_TINY, other_names, registry, resolve_model, scoring_modes

# The paper's 15 models and its code's 3 extras (see the protocol note): alias -> (provider, model called).
PAPER = {
    "gpt-4o": ("openai", "gpt-4o-2024-08-06"),
    "gpt-4o-mini": ("openai", "gpt-4o-mini-2024-07-18"),
    "o3": ("openai-reasoning", "o3"),
    "o4-mini": ("openai-reasoning", "o4-mini"),
    "gemini-1.5-pro": ("gemini", "gemini-1.5-pro"),
    "gemini-2.0-flash": ("gemini", "gemini-2.0-flash"),
    "claude-3.7-sonnet": ("anthropic", "claude-3-7-sonnet-20250219"),
    "qwen-vl-max": ("dashscope", "qwen-vl-max"),
    "qwen-vl-plus": ("dashscope", "qwen-vl-plus"),
    "qwen2.5-vl-7b": (None, "Qwen/Qwen2.5-VL-7B-Instruct"),
    "qwen2.5-vl-32b": (None, "Qwen/Qwen2.5-VL-32B-Instruct"),
    "llama-3.2-11b-vision": (None, "meta-llama/Llama-3.2-11B-Vision-Instruct"),
    "llama-3.2-90b-vision": (None, "meta-llama/Llama-3.2-90B-Vision-Instruct"),
    "llava-1.5": (None, "llava-hf/llava-1.5-7b-hf"),
    "llava-1.6": (None, "llava-hf/llava-v1.6-mistral-7b-hf"),
    # extras
    "gemini-2.5-pro": ("gemini", "gemini-2.5-pro-preview-03-25"),
    "claude-3-opus": ("anthropic", "claude-3-opus-20240229"),
    "qwen2.5-vl-72b": (None, "Qwen/Qwen2.5-VL-72B-Instruct"),
}
# The paper's own spellings of its local models.
PAPER_NAMES = {"qwen-2.5-7b": "qwen2.5-vl-7b", "qwen-2.5-32b": "qwen2.5-vl-32b", "qwen-2.5-72b": "qwen2.5-vl-72b",
               "llama-3.2-11b": "llama-3.2-11b-vision", "llama-3.2-90b": "llama-3.2-90b-vision"}
# Architectures built as tiny models by tests/models/test_hf.py and test_new_archs.py.
BUILT_TINY = {"llava", "llava_next", "paligemma", "idefics3", "qwen2_5_vl", "qwen3_vl", "mllama", "gemma3",
              "llava_onevision"}


@pytest.mark.parametrize("alias", sorted(PAPER))
def test_paper_models_are_aliases_with_exact_ids(alias):
    spec = resolve_model(alias)
    assert (spec.provider, spec.checkpoint) == PAPER[alias]
    assert spec.backend == ("hf" if PAPER[alias][0] is None else "openai")


def test_every_alias_and_name_resolves():
    reg = registry()
    for alias, spec in reg.items():
        resolved = resolve_model(alias)
        assert resolved.alias == alias and resolved.checkpoint == spec.checkpoint
        if spec.backend == "openai":
            assert spec.provider in providers()
        if spec.backend == "hf":
            assert spec.architecture, f"{alias}: set architecture in registry.toml"
    assert other_names() == PAPER_NAMES
    for name, alias in PAPER_NAMES.items():
        assert resolve_model(name).alias == alias
    for name in providers():
        assert resolve_model(f"{name}:some-model").provider == name
    with pytest.raises(ValueError, match="needs a model name"):
        resolve_model("gemini:")


def test_open_family_flagships_are_tested_architectures():
    flagships = {"qwen3-vl-8b": "qwen3_vl", "gemma-3-27b": "gemma3", "llava-onevision-7b": "llava_onevision",
                 "llama-3.2-11b-vision": "mllama", "qwen2.5-vl-7b": "qwen2_5_vl"}
    for alias, arch in flagships.items():
        assert registry()[alias].architecture == arch
    assert TESTED_ON_TINY == BUILT_TINY


def test_paper_preset_covers_the_paper_models():
    covered = {a for models in preset_families("paper").values() for a in models}
    assert covered == set(PAPER)
    gemini = generation_preset("paper", "gemini-2.0-flash", seed=332)
    assert gemini.backend_options == {"temperature": 0.7, "top_p": 0.9, "sample_seed": 332}
    assert (gemini.max_new_tokens, gemini.scoring, gemini.seeds) == (300, "generate", (42, 332, 1981, 213, 2901))
    o3 = generation_preset("paper", "o3", seed=42)
    assert o3.backend_options == {"reasoning_effort": "medium"} and o3.max_new_tokens == 3000  # no seed
    local = generation_preset("paper", "qwen2.5-vl-7b", seed=1)
    assert local.backend_options == {"temperature": 0.2, "min_p": 0.1, "sample_seed": 1}
    assert generation_preset("paper", "llava-1.6", seed=1).max_new_tokens == 100
    assert generation_preset("paper", "gpt-4o", seed=1).backend_options["temperature"] == "default"
    with pytest.raises(PresetError, match="no settings for model 'smolvlm'"):
        generation_preset("paper", "smolvlm", seed=0)
    with pytest.raises(PresetError, match="unknown generation preset"):
        generation_preset("nope", "gpt-4o", seed=0)


def test_models_command_shows_provider_scoring_and_testing(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["o3"]["provider"] == "openai-reasoning" and rows["o3"]["scoring"] == ["generate"]
    assert rows["gpt-4o"]["scoring"] == ["logprob", "generate"]
    assert rows["qwen3-vl-8b"]["tested_here"] == "tiny model" and rows["qwen3-vl-8b"]["provider"] is None
    assert rows["claude-3.7-sonnet"]["tested_here"] == "fake endpoint"
    assert all(r["scoring"] == list(scoring_modes(registry()[a])) for a, r in rows.items())
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header[:5] == ["alias", "backend", "provider", "checkpoint", "scoring"]
    assert any(line.split()[:3] == ["gemini-2.0-flash", "openai", "gemini"] for line in text.splitlines())


def test_quantization_is_refused_on_cpu(tmp_path):
    from spuriverse.models.hf import HFBackend

    for q in ("4bit", "8bit"):
        with pytest.raises(ValueError, match=f"--quantization {q} needs a CUDA GPU"):
            HFBackend(str(tmp_path), quantization=q, device="cpu")
    with pytest.raises(ValueError, match="unknown quantization"):
        HFBackend(str(tmp_path), quantization="3bit", device="cpu")


def test_cli_refuses_quantization_on_cpu(tiny_llava, small_benchmark, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_llava), "--dataset", str(small_benchmark), "--quantization", "4bit",
                 "--device", "cpu", "--output-dir", str(tmp_path / "q"), "--no-progress"])
    assert code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "q" / "samples.jsonl").exists()
    code = main(["eval", "--model", "random", "--dataset", str(small_benchmark), "--quantization", "8bit",
                 "--output-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and "applies to local (hf) models" in capsys.readouterr().err


def test_local_sampling_is_seeded_and_recorded(tiny_llava):
    """A preset's sampling on a local model: recorded, and reproducible for one seed."""
    from spuriverse.models.hf import HFBackend
    from test_new_archs import make_requests

    reqs = make_requests(3)
    texts = []
    for _ in range(2):
        be = HFBackend(str(tiny_llava), temperature=1.0, min_p=0.1, sample_seed=7, batch_size=3)
        texts.append([g.text for _, g in sorted(be.generate(reqs), key=lambda x: x[0])])
    assert texts[0] == texts[1]
    other = HFBackend(str(tiny_llava), temperature=1.0, min_p=0.1, sample_seed=8, batch_size=3)
    assert [g.text for _, g in sorted(other.generate(reqs), key=lambda x: x[0])] != texts[0]
    assert be.generation == {"do_sample": True, "temperature": 1.0, "top_p": None, "min_p": 0.1, "seed": 7}
    greedy = HFBackend(str(tiny_llava))
    assert greedy.generation["do_sample"] is False and greedy.generation["seed"] is None


def test_run_config_of_older_runs_still_matches(tmp_path):
    """run.json files written before preset / quantization existed validate and compare equal to a
    run with neither (resume keeps working); the exported schema lists both fields."""
    from spuriverse.schema import RunConfig

    old = {"model": "gpt-4o", "backend": "openai", "checkpoint": "gpt-4o-2024-08-06", "dataset": "d",
           "fingerprint": "sha256:x", "strategy": "direct", "scoring": "generate", "prompt_hash": "h",
           "parser_version": "1", "max_new_tokens": 16}
    assert RunConfig.model_validate(old) == RunConfig(**old, preset=None, quantization=None)
    assert RunConfig.model_validate(old) != RunConfig(**old, preset="paper")
    schema = json.loads((Path(__file__).resolve().parents[2] / "spuriverse/schemas/run_config.schema.json").read_text())
    assert {"preset", "quantization"} <= set(schema["properties"])


def test_quantization_config_for_a_gpu(monkeypatch):
    """On a CUDA device: transformers' real BitsAndBytesConfig (NF4 + double quantization for 4-bit), and a
    clear error naming the extra when bitsandbytes is not installed (it is not here: no GPU)."""
    import sys
    import types

    import torch

    from spuriverse.models.hf import quantization_config

    cuda = torch.device("cuda")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails, as where it is not installed
    with pytest.raises(ValueError, match=r"spuriverse\[quant\]"):
        quantization_config("4bit", cuda, torch.bfloat16)
    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))  # only the import check
    four = quantization_config("4bit", cuda, torch.bfloat16)
    assert (four.load_in_4bit, four.bnb_4bit_quant_type, four.bnb_4bit_use_double_quant) == (True, "nf4", True)
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("8bit", cuda, torch.float16).load_in_8bit
