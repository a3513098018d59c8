"""Evaluation throughput: `spuriverse eval` vs the pure-forward floor vs a reference-style loop.

One run, same model, same 1,364 items (124 groups x (anchor + 10 spurious)), measured side by side:

- ours:      the whole `run_eval` call (load + validate + fingerprint the benchmark, load the model,
             stream items, option log-probs in batches, write samples, score with 1,000 group-
             bootstrap iterations, write results.json);
- floor:     only `model(**inputs)` on the same batches, inputs prepared beforehand (no decoding,
             no processor, no I/O): what a perfect harness would cost;
- ours, fsync per line: the same `run_eval` with one fsync per sample line (the sample writer groups
             its fsyncs by default: see `spuriverse.persist`), to show what that costs;
- reference: the reference code's loop: one item at a time, `generate(max_new_tokens=100)`,
             decode, parse. Timed on `--ref-items` items and extrapolated to all of them (a full
             pass takes many minutes); the per-item time is printed.

Model: a medium-tiny LLaVA (CLIP 224 px / patch 14 = 256 image tokens, Llama hidden 128, 4 layers),
random weights, built offline. Targets: ours/floor <= 1.3, reference/ours >= 20.

`--profile` runs `run_eval` once more with its steps timed on whichever thread runs them (batches run
on worker threads, which cProfile does not follow): CPU seconds in pre-processing (chat template,
tokenizer, image processor: `HFBackend._prepare`), in the forward (`_score`), wall seconds in writing
sample lines, and the rest of the process; then a cProfile of `_prepare` alone, single-threaded.

    python bench/eval_throughput.py [--groups 124] [--batch-size 8] [--ref-items 30] [--profile]
    python bench/eval_throughput.py --quick     # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

from helpers.bench_data import write_long_dataset  # noqa: E402
from helpers.tiny_models import build_tiny_llava  # noqa: E402


def cpu_s() -> float:
    """CPU seconds this process has used (every thread): on a shared machine a steadier measure of the
    work done than the wall clock."""
    t = os.times()
    return t.user + t.system


def floor_time(model_dir: Path, data_dir: Path, batch_size: int) -> tuple[float, float, int, float]:
    """Forward passes only, on inputs built beforehand with the same processor and prompts, with
    all of torch's threads: the plain `model(**inputs)`, and the same computing only the last
    position's logits (what the harness needs; the stricter floor)."""
    from spuriverse.data import load_benchmark
    from spuriverse.eval.prompts import render_prompt
    from spuriverse.models.base import Request
    from spuriverse.models.hf import HFBackend

    backend = HFBackend(str(model_dir), batch_size=batch_size)
    reqs = []
    for li in load_benchmark(str(data_dir)).iter_items():
        rp = render_prompt(li.item.question, li.item.options, "direct")
        reqs.append(Request(system=rp.system, prompt=rp.user, image=li.image, letters=rp.letters))
    batches = [backend._prepare(reqs[i : i + batch_size])[3] for i in range(0, len(reqs), batch_size)]
    times, cpu = [], 0.0
    with torch.inference_mode():
        for keep in (0, 1):
            backend.model(**batches[0], logits_to_keep=keep)  # warm-up
            t0, c0 = time.perf_counter(), cpu_s()
            for inputs in batches:
                backend.model(**inputs, logits_to_keep=keep).logits[:, -1, :].float().log_softmax(-1)
            times.append(time.perf_counter() - t0)
            cpu = cpu_s() - c0  # the last-position floor's CPU
    return times[0], times[1], len(reqs), cpu


def reference_time(model_dir: Path, data_dir: Path, n_items: int) -> tuple[float, float]:
    """The reference's pattern: per item, generate 100 tokens, decode prompt + answer, parse."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from spuriverse.data import load_benchmark

    processor = AutoProcessor.from_pretrained(str(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir)).eval()
    items = []
    for li in load_benchmark(str(data_dir)).iter_items():
        items.append(li)
        if len(items) == n_items:
            break
    t0 = time.perf_counter()
    n_tokens = 0
    for li in items:
        opts = "\n".join(f"({'ABCDEF'[k]}) {o}" for k, o in enumerate(li.item.options))
        prompt = f"USER: <image>\nQuestion: {li.item.question}\nOptions:\n{opts}\nPlease select the correct answer. ASSISTANT:"
        inputs = processor(images=li.image.pil(), text=prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=100, do_sample=False)
        n_tokens += out.shape[1] - inputs["input_ids"].shape[1]
        text = processor.decode(out[0], skip_special_tokens=True)
        next((c for c in "ABCD" if f"{c})" in text), None)
    dt = time.perf_counter() - t0
    return dt / len(items), n_tokens / len(items)


class StepClock:
    """CPU seconds (on the calling thread) and calls of wrapped methods, summed over threads."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: type, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.cpu[label] = self.cpu.get(label, 0.0) + time.thread_time() - c0
                    self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - w0
                    self.calls[label] = self.calls.get(label, 0) + 1

        setattr(owner, name, timed)


def profile_steps(model_dir: Path, data_dir: Path, out: Path, batch_size: int) -> None:
    """One more `run_eval` with its steps timed (see the module docstring), then a cProfile of the
    pre-processing alone."""
    from spuriverse.data import load_benchmark
    from spuriverse.eval.prompts import render_prompt
    from spuriverse.eval.runner import EvalOptions, run_eval
    from spuriverse.eval.samples import SampleWriter
    from spuriverse.models.base import Request
    from spuriverse.models.hf import HFBackend

    clock = StepClock()
    saved = {(cls, name): getattr(cls, name) for cls, name in
             ((HFBackend, "_prepare"), (HFBackend, "_score"), (SampleWriter, "append_many"))}
    clock.wrap(HFBackend, "_prepare", "pre-processing (template, tokenizer, image processor)")
    clock.wrap(HFBackend, "_score", "forward (option log-probs)")
    clock.wrap(SampleWriter, "append_many", "sample lines (write + grouped fsync)")
    cpu0, t0 = os.times(), time.perf_counter()
    try:
        result = run_eval(EvalOptions(model=str(model_dir), dataset=str(data_dir), output_dir=out,
                                      batch_size=batch_size, progress=False, report=False))
    finally:
        for (cls, name), fn in saved.items():
            setattr(cls, name, fn)
    cpu1, wall = os.times(), time.perf_counter() - t0
    process_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    n = result.failures.n_samples
    print(f"\n--- where the time goes: run_eval over {n} items, {wall:.2f} s wall, {process_cpu:.2f} s CPU "
          f"(inference {result.timings['inference_s']:.2f} s) ---")
    for label in clock.cpu:
        print(f"{label:<56} CPU {clock.cpu[label]:7.2f} s  wall {clock.wall[label]:7.2f} s  "
              f"({1000 * clock.cpu[label] / n:.2f} ms CPU/item, {clock.calls[label]} calls)")
    rest = process_cpu - sum(clock.cpu.values())
    print(f"{'everything else (load, decode, validate, score, ...)':<56} CPU {rest:7.2f} s")
    backend = HFBackend(str(model_dir), batch_size=batch_size)
    reqs = []
    for li in load_benchmark(str(data_dir)).iter_items():
        rp = render_prompt(li.item.question, li.item.options, "direct")
        reqs.append(Request(system=rp.system, prompt=rp.user, image=li.image, letters=rp.letters))
    prof = cProfile.Profile()
    prof.enable()
    for i in range(0, len(reqs), batch_size):
        backend._prepare(reqs[i : i + batch_size])
    prof.disable()
    print_profile(prof, f"pre-processing of {len(reqs)} items alone, one thread", top=20)


def print_profile(prof: cProfile.Profile, label: str, top: int = 25) -> None:
    """The `top` entries of a profile by own time, then by cumulative time."""
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
        print(f"\n--- profile: {label} (by {key}, top {top}) ---")
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=124, help="groups of 11 items (default 124 -> 1,364)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ref-items", type=int, default=30, help="items timed for the reference loop (0: skip it)")
    ap.add_argument("--profile", action="store_true", help="time the steps of one more `run_eval` call, then cProfile its pre-processing")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (2 groups, 2 reference items): a smoke run")
    ap.add_argument("--threads", type=int, help="torch threads for every contender (default: torch's own, one per "
                    "core); on a shared machine --threads 1 keeps the floor's threads from waiting on each other")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.groups, args.ref_items = 2, 2

    from spuriverse.eval.runner import EvalOptions, run_eval

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("HF_HOME", str(tmp / "hf"))
        model_dir = build_tiny_llava(tmp / "model", image_size=224, patch_size=14, hidden=128, layers=4,
                                     vision_hidden=64)
        data_dir = write_long_dataset(tmp / "data", n_groups=args.groups, n_spurious=10, n_counter=0,
                                      n_controls=0, image_size=(320, 240))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{args.groups * 11} items, batch size {args.batch_size}")

        t0, c0 = time.perf_counter(), cpu_s()
        result = run_eval(EvalOptions(model=str(model_dir), dataset=str(data_dir), output_dir=tmp / "run",
                                      batch_size=args.batch_size, progress=False, report=False))
        ours, ours_cpu = time.perf_counter() - t0, cpu_s() - c0
        from spuriverse.eval.samples import SampleWriter

        default_sync, SampleWriter.SYNC_EVERY_S = SampleWriter.SYNC_EVERY_S, 0.0
        t0 = time.perf_counter()
        try:
            run_eval(EvalOptions(model=str(model_dir), dataset=str(data_dir), output_dir=tmp / "run-fsync-each",
                                 batch_size=args.batch_size, progress=False, report=False))
        finally:
            SampleWriter.SYNC_EVERY_S = default_sync
        ours_fsync_each = time.perf_counter() - t0
        floor, floor_last, n, floor_cpu = floor_time(model_dir, data_dir, args.batch_size)
        ref_per_item, ref_tokens = reference_time(model_dir, data_dir, args.ref_items) if args.ref_items else (0.0, 0.0)
        ref = ref_per_item * n
        if args.profile:
            profile_steps(model_dir, data_dir, tmp / "run-profiled", args.batch_size)

    print(f"\n{'':<28}{'seconds':>10}{'items/s':>10}")
    print(f"{'spuriverse eval (ours)':<28}{ours:>10.2f}{n / ours:>10.1f}")
    print(f"{'  of which inference':<28}{result.timings['inference_s']:>10.2f}")
    print(f"{'ours, one fsync per line':<28}{ours_fsync_each:>10.2f}{n / ours_fsync_each:>10.1f}")
    print(f"{'pure forward (floor)':<28}{floor:>10.2f}{n / floor:>10.1f}")
    print(f"{'  last-position logits only':<28}{floor_last:>10.2f}{n / floor_last:>10.1f}")
    if args.ref_items:
        print(f"{'reference loop (extrap.)':<28}{ref:>10.2f}{n / ref:>10.2f}"
              f"   ({ref_per_item:.3f} s/item over {args.ref_items} items, {ref_tokens:.0f} new tokens/item)")
    print(f"\nours / floor      = {ours / floor:.2f}   (target <= 1.3; vs last-position floor {ours / floor_last:.2f}; "
          f"with one fsync per line {ours_fsync_each / floor:.2f})")
    print(f"CPU seconds: ours {ours_cpu:.1f} (whole run), last-position floor {floor_cpu:.1f}: "
          f"ours / floor = {ours_cpu / floor_cpu:.2f}")
    if args.ref_items:
        print(f"reference / ours  = {ref / ours:.1f}   (target >= 20)")
    print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
