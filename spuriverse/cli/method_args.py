"""`spuriverse train --method ...` options (choices from the training-method registry) and
`spuriverse train compare-methods`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spuriverse.train.methods import METHODS, MethodOptions


def add_method_args(p: argparse.ArgumentParser, with_method: bool = True) -> None:
    g = p.add_argument_group("training method (see README 'Training methods')")
    if with_method:
        g.add_argument("--method", choices=list(METHODS), default="erm",
                       help="; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()) + " (default erm)")
    d = MethodOptions()
    g.add_argument("--meta-data", metavar="SRC", help="meta set source (erm-meta, clp): e.g. spuriverse-world's "
                   "train folder; F/CF items are built from its core masks, or its counter images are F items")
    g.add_argument("--meta-config", help="config of --meta-data (e.g. balanced)")
    g.add_argument("--meta-split", help="split of --meta-data (default: train if present)")
    g.add_argument("--meta-groups", help="only these group ids of --meta-data: a,b,c or @file")
    g.add_argument("--meta-size", type=int, default=d.meta_size, help=f"clean meta items, class-balanced ({d.meta_size})")
    g.add_argument("--meta-fill", choices=["grey", "shuffle", "tile"], default=d.meta_fill,
                   help=f"how CF images remove the object ({d.meta_fill})")
    g.add_argument("--meta-batch", type=int, default=d.meta_batch, help=f"clean items per meta step ({d.meta_batch})")
    g.add_argument("--meta-interval", type=int, default=d.meta_interval,
                   help=f"a meta step every N optimizer steps ({d.meta_interval})")
    g.add_argument("--clean-weight", type=float, default=d.clean_weight, help="meta loss weight of clean CE (1)")
    g.add_argument("--factual-weight", type=float, default=d.factual_weight, help="meta loss weight of F CE (1)")
    g.add_argument("--counterfactual-weight", type=float, default=d.counterfactual_weight,
                   help="meta loss weight of -log(1 - p_y) on CF items (1; 0: no CF items needed)")
    g.add_argument("--meta-lr", type=float, default=d.meta_lr, help=f"CLP: Adam lr of the perturbation net ({d.meta_lr})")
    g.add_argument("--meta-weight-decay", type=float, default=d.meta_weight_decay,
                   help=f"CLP: its weight decay ({d.meta_weight_decay})")
    g.add_argument("--virtual-lr", type=float, help="CLP: SGD step of the virtual step (default: --lr)")
    g.add_argument("--delta-bound", type=float, default=d.delta_bound, help=f"CLP: |delta| bound ({d.delta_bound})")
    g.add_argument("--saliency-lambda", type=float, default=d.saliency_lambda,
                   help=f"CLP: weight of the background input-gradient penalty ({d.saliency_lambda}; 0: off)")
    g.add_argument("--first-order", action="store_true",
                   help="CLP: no graph through the virtual step (a Jacobian-vector product by central difference)")
    g.add_argument("--clp-hidden", type=int, default=d.hidden, help=f"CLP: hidden width of the network ({d.hidden})")
    g.add_argument("--jtt-upweight", type=int, default=d.jtt_upweight, help=f"JTT: error-set repeat ({d.jtt_upweight})")
    g.add_argument("--jtt-first-epochs", type=float, default=d.jtt_first_epochs,
                   help=f"JTT: epochs of the identification model ({d.jtt_first_epochs})")
    g.add_argument("--groupdro-step", type=float, default=d.groupdro_step,
                   help=f"GroupDRO: step size of the group weights ({d.groupdro_step})")


def method_options(a: argparse.Namespace) -> MethodOptions:
    from spuriverse.schema.train import TrainDataSpec

    from spuriverse.train.data import parse_selection

    meta = TrainDataSpec(source=a.meta_data, config=a.meta_config, split=a.meta_split,
                         groups=parse_selection(a.meta_groups), variants=None) if a.meta_data else None
    return MethodOptions(
        meta_data=meta, meta_size=a.meta_size, meta_fill=a.meta_fill, meta_batch=a.meta_batch,
        meta_interval=a.meta_interval, clean_weight=a.clean_weight, factual_weight=a.factual_weight,
        counterfactual_weight=a.counterfactual_weight, meta_lr=a.meta_lr, meta_weight_decay=a.meta_weight_decay,
        virtual_lr=a.virtual_lr, delta_bound=a.delta_bound, saliency_lambda=a.saliency_lambda,
        first_order=a.first_order, hidden=a.clp_hidden, jtt_upweight=a.jtt_upweight,
        jtt_first_epochs=a.jtt_first_epochs, groupdro_step=a.groupdro_step)


COMPARE = """Train every --methods with every --seeds from the same --model on the same --data and settings
(all `spuriverse train` options apply; --method is replaced), score each run on held-out --test-data
(multiple-choice items with an `aligned` column, e.g. spuriverse-world's balanced validation split) as
`spuriverse eval --scoring logprob` would, and write OUT/compare.json and OUT/compare.md: average,
worst-group (answer class x aligned/conflicting) and cue-conflicting accuracy, each mean ± 95 % t
interval over seeds, and training wall time. Resumable: finished runs and scores are re-used."""


def add_compare(sub: argparse._SubParsersAction) -> None:
    """`spuriverse train compare-methods` (registered as `train-compare-methods`; `cli.main` maps it)."""
    from spuriverse.cli.train_cmds import add_train_args

    p = sub.add_parser("train-compare-methods", help="train every method x seed and compare on held-out test items "
                       "(also: spuriverse train compare-methods)", description=COMPARE,
                       prog="spuriverse train compare-methods", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(p)
    add_method_args(p, with_method=False)
    c = p.add_argument_group("comparison")
    c.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    c.add_argument("--test-data", required=True, metavar="SRC", help="held-out test items with an `aligned` column")
    c.add_argument("--test-config", help="config of --test-data")
    c.add_argument("--test-split", help="split of --test-data")
    c.add_argument("--test-groups", help="only these group ids of --test-data: a,b,c or @file")
    p.set_defaults(func=_cmd_compare, tuning="lora", no_val=True, method="erm")


def _cmd_compare(a: argparse.Namespace) -> int:
    from spuriverse.cli.train_cmds import train_options
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.compare import CompareOptions, run_compare, table

    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown method(s) {', '.join(bad) or '(none)'} (choose from {', '.join(METHODS)})")
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {a.seeds!r}") from None
    base = train_options(a)
    from spuriverse.train.data import parse_selection

    test = TrainDataSpec(source=a.test_data, config=a.test_config, split=a.test_split,
                         groups=parse_selection(a.test_groups), variants=None)
    result = run_compare(CompareOptions(base=base, test_data=test, methods=methods, seeds=seeds, out=Path(a.out)))
    print(table(result), end="")
    print(f"groups: {result.group_definition}; {len(result.group_sizes)} groups, sizes "
          f"{min(result.group_sizes.values())}-{max(result.group_sizes.values())}; {result.interval}", file=sys.stdout)
    return 0
