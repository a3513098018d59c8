"""Splits over correlations (groups), and the samples drawn per seed: pure functions of the
benchmark's item metadata and the seed.

- **Groups**: every group with an anchor is a correlation; it needs at least one spurious item.
  Per seed a seeded permutation of the sorted group ids gives test = ceil(20 %), validation =
  ceil(12.5 % of the rest), train = the remainder (124 groups: 25 / 13 / 86, the reference's).
- **Control pool**: control items that belong to no correlation group and do not share a source
  question (source_benchmark, source_id) with any correlation item. Per source, a seeded order of the
  pool is cut into regions: the held-out control sample (`control_scale` x the test anchors of that
  source), then the non-spurious validation items (`non_spurious_scale` x validation anchors), then the
  non-spurious training items (`non_spurious_scale` x training anchors). The ablation draws its
  replacement items from the same order, right after the held-out controls (it has no validation set).
  So held-out controls never appear in any training set, and every sample is nested in larger ones.
- **Ablation**: the train + validation groups in a seeded order; point n keeps the first n as spurious
  data and replaces each other group by as many non-spurious items of its source as it would have
  contributed (its anchors, or its spurious images): the training-set size is the same for every n.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MIN_GROUPS = 10
TEST_FRACTION, VAL_FRACTION = 0.2, 0.125


class StudyDataError(ValueError):
    """The benchmark (or the requested design) cannot make this study; the message says why."""


@dataclass(frozen=True)
class ItemMeta:
    """What the study needs to know of an item (no image)."""

    item_id: str
    group_id: str
    variant: str
    source: str = ""
    source_id: str = ""


@dataclass
class Group:
    group_id: str
    source: str = ""
    anchors: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)
    counter: list[str] = field(default_factory=list)

    def size(self, kind: str) -> int:
        """Items this group contributes as `anchor` or `group` training data."""
        return len(self.anchors) if kind == "anchor" else len(self.spurious)


@dataclass
class Inventory:
    groups: dict[str, Group]
    pool: dict[str, list[str]]  # source -> control item ids (sorted), after exclusions

    @property
    def n_controls(self) -> int:
        return sum(len(v) for v in self.pool.values())


def inventory(items: Iterable[ItemMeta]) -> Inventory:
    """The correlation groups and the control pool; bad designs are refused with a clear message."""
    groups: dict[str, Group] = {}
    controls: list[ItemMeta] = []
    questions: set[tuple[str, str]] = set()
    for it in items:
        if it.variant == "control":
            controls.append(it)
            continue
        g = groups.setdefault(it.group_id, Group(it.group_id))
        {"anchor": g.anchors, "spurious": g.spurious, "counter": g.counter}[it.variant].append(it.item_id)
        if it.variant == "anchor" and not g.source:
            g.source = it.source
        if it.source_id:
            questions.add((it.source, it.source_id))
    _check_groups(groups)
    pool: dict[str, list[str]] = {}
    for it in controls:
        if it.group_id in groups or (it.source_id and (it.source, it.source_id) in questions):
            continue  # a correlation's own item or its source question is never a control
        pool.setdefault(it.source, []).append(it.item_id)
    return Inventory(groups, {s: sorted(v) for s, v in sorted(pool.items())})


def _check_groups(groups: dict[str, Group]) -> None:
    def some(ids: list[str]) -> str:
        return ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")

    no_anchor = sorted(g for g, v in groups.items() if not v.anchors)
    if no_anchor:
        raise StudyDataError(f"{len(no_anchor)} group(s) have no anchor item: {some(no_anchor)}. Every correlation "
                             "needs its real anchor (the held-out anchors and the anchor data type use it)")
    no_spurious = sorted(g for g, v in groups.items() if not v.spurious)
    if no_spurious:
        raise StudyDataError(f"{len(no_spurious)} group(s) have no spurious images: {some(no_spurious)}. The study "
                             "trains on and evaluates spurious images of every correlation; synthesize them first "
                             "(`spuriverse synth`) or leave these groups out of the benchmark")
    if len(groups) < MIN_GROUPS:
        raise StudyDataError(f"the benchmark has {len(groups)} correlation group(s); splitting correlations into "
                             f"train / validation / test needs at least {MIN_GROUPS} (test 20 %, validation "
                             "12.5 % of the rest, at least one group each)")


def split_groups(group_ids: Sequence[str], seed: int, test_fraction: float = TEST_FRACTION,
                 val_fraction: float = VAL_FRACTION) -> dict[str, list[str]]:
    """train / validation / test group ids (each sorted) for `seed`: a seeded permutation of the sorted
    ids; test = ceil(test_fraction x n), validation = ceil(val_fraction x the rest)."""
    ids = sorted(set(group_ids))
    n_test = math.ceil(round(test_fraction * len(ids), 9))
    n_val = math.ceil(round(val_fraction * (len(ids) - n_test), 9))
    if n_test < 1 or len(ids) - n_test - n_val < 1:
        raise StudyDataError(f"{len(ids)} groups cannot be split into test ({n_test}), validation ({n_val}) and a "
                             "non-empty training set")
    order = list(ids)
    random.Random(f"spuriverse-study/split/{seed}").shuffle(order)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": sorted(train), "validation": sorted(val), "test": sorted(test)}


def anchor_counts(inv: Inventory, group_ids: Iterable[str], kind: str = "anchor") -> Counter[str]:
    """Per source: the anchors (or spurious images, kind="group") of these groups."""
    out: Counter[str] = Counter()
    for g in group_ids:
        out[inv.groups[g].source] += inv.groups[g].size(kind)
    return out


def pool_order(inv: Inventory, seed: int) -> dict[str, list[str]]:
    """Per source, the control pool in this seed's order."""
    out = {}
    for source, ids in inv.pool.items():
        order = list(ids)
        random.Random(f"spuriverse-study/controls/{seed}/{source}").shuffle(order)
        out[source] = order
    return out


def take(order: dict[str, list[str]], counts: Counter[str], skip: Counter[str] | None = None,
         what: str = "items") -> list[str]:
    """Per source s: `counts[s]` ids from `order[s]` after its first `skip[s]`; too few is an error."""
    skip = skip or Counter()
    out: list[str] = []
    for source in sorted(counts):
        need, start = counts[source], skip[source]
        if need <= 0:
            continue
        have = order.get(source, [])
        if start + need > len(have):
            raise StudyDataError(
                f"not enough control items of source {source or '(none)'!r} for {what}: the study needs "
                f"{start + need} from its control pool, which has {len(have)} (after leaving out items of the "
                "correlation groups and of their source questions). Lower --control-scale / "
                "--non-spurious-scale, drop ablation points, or add controls (--controls SRC)")
        out += have[start:start + need]
    return out


def resolve_points(points: Sequence[str], n_groups: int) -> list[int]:
    """Ablation points: counts ("20") or percentages of the train + validation groups ("50%")."""
    out = []
    for p in points:
        text = p.strip()
        try:
            n = round(float(text[:-1]) / 100 * n_groups) if text.endswith("%") else int(text)
        except ValueError:
            raise StudyDataError(f"ablation point {p!r} is neither a count nor a percentage") from None
        if n < 0 or n > n_groups:
            raise StudyDataError(f"ablation point {p!r} = {n} correlations, but a seed has only {n_groups} "
                                 "training correlations (train + validation groups): choose points from 0 to "
                                 f"{n_groups} (or percentages)")
        out.append(n)
    if len(set(out)) != len(out):
        raise StudyDataError(f"ablation points {', '.join(points)} repeat a count ({out})")
    return out


@dataclass
class SeedSamples:
    """Everything one seed draws."""

    seed: int
    split: dict[str, list[str]]
    heldout_controls: list[str]
    val_non_spurious: list[str]
    non_spurious: list[str]
    ablation_order: list[str]
    order: dict[str, list[str]]  # the pool order, for the ablation's replacements
    skip: Counter[str]  # held-out controls per source (the ablation draws after them)


def seed_samples(inv: Inventory, seed: int, *, control_scale: int, non_spurious_scale: int,
                 test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION,
                 need_non_spurious: bool = True) -> SeedSamples:
    """The split and the samples of one seed (non-spurious items only when a data type uses them)."""
    split = split_groups(list(inv.groups), seed, test_fraction, val_fraction)
    order = pool_order(inv, seed)
    test = Counter({s: control_scale * n for s, n in anchor_counts(inv, split["test"]).items()})
    heldout = take(order, test, what=f"the held-out control sample of seed {seed}")
    val_n = Counter({s: non_spurious_scale * n for s, n in anchor_counts(inv, split["validation"]).items()})
    train_n = Counter({s: non_spurious_scale * n for s, n in anchor_counts(inv, split["train"]).items()})
    val_ns: list[str] = []
    train_ns: list[str] = []
    if need_non_spurious:
        val_ns = take(order, val_n, test, what=f"the non-spurious validation items of seed {seed}")
        train_ns = take(order, train_n, test + val_n, what=f"the non-spurious training items of seed {seed}")
    ablation = split["train"] + split["validation"]
    random.Random(f"spuriverse-study/ablation/{seed}").shuffle(ablation)
    return SeedSamples(seed, split, heldout, val_ns, train_ns, ablation, order, test)


def ablation_items(inv: Inventory, samples: SeedSamples, n: int, kind: str) -> tuple[list[str], list[str]]:
    """(kept groups, replacement control item ids) of ablation point `n` for `kind` anchor | group."""
    kept, replaced = samples.ablation_order[:n], samples.ablation_order[n:]
    counts = anchor_counts(inv, replaced, kind)
    items = take(samples.order, counts, samples.skip,
                 what=f"the {kind} ablation at {n} correlations (seed {samples.seed})")
    return sorted(kept), items
