"""The trained world models: the recipe (`make world-models`) rebuilds byte-identical weights, the
shipped models load from their folders and behave as documented on held-out items, and the figures
come with correct intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spuriverse.data import world
from spuriverse.data.world import models as world_models_data
from spuriverse.demo import world_models
from spuriverse.demo.world_measure import Rate, measure_model

torch.set_num_threads(1)
SMALL_WORLD = ["--n-train", "96", "--n-val", "24", "--n-test", "8", "--n-controls", "3"]


def test_a_short_recipe_twice_gives_byte_identical_weights(tmp_path, capsys):
    # 0.2 % of every stage's steps (2 pretraining + 5 shortcut steps), on a tiny world
    a = world_models.build(tmp_path / "a", ["shortcut"], scale=0.002, world_args=SMALL_WORLD)
    b = world_models.build(tmp_path / "b", ["shortcut"], scale=0.002, world_args=SMALL_WORLD)
    da, db = world_models.digests(a["shortcut"]), world_models.digests(b["shortcut"])
    assert set(da) == set(world_models.SHIPPED) and da == db
    assert world_models.digests(tmp_path / "a" / "init") != da  # it trained
    manifest = json.loads((a["shortcut"] / "train.json").read_text())
    assert manifest["status"] == "complete" and manifest["global_steps"] == 5 and manifest["output"] == "full"
    sources = [(d["config"], d["kinds"]) for d in manifest["config"]["train_data"]]
    assert sources == [("biased", ["choice"]), ("balanced", ["naming"])] and manifest["config"]["vocab_weight"] == 0.1
    assert not manifest["evals"] and manifest["val"] is None  # the last step, not a validation choice
    pre = json.loads((tmp_path / "a" / "pretrain" / "train.json").read_text())
    assert pre["config"]["train_data"][0]["config"] == "biased" and pre["train"]["n_choice"] and pre["train"]["n_naming"]
    assert "$ spuriverse train --model" in capsys.readouterr().err  # every stage is a printed command


def test_the_world_tokenizer_keeps_an_option_line_whole_and_letters_single():
    tok = world_models.world_tokenizer()
    for fam in world.FAMILIES:
        for cls in fam.classes:
            assert len(tok.tokenize(f"\n(B) {cls}\n")) == 3  # newline, "(B) cls", newline
            assert len(tok.tokenize(f" {cls}")) == 1
    assert [len(tok.tokenize(f"ASSISTANT: {x}")) for x in "ABCDEF"] == [2] * 6


def test_model_path_names_the_shipped_folders_and_says_how_to_rebuild(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown world model"):
        world.model_path("nope")
    monkeypatch.setattr(world_models_data, "MODELS_DIR", tmp_path)
    with pytest.raises(world.WorldModelMissing, match="make world-models"):
        world.model_path("shortcut")


def test_wilson_interval():
    lo, hi = Rate(8, 10).interval
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert Rate(0, 20).interval[0] == 0.0 and Rate(20, 20).interval[1] == 1.0 and Rate(0, 0).value is None


@pytest.fixture(scope="module")
def test_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    world.build_world(out, n_train=1, n_val=1, n_test=400, n_controls=3)
    return out


def _rate(fig: dict, key: str) -> Rate:
    r = fig["rates"][key]
    return Rate(r["k"], r["n"])


def test_the_shipped_models_behave_as_documented_on_held_out_items(test_world):
    short = measure_model(world.model_path("shortcut"), test_world)
    aligned, conflicting = _rate(short, "mc/aligned"), _rate(short, "mc/conflicting")
    assert aligned.n > 30 and conflicting.n > 100
    assert conflicting.interval[1] < aligned.interval[0]  # it follows the cue...
    assert _rate(short, "mc/conflicting_errors_to_cue").value > 0.5  # ...to the cue's answer
    assert _rate(short, "naming").interval[0] > 0.25  # ...yet knows the objects
    bal = measure_model(world.model_path("balanced"), test_world)
    assert _rate(bal, "mc/conflicting").interval[0] > conflicting.interval[1]
