"""A run's samples collapsed into benchmark items: one outcome per item, its CircularEval rotations
folded into one (right only if every rotation is right). Scoring (`spuriverse.eval.metrics`), paired
comparison and the leaderboard all count items this way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from spuriverse.schema import Sample


class ItemOutcome(NamedTuple):
    """One benchmark item after collapsing its CircularEval rotations."""

    item_id: str
    group_id: str
    variant: str
    source_benchmark: str
    category: str
    spurious_attribute: str
    correct: bool
    failed: bool
    unparsed: bool
    error_type: str | None = None

    def scored(self, failures_as_wrong: bool) -> bool:
        """Whether the item enters accuracy denominators."""
        return failures_as_wrong or not (self.failed or self.unparsed)


def collapse_rotations(samples: Iterable[Sample]) -> tuple[list[ItemOutcome], int]:
    """Collapse samples into items, sorted by item_id; return (complete items, n incomplete).

    An item is right iff every rotation is right, failed if any rotation failed, unparsed if any
    rotation is unparsed and none failed (failed and unparsed items are never right). A CircularEval
    item (rotation not null) must carry rotations 0..n_options-1; one with fewer is incomplete and
    left out. Raises ValueError on duplicate (item_id, rotation) or rotations that disagree.
    """
    by_item: dict[str, list[Sample]] = {}
    for s in samples:
        rows = by_item.get(s.item_id)
        if rows is None:
            by_item[s.item_id] = [s]
        else:
            rows.append(s)
    items: list[ItemOutcome] = []
    incomplete = 0
    for item_id in sorted(by_item):
        rows = by_item[item_id]
        first = rows[0]
        if len(rows) == 1 and first.rotation is None:  # fast path: no CircularEval
            failed = first.error is not None
            unparsed = not failed and first.parse_status == "unparsed"
            items.append(ItemOutcome(
                item_id, first.group_id, first.variant, first.source_benchmark, first.category,
                first.spurious_attribute, first.correct and not failed and not unparsed, failed, unparsed,
                (first.error_type or "unknown") if failed else None,
            ))  # fmt: skip
            continue
        rows.sort(key=lambda s: -1 if s.rotation is None else s.rotation)
        first, rotations = rows[0], [s.rotation for s in rows]
        dup = next((r for r, r2 in zip(rotations, rotations[1:]) if r == r2), -2)
        if dup != -2:
            raise ValueError(f"duplicate sample for item {item_id!r} (rotation {dup})")
        if any((s.group_id, s.variant, s.n_options) != (first.group_id, first.variant, first.n_options)
               for s in rows):  # fmt: skip
            raise ValueError(f"item {item_id!r}: rotations disagree on group, variant or options")
        if not all(r is not None and 0 <= r < first.n_options for r in rotations):
            raise ValueError(f"item {item_id!r}: bad rotations {rotations}")
        if len(rows) < first.n_options:
            incomplete += 1
            continue
        failed = any(s.error is not None for s in rows)
        unparsed = not failed and any(s.parse_status == "unparsed" for s in rows)
        error_type = next((s.error_type or "unknown" for s in rows if s.error is not None), None)
        items.append(ItemOutcome(
            item_id, first.group_id, first.variant, first.source_benchmark, first.category,
            first.spurious_attribute, not failed and not unparsed and all(s.correct for s in rows),
            failed, unparsed, error_type,
        ))  # fmt: skip
    return items, incomplete
