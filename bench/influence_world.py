"""The influence acceptance experiment on spuriverse-world: which training examples taught a LoRA
fine-tune its shortcut, and does removing them undo it?

    python bench/influence_world.py --base MODEL_DIR [--out runs/influence-world] [--quick]
    python bench/influence_world.py --make-base runs/world-base [--base-steps 3000]   # a quick base

1. Fine-tune `--base` (a tiny LLaVA that knows the world's shapes) with LoRA (`spuriverse train`) on
   clean shape items plus a known poisoned subset: items with a purple background labelled "circle"
   whatever the object (the cue aligned with a wrong answer); base rate = poisoned / all.
2. Queries: held-out purple-background items of other shapes. For those the model answers with the
   cue's wrong answer, `spuriverse diagnose influence` (EK-FAC) finds the top-20 supporting examples:
   the spurious-support ratio (share of them that carry the cue) against the base rate, with intervals.
3. Remove the union of those queries' top-k supporters and retrain (same seed and settings); remove as
   many random examples and retrain (several draws). Report how much the wrong answer weakens: the drop
   of f = log p(cue's answer) - log p(correct), and of the share of queries answered with the cue's answer.

A base model: `--make-base DIR` trains one from a random tiny LLaVA (full fine-tuning through the train
stage on balanced shape items, half naming rows); the world models of `make world-models` are better.
Timings and figures depend on the machine: report them with the base used. `--quick` runs every step at a
toy size (a random-weight base, 1 epoch): it checks the machinery, not the science.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import world_influence_data as wd  # noqa: E402

CLASS_WORDS = ("circle", "square", "triangle", "cross")


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- a quick base ------------------------------------------------------------------------------
def init_model(out: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    """A random tiny LLaVA whose tokenizer has each class word as one token."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from helpers.tiny_models import build_tiny_llava

    build_tiny_llava(out, hidden=hidden, vision_hidden=hidden, seed=seed)
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor.tokenizer.add_tokens(list(CLASS_WORDS))
    model.resize_token_embeddings(len(processor.tokenizer))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_base(out: Path, *, steps: int, n_rows: int, seed: int = 0) -> Path:
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions, run_train

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "init" / "config.json").exists():
        init_model(out / "init", seed=seed)
    if not (out / "data" / "README.md").exists():
        wd.write_dataset(wd.base_rows(n_rows, seed=seed), out / "data")
    run_train(TrainOptions(
        model=str(out / "init"), out=out / "model", train_data=[TrainDataSpec(source=str(out / "data"))],
        tuning="full", epochs=1000, max_steps=steps, batch_size=64, learning_rate=2e-3, lr_scheduler="cosine",
        warmup=100, weight_decay=0.01, vocab_weight=0.1, seed=seed, save_steps=max(steps // 6, 50), progress=True,
    ))
    return out / "model"


# -- measuring a model on items ------------------------------------------------------------------
def load_problem(run: Path, queries: list) -> object:
    from spuriverse.diagnose.influence.lvlm import LVLMProblem
    from spuriverse.diagnose.influence.trainrun import load_model, read_run

    tr = read_run(run)
    backend, model, _, _ = load_model(tr, device="cpu", batch_size=16)
    c = tr.manifest.config
    return LVLMProblem(backend, model, tr.train, queries, objective=c.objective, strategy=c.strategy,
                       vocab_weight=c.vocab_weight, measurement="contrast", candidates=[])


def letter_probs(model_dir: Path, items: list, *, adapter: bool) -> np.ndarray:
    """[n, 4] option probabilities of each item (eval's prompt, its own option order)."""
    from spuriverse.models.registry import build_model, resolve_model
    from spuriverse.train.batching import Batcher, option_logits

    backend = build_model(resolve_model(str(model_dir)), device="cpu", batch_size=32)
    batcher = Batcher(backend)
    out = []
    with torch.no_grad():
        for s in range(0, len(items), 32):
            letters, _ = option_logits(backend.model, batcher.choice_batch(items[s:s + 32]))
            out.append(torch.softmax(letters[:, :4], -1))
    return torch.cat(out).numpy()


def _index(ex, word: str) -> int:
    return list(ex.options).index(word)


def cue_answer_stats(probs: np.ndarray, items: list) -> dict[str, np.ndarray]:
    """Per item: f = log p(cue's answer) - log p(correct), and whether the top letter is the cue's."""
    cue_word = CLASS_WORDS[wd.CUE_CLASS]
    cue = np.array([_index(ex, cue_word) for ex in items])
    correct = np.array(["ABCD".index(ex.answer) for ex in items])
    rows = np.arange(len(items))
    logp = np.log(np.clip(probs, 1e-12, 1))
    return {"f": logp[rows, cue] - logp[rows, correct], "cue_answer": probs.argmax(1) == cue,
            "correct": probs.argmax(1) == correct}


# -- the experiment --------------------------------------------------------------------------------
def finetune(base: Path, data: Path, out: Path, *, epochs: float, seed: int, lr: float = 5e-3) -> Path:
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train import TrainOptions, run_train

    # LoRA on both towers (LLaVA's last CLIP layer gets adapters but no gradient: the diagnosis must
    # drop it); lr and epochs chosen on a pilot with another data seed (1), never on this experiment's
    run_train(TrainOptions(model=str(base), out=out, train_data=[TrainDataSpec(source=str(data))], epochs=epochs,
                           batch_size=16, learning_rate=lr, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                           lora_target="both", seed=seed, progress=False))
    return out


def subset_data(rows: list[dict], drop: set[str], out: Path) -> Path:
    if not (out / "README.md").exists():
        wd.write_dataset([r for r in rows if r["item_id"] not in drop], out)
    return out


def wilson(k: int, n: int) -> list[float]:
    from spuriverse.diagnose.influence.support import wilson as w

    return list(w(k, n)) if n else [float("nan"), float("nan")]


def diagnose(run: Path, queries_dir: Path, out: Path, *, top_k: int, method: str) -> list:
    from spuriverse.diagnose.influence import InfluenceOptions, run_influence
    from spuriverse.persist import read_jsonl
    from spuriverse.schema.influence import QueryInfluence
    from spuriverse.schema.train import TrainDataSpec

    run_influence(InfluenceOptions(train_run=run, queries=[TrainDataSpec(source=str(queries_dir))], out=out,
                                   method=method, top_k=top_k, batch_size=16, query_batch_size=64, progress=False))
    return list(read_jsonl(out / "queries.jsonl", QueryInfluence))


def support_figures(records: list, n_train: int, n_poison: int, *, seed: int) -> dict:
    """The spurious-support ratio over the queries answered with the cue's answer: mean with a
    bootstrap interval over queries, pooled with a Wilson interval, against the base rate."""
    cue_letter = {r.item_id: r for r in records}
    picked = [r for r in cue_letter.values() if r.spurious_support is not None and r.predicted != r.answer
              and r.probs and _is_cue_answer(r)]
    ratios = np.array([r.spurious_support.value for r in picked])
    rng = np.random.default_rng(seed)
    boot = [float(rng.choice(ratios, len(ratios)).mean()) for _ in range(2000)] if len(ratios) else []
    k = sum(r.spurious_support.n_cue for r in picked)
    n = sum(r.spurious_support.k for r in picked)
    return {
        "n_queries_cue_answer": len(picked),
        "ratio_mean": float(ratios.mean()) if len(ratios) else None,
        "ratio_ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else None,
        "ratio_pooled": k / n if n else None, "ratio_pooled_wilson": wilson(k, n),
        "base_rate": n_poison / n_train, "base_rate_wilson": wilson(n_poison, n_train),
    }


def support_curve(influence_dir: Path, picked: list, ks: tuple[int, ...] = (5, 10, 20, 40)) -> dict[str, dict]:
    """From the saved score matrices: for each k, the mean share of poisoned and of circle-labelled
    examples among the picked queries' top-k supporters, and the size of the union of those top-k."""
    q_ids, blocks, t_ids = [], [], np.array([])
    for f in sorted((influence_dir / "scores").glob("*.npz")):
        z = np.load(f)
        q_ids += list(z["query_ids"])
        blocks.append(z["scores"])
        t_ids = z["train_ids"]
    scores, row = np.concatenate(blocks), {q: i for i, q in enumerate(q_ids)}
    poisoned = np.array([t.startswith("poison/") for t in t_ids])
    out = {}
    for k in ks:
        tops = [np.argsort(-scores[row[r.item_id]], kind="stable")[:k] for r in picked]
        out[str(k)] = {"poisoned_share": float(np.mean([poisoned[t].mean() for t in tops])),
                       "union": len({int(i) for t in tops for i in t}),
                       "union_poisoned": len({int(i) for t in tops for i in t if poisoned[i]})}
    return out


_QUERY_OPTIONS: dict[str, tuple[str, ...]] = {}


def _is_cue_answer(r) -> bool:
    return _QUERY_OPTIONS[r.item_id]["ABCD".index(r.predicted)] == CLASS_WORDS[wd.CUE_CLASS]


def measure(run: Path, items: list) -> dict[str, float]:
    stats = cue_answer_stats(letter_probs(run, items, adapter=True), items)
    return {"f_mean": float(stats["f"].mean()), "cue_answer_share": float(stats["cue_answer"].mean()),
            "accuracy": float(stats["correct"].mean()), "n": len(items)}


def _retrain_without(args: argparse.Namespace, rows: list[dict], drop: set[str], name: str, items: list) -> dict:
    name = name.replace("/", "_")
    run = finetune(args.base, subset_data(rows, drop, args.out / f"minus-{name}"), args.out / f"run-minus-{name}",
                   epochs=args.epochs, seed=args.seed)
    return {**measure(run, items), "n_removed": len(drop), "removed_poisoned": sum(i.startswith("poison/") for i in drop)}


def _random_set(rows: list[dict], size: int, seed: list[int]) -> set[str]:
    ids = sorted(r["item_id"] for r in rows)
    return set(np.random.default_rng(seed).choice(ids, size=size, replace=False).tolist())


def _drops(before: dict, top: dict, random: list[dict]) -> dict:
    out: dict = {}
    for key in ("f_mean", "cue_answer_share"):
        out[f"drop_{key}_top"] = before[key] - top[key]
        drops = [before[key] - r[key] for r in random]
        out[f"drop_{key}_random"] = float(np.mean(drops))
        out[f"drop_{key}_random_range"] = [float(min(drops)), float(max(drops))]
    return out


def removal(args: argparse.Namespace, rows: list[dict], picked: list, queries: dict, run: Path) -> dict:
    """(1) Per query, for the first `--per-query` picked queries (by id): remove its top-k supporters,
    retrain, measure f on it; the same with k random examples (`--query-draws` draws each). (2) The union of
    every picked query's top-k supporters removed at once vs as many random examples, measured on all
    picked queries."""
    out: dict = {"k": args.top_k, "per_query": []}
    for r in sorted(picked, key=lambda r: r.item_id)[: args.per_query]:
        item = [queries[r.item_id]]
        before = measure(run, item)
        top = _retrain_without(args, rows, {s.train_id for s in r.supporting[: args.top_k]}, f"top-{r.item_id}", item)
        rand = [_retrain_without(args, rows, _random_set(rows, args.top_k, [args.seed, 98, d, int(r.item_id[-5:])]),
                                 f"random{d}-{r.item_id}", item) for d in range(args.query_draws)]
        out["per_query"].append({"item_id": r.item_id, "before": before, "top": top, "random": rand,
                                 **_drops(before, top, rand)})
    items = [queries[r.item_id] for r in picked]
    union = {s.train_id for r in picked for s in r.supporting[: args.top_k]}
    before = measure(run, items)
    top = _retrain_without(args, rows, union, "top", items)
    rand = [_retrain_without(args, rows, _random_set(rows, len(union), [args.seed, 99, d]), f"random{d}", items)
            for d in range(args.draws)]
    out["union"] = {"before": before, "top": top, "random": rand, **_drops(before, top, rand)}
    return out


def _self_auroc(influence_dir: Path) -> dict[str, float]:
    """Do the poisoned examples stand out by self-influence (or by loss)? AUROC of each."""
    from spuriverse.diagnose.influence.support import auroc
    from spuriverse.persist import read_jsonl
    from spuriverse.schema.influence import SelfInfluenceRow

    rows = list(read_jsonl(influence_dir / "self_influence.jsonl", SelfInfluenceRow))
    poisoned = [r.train_id.startswith("poison/") for r in rows]
    if all(poisoned) or not any(poisoned):
        return {}
    return {"self_influence": auroc([r.self_influence for r in rows], poisoned),
            "loss": auroc([r.loss for r in rows], poisoned)}


def _examples(folder: Path) -> list:
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import load_examples

    return load_examples([TrainDataSpec(source=str(folder))])


def experiment(args: argparse.Namespace) -> dict:
    out: Path = args.out
    rows = wd.finetune_rows(args.n_clean, args.n_poison, seed=args.seed)
    data = out / "finetune-data"
    if not (data / "README.md").exists():
        wd.write_dataset(rows, data)
        wd.write_dataset(wd.query_rows(args.n_queries, seed=args.seed), out / "queries")
        wd.write_dataset(wd.heldout_rows(args.n_heldout, seed=args.seed), out / "heldout")
    queries = {ex.item_id: ex for ex in _examples(out / "queries")}
    _QUERY_OPTIONS.update({k: ex.options for k, ex in queries.items()})
    heldout = _examples(out / "heldout")
    res: dict = {"base": str(args.base), "n_train": len(rows), "n_poison": args.n_poison}
    t0 = time.perf_counter()
    res["base_heldout"] = measure(args.base, heldout)
    res["base_queries"] = measure(args.base, list(queries.values()))
    run = finetune(args.base, data, out / "run", epochs=args.epochs, seed=args.seed)
    res["finetuned_heldout"] = measure(run, heldout)
    res["finetuned_queries"] = measure(run, list(queries.values()))
    res["train_s"] = time.perf_counter() - t0
    _say(f"base: held-out accuracy {res['base_heldout']['accuracy']:.3f}; fine-tuned: held-out accuracy "
         f"{res['finetuned_heldout']['accuracy']:.3f}, queries answered with the cue's answer "
         f"{res['finetuned_queries']['cue_answer_share']:.3f}")
    t0 = time.perf_counter()
    records = diagnose(run, out / "queries", out / "influence", top_k=args.top_k, method=args.method)
    res["influence_s"] = time.perf_counter() - t0
    res["support"] = support_figures(records, len(rows), args.n_poison, seed=args.seed)
    res["self_influence_auroc_poisoned"] = _self_auroc(out / "influence")
    picked = [r for r in records if r.spurious_support is not None and r.predicted != r.answer and _is_cue_answer(r)]
    if picked:
        res["support_by_k"] = support_curve(out / "influence", picked)
        res["removal"] = removal(args, rows, picked, queries, run)
    return res


def _report(res: dict) -> None:
    s = res["support"]
    _say(f"\nqueries answered with the cue's answer: {s['n_queries_cue_answer']}")
    if res.get("self_influence_auroc_poisoned"):
        a = res["self_influence_auroc_poisoned"]
        _say(f"poisoned examples by self-influence: AUROC {a['self_influence']:.3f} (by loss: {a['loss']:.3f})")
    if s["ratio_mean"] is not None:
        _say(f"top-k spurious-support ratio: mean {s['ratio_mean']:.3f} {np.round(s['ratio_ci'], 3).tolist()} "
             f"(pooled {s['ratio_pooled']:.3f}, Wilson {np.round(s['ratio_pooled_wilson'], 3).tolist()}); base rate "
             f"{s['base_rate']:.3f} {np.round(s['base_rate_wilson'], 3).tolist()}")
    for k, v in res.get("support_by_k", {}).items():
        _say(f"  top-{k}: poisoned share {v['poisoned_share']:.3f}; union over the queries {v['union']} examples, "
             f"{v['union_poisoned']} of them poisoned")
    r = res.get("removal")
    if not r:
        return
    for q in r["per_query"]:
        _say(f"{q['item_id']}: remove its top-{r['k']} ({q['top']['removed_poisoned']} poisoned) -> f drops "
             f"{q['drop_f_mean_top']:+.3f}; {r['k']} random -> {q['drop_f_mean_random']:+.3f} "
             f"{np.round(q['drop_f_mean_random_range'], 3).tolist()}")
    if r["per_query"]:
        tops = [q["drop_f_mean_top"] for q in r["per_query"]]
        rands = [q["drop_f_mean_random"] for q in r["per_query"]]
        _say(f"per query (mean over {len(tops)}): f drops {np.mean(tops):+.3f} (top-{r['k']} removed) vs "
             f"{np.mean(rands):+.3f} (random); top > random for {sum(t > x for t, x in zip(tops, rands))} of {len(tops)}")
    u = r["union"]
    _say(f"all of them at once: the union of their top-{r['k']} ({u['top']['n_removed']} examples, "
         f"{u['top']['removed_poisoned']} poisoned) vs as many random:")
    for key, name in (("f_mean", "mean f = log p(cue answer) - log p(correct)"),
                      ("cue_answer_share", "share answered with the cue's answer")):
        _say(f"  {name}: before {u['before'][key]:.3f}; drop {u[f'drop_{key}_top']:+.3f} (top-k removed) vs "
             f"{u[f'drop_{key}_random']:+.3f} {np.round(u[f'drop_{key}_random_range'], 3).tolist()} "
             f"(random, {len(u['random'])} draws)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, help="a tiny LLaVA that knows the world's shapes (a model folder)")
    p.add_argument("--make-base", type=Path, metavar="DIR", help="train a quick base into DIR (then use DIR/model)")
    p.add_argument("--base-steps", type=int, default=3000)
    p.add_argument("--out", type=Path, default=Path("runs/influence-world"))
    p.add_argument("--n-clean", type=int, default=360)
    p.add_argument("--n-poison", type=int, default=40)
    p.add_argument("--n-queries", type=int, default=60)
    p.add_argument("--n-heldout", type=int, default=200)
    p.add_argument("--epochs", type=float, default=6.0)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--draws", type=int, default=3, help="random-removal retrainings (per query and for the union)")
    p.add_argument("--per-query", type=int, default=5, help="queries whose own top-k removal is retrained")
    p.add_argument("--query-draws", type=int, default=2, help="random-removal retrainings per query")
    p.add_argument("--method", default="ekfac")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="toy sizes on a random-weight base (checks the machinery)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.make_base:
        args.base = make_base(args.make_base, steps=args.base_steps, n_rows=12_000, seed=args.seed)
    if args.quick:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="influence-world-")
        args.out = Path(tmp.name)
        args.base = init_model(args.out / "random-base", hidden=32)
        args.n_clean, args.n_poison, args.n_queries, args.n_heldout = 12, 6, 6, 6
        args.epochs, args.top_k, args.draws, args.per_query, args.query_draws = 1.0, 4, 1, 1, 1
    if args.base is None:
        p.error("--base (or --make-base, or --quick) is required")
    args.out.mkdir(parents=True, exist_ok=True)
    res = experiment(args)
    (args.out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    _report(res)
    if not args.quick:  # --quick works in a temporary folder, removed at exit
        _say(f"\nresults: {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
