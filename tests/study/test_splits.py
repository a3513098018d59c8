"""The study's design as pure functions of the item metadata and the seed: splits over groups, the
non-spurious and control samples, and the fixed-size ablation."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers.study_data import study_rows

from spuriverse.study.splits import (
    ItemMeta,
    StudyDataError,
    ablation_items,
    anchor_counts,
    inventory,
    resolve_points,
    seed_samples,
    split_groups,
)


def _metas(rows: list[dict]) -> list[ItemMeta]:
    return [ItemMeta(r["item_id"], r["group_id"], r["variant"], r["source_benchmark"], r["source_id"]) for r in rows]


@pytest.mark.parametrize("n, sizes", [(124, (86, 13, 25)), (36, (24, 4, 8)), (10, (7, 1, 2))])
def test_splits_are_disjoint_over_groups_and_reproducible_from_the_seed(n, sizes):
    ids = [f"corr-{i:03d}" for i in range(n)]
    split = split_groups(ids, 42)
    assert (len(split["train"]), len(split["validation"]), len(split["test"])) == sizes  # 124: the reference's
    parts = [set(v) for v in split.values()]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == n  # a partition of the groups
    assert split_groups(list(reversed(ids)), 42) == split  # the seed alone decides, not the input order
    assert split_groups(ids, 123) != split


def test_non_spurious_sampling_matches_per_source_counts_and_excludes_train_and_test_items():
    rows = study_rows(n_controls=20)
    leaks = [  # a control asking a correlation's own source question, and one inside a correlation's group
        {**rows[-1], "item_id": "leak/question", "group_id": "leak/question", "source_benchmark": "srcA",
         "source_id": "q0"},
        {**rows[-1], "item_id": "leak/group", "group_id": "g01", "source_benchmark": "srcB", "source_id": "z"},
    ]
    items = _metas(rows + leaks)
    inv = inventory(items)
    meta = {it.item_id: it for it in items}
    s = seed_samples(inv, 5, control_scale=2, non_spurious_scale=2)

    def per_source(ids: list[str]) -> Counter:
        return Counter(meta[i].source for i in ids)

    for ids, groups, scale in ((s.non_spurious, s.split["train"], 2), (s.val_non_spurious, s.split["validation"], 2),
                               (s.heldout_controls, s.split["test"], 2)):
        assert per_source(ids) == Counter({k: scale * v for k, v in anchor_counts(inv, groups).items()})
    used = s.non_spurious + s.val_non_spurious + s.heldout_controls
    assert len(set(used)) == len(used)  # held-out controls never train, validation never trains
    studied = set(s.split["train"]) | set(s.split["test"])
    questions = {(meta[i].source, meta[i].source_id) for g in studied for i in
                 inv.groups[g].anchors + inv.groups[g].spurious + inv.groups[g].counter}
    for i in used:
        assert meta[i].variant == "control" and meta[i].group_id not in inv.groups
        assert (meta[i].source, meta[i].source_id) not in questions
    assert "leak/question" not in sum(inv.pool.values(), []) and "leak/group" not in sum(inv.pool.values(), [])
    again = seed_samples(inventory(list(reversed(items))), 5, control_scale=2, non_spurious_scale=2)
    assert (again.non_spurious, again.heldout_controls) == (s.non_spurious, s.heldout_controls)


@pytest.mark.parametrize("kind", ["anchor", "group"])
def test_ablation_keeps_the_training_set_size_fixed(kind):
    metas = _metas(study_rows(n_controls=20))
    source = {it.item_id: it.source for it in metas}
    inv = inventory(metas)
    s = seed_samples(inv, 7, control_scale=2, non_spurious_scale=1)
    pool = s.ablation_order
    assert sorted(pool) == sorted(s.split["train"] + s.split["validation"])
    sizes, previous = set(), []
    for n in range(len(pool) + 1):
        kept, items = ablation_items(inv, s, n, kind)
        sizes.add(sum(inv.groups[g].size(kind) for g in kept) + len(items))
        assert set(previous) <= set(kept) and len(kept) == n  # nested: point n keeps point n-1's groups
        replaced = [g for g in pool if g not in kept]
        assert Counter(source[i] for i in items) == anchor_counts(inv, replaced, kind)  # per source
        assert not set(items) & set(s.heldout_controls)
        previous = kept
    assert len(sizes) == 1  # the same number of training examples at every point


def test_bad_designs_are_refused_with_the_reason():
    with pytest.raises(StudyDataError, match="9 correlation group.*at least 10"):
        inventory(_metas(study_rows(n_groups=9)))
    rows = [r for r in study_rows() if not (r["group_id"] == "g04" and r["variant"] == "spurious")]
    with pytest.raises(StudyDataError, match="1 group.*no spurious images: g04"):
        inventory(_metas(rows))
    with pytest.raises(StudyDataError, match="'12' = 12 correlations, but a seed has only 9"):
        resolve_points(["0", "12"], 9)
    assert resolve_points(["0", "50%", "100%"], 9) == [0, 4, 9]
    with pytest.raises(StudyDataError, match="not enough control items of source 'src"):
        seed_samples(inventory(_metas(study_rows(n_controls=3))), 1, control_scale=10, non_spurious_scale=1)
