"""spuriverse-world: determinism, masks that cover exactly what they claim, p_align, the benchmark's long
layout (loads, keeps the extra columns, `spuriverse eval` runs on it)."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spuriverse.cli import main as cli_main
from spuriverse.data import load_benchmark
from spuriverse.data import world
from spuriverse.data.world import CORRELATIONS, CUE_KINDS, FAMILIES, N_CLASSES, Cue, render

SMALL = {"n_train": 48, "n_val": 12, "n_controls": 6, "n_test": 10}
ALL_CUES = [None] + [Cue(k, v) for k in CUE_KINDS for v in range(N_CLASSES)]


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    world.build_world(out, p_align=0.9, seed=3, **SMALL)
    return out


@pytest.fixture(scope="module")
def bench_rows() -> list[dict]:
    return list(world.benchmark_rows(seed=3, n_controls=6))


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(built, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    world.build_world(again, p_align=0.9, seed=3, **SMALL)
    world.build_world(other, p_align=0.9, seed=4, **SMALL)
    files = _files(built)
    assert {"train/README.md", "benchmark/README.md", "benchmark/data/test-00000.parquet",
            "train/data/biased/train-00000.parquet", "train/data/balanced/validation-00000.parquet",
            "train/data/biased/test-00000.parquet", "train/data/balanced/test-00000.parquet"} <= set(files)
    assert _files(again) == files
    theirs = _files(other)
    assert theirs.keys() == files.keys()
    assert all(theirs[f] != files[f] for f in files if f.endswith(".parquet"))


def test_the_world_has_the_promised_size():
    assert len(FAMILIES) >= 3 and len(CUE_KINDS) >= 3
    assert len({(c.family, c.kind, c.value) for c in CORRELATIONS}) == len(CORRELATIONS) >= 24
    for fam in FAMILIES:
        for kind in CUE_KINDS:  # within a (family, kind), the cue values suggest every class once
            assert sorted(world.suggested_class(fam.name, kind, v) for v in range(N_CLASSES)) == list(range(N_CLASSES))


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_changing_the_class_changes_only_core_mask_pixels(family):
    for scene_seed, cue in itertools.product(range(4), ALL_CUES[::3]):
        scenes = [render(family, c, cue, scene_seed) for c in range(N_CLASSES)]
        for a, b in itertools.combinations(range(N_CLASSES), 2):
            sa, sb = scenes[a], scenes[b]
            core = sa.core_mask | sb.core_mask
            assert sa.core_mask.any() and not (sa.core_mask & sa.cue_mask).any()
            assert np.array_equal(sa.image[~core], sb.image[~core]), (family, scene_seed, cue, a, b)
            assert (sa.image[core] != sb.image[core]).any(), (family, scene_seed, cue, a, b)
            assert np.array_equal(sa.cue_mask, sb.cue_mask) or cue is not None and cue.kind == "background"


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_changing_the_cue_changes_only_cue_mask_pixels(family):
    for scene_seed, cls in itertools.product(range(3), range(N_CLASSES)):
        scenes = [render(family, cls, cue, scene_seed) for cue in ALL_CUES]
        assert not scenes[0].cue_mask.any()  # no cue: an empty cue mask
        for (ca, sa), (cb, sb) in itertools.combinations(zip(ALL_CUES, scenes), 2):
            cue = sa.cue_mask | sb.cue_mask
            assert np.array_equal(sa.image[~cue], sb.image[~cue]), (family, scene_seed, ca, cb)
            assert (sa.image[cue] != sb.image[cue]).any(), (family, scene_seed, ca, cb)
            assert np.array_equal(sa.core_mask, sb.core_mask)


def test_written_images_and_masks_decode_to_the_rendered_scene(bench_rows):
    for row in bench_rows[::7]:
        cue = None if row["cue_kind"] == "none" else Cue(
            row["cue_kind"], [v.name for v in CUE_KINDS[row["cue_kind"]]].index(row["cue_value"]))
        fam = world.FAMILY_BY_NAME[row["family"]]
        scene = render(fam.name, fam.classes.index(row["answer_class"]), cue, row["scene_seed"])
        image, core, cue_m = (_decode(row[c]) for c in ("image", "core_mask", "cue_mask"))
        assert image.shape == (world.SIZE, world.SIZE, 3) and np.array_equal(image, scene.image)
        assert Image.open(io.BytesIO(row["core_mask"])).mode == "L" and set(np.unique(core)) <= {0, 255}
        assert np.array_equal(core == 255, scene.core_mask) and np.array_equal(cue_m == 255, scene.cue_mask)


@pytest.mark.parametrize("p_align", [0.95, world.CHANCE])
def test_p_align_and_cue_free_rows_are_honoured_within_binomial_intervals(p_align):
    n = 2000
    rows = list(world.training_rows("biased/train", n, p_align, seed=1, naming_frac=0.5, no_cue_frac=0.2))
    cued = [r for r in rows if r["cue_kind"] != "none"]
    assert abs(len(cued) - 0.8 * n) <= 4.5 * math.sqrt(n * 0.16)
    aligned = sum(r["aligned"] for r in cued)
    sd = math.sqrt(len(cued) * p_align * (1 - p_align))
    assert abs(aligned - len(cued) * p_align) <= 4.5 * sd, (aligned, len(cued) * p_align)
    naming = sum(r["kind"] == "naming" for r in rows)
    assert abs(naming - n / 2) <= 4.5 * math.sqrt(n / 4)
    for r in rows:
        assert r["options"][ord(r["answer"]) - ord("A")] == r["answer_class"]
        assert r["target"] == (r["answer_class"] if r["kind"] == "naming" else "")
        if r["cue_kind"] == "none":  # a cue-free row: no cue pixels, its family's "none" group
            assert r["variant"] == "counter" and not r["aligned"] and r["cue_class"] == r["correlation_id"] == ""
            assert r["group_id"] == f"{r['family']}/none" and not _decode(r["cue_mask"]).any()
            continue
        assert r["cue_kind"] in CUE_KINDS and (r["cue_class"] == r["answer_class"]) == r["aligned"]
        assert r["variant"] == ("control" if r["aligned"] else "spurious")
        assert r["correlation_id"] == r["group_id"] == f"{r['family']}/{r['cue_kind']}/{r['cue_value']}"
    if p_align == world.CHANCE:  # balanced: every class sees every cue value
        assert len({(r["answer_class"], r["correlation_id"]) for r in cued}) == len(FAMILIES) * len(CUE_KINDS) * N_CLASSES ** 2


def test_cue_free_rows_are_drawn_last_so_the_other_rows_do_not_change():
    with_free = list(world.training_rows("balanced/train", 60, world.CHANCE, seed=2, no_cue_frac=0.3))
    without = list(world.training_rows("balanced/train", 60, world.CHANCE, seed=2, no_cue_frac=0.0))
    same = [(a, b) for a, b in zip(with_free, without) if a["cue_kind"] != "none"]
    assert 20 < len(same) < 60 and all(a == b for a, b in same)


def test_benchmark_groups_follow_the_long_layout(bench_rows):
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in bench_rows:
        if r["variant"] != "control":
            groups[r["group_id"]].append(r)
    assert set(groups) == {c.cid for c in CORRELATIONS}
    for gid, rows in groups.items():
        assert Counter(r["variant"] for r in rows) == {"anchor": 1, "spurious": world.N_SPURIOUS, "counter": world.N_COUNTER}
        assert len({(r["question"], tuple(r["options"]), r["answer"]) for r in rows}) == 1
        assert len({r["scene_seed"] for r in rows}) == len(rows)  # varied scenes
        for r in rows:
            assert r["correlation_id"] == gid
            if r["variant"] == "counter":
                assert r["cue_kind"] == "none" and not _decode(r["cue_mask"]).any()
            else:  # the cue of a wrong answer
                assert r["cue_class"] != r["answer_class"] and f"{r['family']}/{r['cue_kind']}/{r['cue_value']}" == gid
                assert r["cue_class"] in r["options"]
    controls = [r for r in bench_rows if r["variant"] == "control"]
    assert len(controls) == 6 and all(r["cue_kind"] == "none" for r in controls)
    assert len({r["group_id"] for r in controls}) == 6


def test_load_benchmark_keeps_the_extra_columns_undecoded(built):
    bench = load_benchmark(str(built / "benchmark"))
    assert bench.info().n_groups == len(CORRELATIONS) and bench.info().counts["control"] == 6
    assert bench.extra_columns == list(world.EXTRA_COLUMNS)
    loaded = list(bench.iter_items())
    assert all(li.image is not None and li.image.size == (world.SIZE, world.SIZE) for li in loaded)
    first = loaded[0]
    assert first.extras["correlation_id"] == first.item.group_id and first.extras["kind"] == "mc"
    for col in world.MASK_COLUMNS:  # masks come as encoded cells, never decoded by the loader
        assert _decode(first.extras[col]["bytes"]).shape == (world.SIZE, world.SIZE)
    train = load_benchmark(str(built / "train"), config="balanced", split="train")
    assert len(train) == SMALL["n_train"] and set(train.extra_columns) == set(world.EXTRA_COLUMNS)
    assert {li.extras["split"] for li in train.iter_items()} == {"balanced/train"}


def test_spuriverse_eval_runs_on_the_benchmark(built, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["eval", "--model", "random", "--dataset", str(built / "benchmark"), "--output-dir", str(out),
                     "--no-progress", "--bootstrap", "50"]) == 0
    capsys.readouterr()
    from spuriverse.schema import RunResult

    res = RunResult.model_validate_json((out / "results.json").read_text())
    assert res.benchmark.n_items == len(CORRELATIONS) * 13 + 6 and res.failures.n_failed == 0
    assert res.failures.n_missing == 0 and len(res.per_group) == len(CORRELATIONS)


def test_cli_writes_both_folders_and_rejects_bad_arguments(tmp_path, capsys):
    assert world.main(["--out", str(tmp_path / "w"), "--n-train", "8", "--n-val", "4", "--n-controls", "3",
                       "--p-align", "1.0", "--no-cue-frac", "0"]) == 0
    assert "items/s" in capsys.readouterr().out
    rows = load_benchmark(str(tmp_path / "w" / "train"), config="biased", split="train")
    assert [li.extras["aligned"] for li in rows.iter_items()] == [True] * 8
    for bad in (["--p-align", "1.5"], ["--n-train", "0"], ["--naming-frac", "-0.1"], ["--no-cue-frac", "2"]):
        with pytest.raises(SystemExit):
            world.main(["--out", str(tmp_path / "x"), *bad])
    assert not (tmp_path / "x").exists()


def test_the_benchmark_alone_has_the_bytes_of_a_whole_build(built, tmp_path):
    alone = tmp_path / "bench"
    assert world.build_benchmark(alone, seed=3, n_controls=6) == len(CORRELATIONS) * 13 + 6
    assert _files(alone) == {k.split("/", 1)[1]: v for k, v in _files(built).items() if k.startswith("benchmark/")}


def test_held_out_test_splits_and_naming_rows_load_for_training(built):
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import load_examples

    for config in ("biased", "balanced"):
        test = load_benchmark(str(built / "train"), config=config, split="test")
        assert len(test) == SMALL["n_test"] and {li.extras["split"] for li in test.iter_items()} == {f"{config}/test"}
    rows = list(world.training_rows("balanced/train", SMALL["n_train"], world.CHANCE, seed=3))
    examples = load_examples([TrainDataSpec(source=str(built / "train"), config="balanced")])
    assert [ex.item_id for ex in examples] == [r["item_id"] for r in rows]
    for ex, r in zip(examples, rows):  # a naming row trains on its class word, a choice row on its letter
        assert ex.kind == ("naming" if r["kind"] == "naming" else "choice")
        assert ex.answer_text == r["answer_class"]
    naming = load_examples([TrainDataSpec(source=str(built / "train"), config="balanced", kinds=["naming"])])
    assert naming and len(naming) == sum(r["kind"] == "naming" for r in rows)
