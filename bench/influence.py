"""Influence scaling on a tiny LVLM: time to fit EK-FAC factors and to score 100 queries against N
training examples (N = 250, 500, 1000), beside the compute floor measured in the same run.

    python bench/influence.py [--quick] [--method ekfac]

The model is a tiny random-weight LLaVA (the real architecture) with a LoRA adapter on its language
model (adapter weights random, not zero, so every gradient is non-trivial), the training examples
spuriverse-world shape items. Both stages run through `LVLMProblem` + the registry backend exactly as
`spuriverse diagnose influence` does. The floor: the same forward + backward passes with nothing else
(the training loss over the N examples in the same batches, once per pass the method makes: EK-FAC fits
with 2 passes, covariance and lambda; scoring makes 1 pass over the queries and 1 over the training
examples per block of queries). Each timing is the smallest of `--repeats` runs (default 2), the floor
measured before and after each. Times are this process's CPU seconds (`time.process_time`, one torch
thread), which other jobs on a shared machine disturb far less than wall-clock time. Printed: CPU
seconds, ratio to the floor, and the growth exponent of each time in N (log-log slope; 1 = linear).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import world_influence_data as wd  # noqa: E402


def _problem(model_dir: Path, data_dir: Path, n_queries: int, batch: int):
    from peft import LoraConfig, get_peft_model

    from spuriverse.diagnose.influence.lvlm import LVLMProblem
    from spuriverse.models.registry import build_model, resolve_model
    from spuriverse.schema.train import TrainDataSpec
    from spuriverse.train.data import load_examples
    from spuriverse.train.lora import target_regex

    backend = build_model(resolve_model(str(model_dir)), device="cpu", batch_size=batch)
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=target_regex(backend.model, "language"),
                        init_lora_weights=False)
    backend.model = get_peft_model(backend.model, config).eval()
    examples = load_examples([TrainDataSpec(source=str(data_dir))])
    queries, train = examples[:n_queries], examples[n_queries:]
    return LVLMProblem(backend, backend.model, train, queries, measurement="contrast")


def _floor(problem, passes: int, batch: int) -> float:
    """`passes` plain forward+backward sweeps of the training loss over the training examples."""
    params = [p for p in problem.model.parameters() if p.requires_grad]
    t0 = time.process_time()
    for _ in range(passes):
        for s in range(0, problem.n_train, batch):
            loss = problem.train_loss(problem.model, problem.train_batch(range(s, min(s + batch, problem.n_train))))
            torch.autograd.grad(loss.sum(), params, allow_unused=True)
    return time.process_time() - t0


def _query_floor(problem, batch: int) -> float:
    params = [p for p in problem.model.parameters() if p.requires_grad]
    t0 = time.process_time()
    for s in range(0, problem.n_query, batch):
        f = problem.measurement(problem.model, problem.query_batch(range(s, min(s + batch, problem.n_query))))
        torch.autograd.grad(f.sum(), params, allow_unused=True)
    return time.process_time() - t0


def _timed(problem, method: str, batch: int, n_queries: int, factors: Path) -> tuple[float, float]:
    from spuriverse.diagnose.influence import BackendSettings, build_backend

    backend = build_backend(method, BackendSettings(batch_size=batch, query_batch_size=n_queries))
    t0 = time.process_time()
    backend.fit(problem, factors)
    fit = time.process_time() - t0
    t0 = time.process_time()
    scores = backend.pairwise(problem, range(problem.n_query))
    score = time.process_time() - t0
    backend.close()
    assert scores.shape == (n_queries, problem.n_train) and np.isfinite(scores).all()
    return fit, score


def run_one(model_dir: Path, work: Path, n: int, n_queries: int, method: str, batch: int, repeats: int) -> dict:
    """Each timing is the smallest of `repeats` (influence: a fresh fit each time); the floor is
    measured before and after every repeat. On a shared machine the minimum is the least disturbed."""
    data = work / f"data-{n}"
    wd.write_dataset(wd.finetune_rows(n_queries + n - n // 10, n // 10, seed=n), data)
    problem = _problem(model_dir, data, n_queries, batch)
    problem.predict(range(problem.n_query))
    fit_passes = 2 if method == "ekfac" else 1
    best = {"fit": math.inf, "score": math.inf, "floor_fit": math.inf, "floor_score": math.inf}

    def floors() -> None:
        best["floor_fit"] = min(best["floor_fit"], _floor(problem, fit_passes, batch))
        best["floor_score"] = min(best["floor_score"], _floor(problem, 1, batch) + _query_floor(problem, batch))

    floors()
    for rep in range(repeats):
        fit, score = _timed(problem, method, batch, n_queries, work / f"factors-{n}-{rep}")
        best["fit"], best["score"] = min(best["fit"], fit), min(best["score"], score)
        floors()
    return {"n": problem.n_train, **best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N = 25, 50 and 10 queries (checks the bench runs)")
    p.add_argument("--method", default="ekfac", choices=["ekfac", "kfac"])
    p.add_argument("--sizes", default="250,500,1000")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="timings are the smallest of this many runs")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    sizes = [25, 50] if a.quick else [int(x) for x in a.sizes.split(",")]
    n_queries = 10 if a.quick else a.queries
    from helpers.tiny_models import build_tiny_llava

    rows = []
    with tempfile.TemporaryDirectory(prefix="influence-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_llava(work / "tiny-llava")
        for n in sizes:
            r = run_one(model_dir, work, n, n_queries, a.method, a.batch_size, 1 if a.quick else a.repeats)
            rows.append(r)
            print(f"N={r['n']:5d}  fit {r['fit']:7.2f} s ({r['fit'] / r['floor_fit']:.2f}x floor {r['floor_fit']:.2f} s)"
                  f"  score {n_queries} queries {r['score']:7.2f} s ({r['score'] / r['floor_score']:.2f}x floor "
                  f"{r['floor_score']:.2f} s)", flush=True)
    ns = np.log([r["n"] for r in rows])
    for key in ("fit", "score"):
        slope = float(np.polyfit(ns, np.log([r[key] for r in rows]), 1)[0]) if len(rows) > 1 else math.nan
        print(f"{key}: time grows as N^{slope:.2f} over N = {', '.join(str(r['n']) for r in rows)}")
    print("(CPU seconds of this process; the ratios to the floor were measured side by side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
