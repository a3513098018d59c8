"""The model-randomisation sanity check (Adebayo et al. 2018; the review's "sanity" criterion).

After the run's own maps exist, every weight of the model is redrawn (`randomise_weights`) and the first
`--sanity-items` selected items are attributed again with the same target letters: a map that barely
changes (high Spearman rank correlation with the trained model's map) explains the input, not the model.
Runs last (the weights are gone afterwards); a killed run resumes it from `sanity.jsonl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spuriverse.diagnose.attribution.engine import Attributor
from spuriverse.diagnose.attribution.files import SANITY, read_map, read_rows, read_sanity, shard
from spuriverse.diagnose.attribution.methods import METHODS, method_space
from spuriverse.diagnose.attribution.metrics import randomise_weights, spearman
from spuriverse.persist import JsonlAppender
from spuriverse.schema import Item
from spuriverse.schema.attribution import SanityRow

if TYPE_CHECKING:
    from spuriverse.diagnose.attribution.runner import AttributionRun

RANDOMISATION = "every weight tensor redrawn from a normal with its own mean and standard deviation"
SANITY_SEED_OFFSET = 7919


def sanity_todo(run: AttributionRun, selected: list[tuple[int, Item]]) -> list[tuple[int, Item]]:
    """This process's share of the first `sanity_items` selected items still lacking a sanity line for
    some method (the same share as its items, so their maps are its own)."""
    n = run.opts.sanity_items
    if n <= 0:
        return []
    done = {(s.item_id, s.method) for s in read_sanity(run.run_dir)}
    return [(i, it) for k, (i, it) in enumerate(selected[:n]) if k % run.world == run.rank
            and any((it.item_id, m) not in done for m in run.opts.methods)]


def run_sanity(run: AttributionRun, att: Attributor, todo: list[tuple[int, Item]]) -> None:
    from spuriverse.diagnose.attribution.runner import item_batches

    rows = {(r.item_id, r.method): r for r in read_rows(run.run_dir)}
    done = {(s.item_id, s.method) for s in read_sanity(run.run_dir)}
    seed = run.config.seed + SANITY_SEED_OFFSET
    randomise_weights(att.model, seed)
    wanted = {i for i, _ in todo}
    with JsonlAppender(shard(run.run_dir, SANITY, run.rank, run.world)) as writer:
        for items in item_batches(run, run.bench.iter_items(lambda i, _: i in wanted)):
            batch = att.prepare([it.item.item_id for it in items], [it.request for it in items],
                                [it.item.answer for it in items])
            for method in run.opts.methods:
                idx = [k for k, it in enumerate(items) if (it.item.item_id, method) not in done
                       and (it.item.item_id, method) in rows]
                if not idx:
                    continue
                sub = batch.select(idx)
                for j, k in enumerate(idx):  # the trained model's target letters, not the random model's
                    weights = rows[(items[k].item.item_id, method)].target_weights
                    sub.weights[j] = 0.0
                    for letter, w in weights.items():
                        sub.weights[j, "ABCDEF".index(letter)] = w
                rasters = att.rasters(METHODS[method].run(att, sub, method_space(method, run.opts.input),
                                                          run.opts.params), sub)
                for k, r in zip(idx, rasters):
                    trained = read_map(run.run_dir, rows[(items[k].item.item_id, method)].map_file)
                    writer.append(SanityRow(item_id=items[k].item.item_id, method=method,
                                            spearman=spearman(trained, r), randomisation=RANDOMISATION, seed=seed))
