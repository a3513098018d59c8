"""Throughput of the OpenAI-compatible backend against a fake server in another process.

The fake server (tests/helpers/fake_openai.py) answers every request after `--latency` seconds.
With `concurrency` requests in flight the ideal wall time is n * latency / concurrency; the
reported ratio wall / ideal measures the client-side overhead (target <= 1.3). Where that overhead
goes is measured, not guessed: the CPU seconds per request of the client (its event-loop thread, where
every request is built, sent and parsed, plus the calling thread) and of the server process, and with
`--profile` a cProfile of the client's event-loop thread.

    python bench/api_throughput.py [--n 1364] [--latency 0.1] [--concurrency 32] [--profile]
    python bench/api_throughput.py --quick   # tiny sizes: a smoke run of every code path
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from PIL import Image

from spuriverse.models.base import ImageInput, Request
from spuriverse.models.openai_api import OpenAIBackend

FAKE_SERVER = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "fake_openai.py"


def _png(i: int, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(buf, format="PNG")
    return buf.getvalue()


def make_requests(n: int) -> list[Request]:
    """n direct-prompt requests, each with its own small PNG."""
    return [
        Request(
            system="Answer with the letter of the correct option.",
            prompt=f"Question {i}: what is shown?\n(A) a cat\n(B) a dog\n(C) a bird\n(D) a fish\nAnswer:",
            image=ImageInput.from_bytes(_png(i)),
            letters=("A", "B", "C", "D"),
            max_new_tokens=8,
        )
        for i in range(n)
    ]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    """Start the fake server as a separate process; return it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SERVER), "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"fake server did not start (got {base_url!r})")
    return proc, base_url


def _in_loop(backend: OpenAIBackend, fn: Any) -> Any:
    """Run fn() on the backend's event-loop thread (where the client does its work) and return its value."""
    async def call() -> Any:
        return fn()
    return backend._submit(call()).result()  # noqa: SLF001 - the bench reaches into the client's thread


def by_package(prof: cProfile.Profile) -> list[tuple[str, float]]:
    """Own time of a profile summed by where the code lives: a site-packages distribution, spuriverse,
    the standard library module, or (built-ins) the kind of system call."""
    totals: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(prof).stats.items():
        if "site-packages/" in filename:
            where = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/spuriverse/" in filename:
            where = "spuriverse"
        elif filename == "~":  # a C function
            where = ("system calls (socket send/recv, epoll)" if any(k in func for k in ("socket", "epoll", "select"))
                     else "thread hand-off (queue put, locks)" if any(k in func for k in ("queue", "lock", "acquire"))
                     else "other built-ins")
        else:
            where = "stdlib " + Path(filename).parent.name if Path(filename).parent.name != "python3.11" else \
                "stdlib " + Path(filename).stem
        totals[where] = totals.get(where, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def run_bench(n: int = 1364, latency: float = 0.1, concurrency: int = 32,
              profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """Run n generate requests through OpenAIBackend; return timing figures, and the CPU seconds the
    client (event-loop thread + calling thread) and the server process spent."""
    requests = make_requests(n)
    proc, base_url = start_server(latency)
    server = psutil.Process(proc.pid)
    backend = OpenAIBackend("fake-model", base_url=base_url, api_key="bench-key", concurrency=concurrency)
    try:
        seen: set[int] = set()
        errors = 0
        loop_cpu0, main_cpu0, server_cpu0 = _in_loop(backend, time.thread_time), time.thread_time(), server.cpu_times()
        if profile is not None:
            _in_loop(backend, profile.enable)
        t0 = time.perf_counter()
        for pos, gen in backend.generate(requests):
            seen.add(pos)
            errors += gen.error is not None
        wall = time.perf_counter() - t0
        if profile is not None:
            _in_loop(backend, profile.disable)
        loop_cpu = _in_loop(backend, time.thread_time) - loop_cpu0
        main_cpu, server_cpu1 = time.thread_time() - main_cpu0, server.cpu_times()
    finally:
        backend.close()
        proc.terminate()
        proc.wait(timeout=10)
    server_cpu = (server_cpu1.user + server_cpu1.system) - (server_cpu0.user + server_cpu0.system)
    if len(seen) != n:
        raise RuntimeError(f"only {len(seen)} of {n} positions came back")
    ideal = n * latency / concurrency
    return {
        "n": n,
        "latency_s": latency,
        "concurrency": concurrency,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal if ideal else float("nan"),
        "requests_per_s": n / wall,
        "errors": errors,
        "client_cpu_ms": 1000 * (loop_cpu + main_cpu) / n,
        "loop_cpu_ms": 1000 * loop_cpu / n,
        "server_cpu_ms": 1000 * server_cpu / n,
    }


def run_eval_bench(n_groups: int = 124, latency: float = 0.1, concurrency: int = 32,
                   sync_every_s: float | None = None) -> dict[str, Any]:
    """The same server behind the whole runner: `run_eval` over a benchmark of n_groups x 11 items
    (dataset streaming, prompts, parsing, one durable sample line per answer, scoring). `sync_every_s`
    overrides how the sample writer groups its fsyncs (0: one fsync per sample line)."""
    import tempfile

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.bench_data import write_long_dataset

    from spuriverse.eval.runner import EvalOptions, run_eval
    from spuriverse.eval.samples import SampleWriter

    default_sync = SampleWriter.SYNC_EVERY_S
    if sync_every_s is not None:
        SampleWriter.SYNC_EVERY_S = sync_every_s
    proc, base_url = start_server(latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = write_long_dataset(Path(tmp) / "data", n_groups=n_groups, n_spurious=10, n_counter=0,
                                      n_controls=0, image_size=(64, 48))
            result = run_eval(EvalOptions(
                model="openai:fake-model", dataset=str(data), output_dir=Path(tmp) / "run", progress=False,
                report=False, n_bootstrap=1000,
                backend_options={"base_url": base_url, "api_key": "bench-key", "concurrency": concurrency},
            ))
    finally:
        SampleWriter.SYNC_EVERY_S = default_sync
        proc.terminate()
        proc.wait(timeout=10)
    assert result is not None
    n = result.failures.n_samples
    ideal = n * latency / concurrency
    return {"n": n, "inference_s": result.timings["inference_s"], "total_s": result.timings["total_s"],
            "ideal_s": ideal, "ratio": result.timings["inference_s"] / ideal, "failed": result.failures.n_failed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1364, help="number of requests (default 1364)")
    p.add_argument("--latency", type=float, default=0.1, help="server latency per request in seconds")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--quick", action="store_true", help="tiny sizes (22 requests, 10 ms latency, 4 in flight)")
    p.add_argument("--profile", action="store_true", help="cProfile the client's event-loop thread during the run")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.latency, args.concurrency = 22, 0.01, 4
    prof = cProfile.Profile() if args.profile else None
    r = run_bench(args.n, args.latency, args.concurrency, prof)
    print(f"N            {r['n']}")
    print(f"wall         {r['wall_s']:.2f} s")
    print(f"ideal        {r['ideal_s']:.2f} s  (N x {r['latency_s']} / {r['concurrency']})")
    print(f"ratio        {r['ratio']:.2f}  (target <= 1.3)")
    print(f"requests/s   {r['requests_per_s']:.1f}")
    print(f"errors       {r['errors']}")
    print(f"CPU/request  client {r['client_cpu_ms']:.2f} ms (event loop {r['loop_cpu_ms']:.2f}), "
          f"server {r['server_cpu_ms']:.2f} ms; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if prof is not None:
        total = sum(t for _, t in by_package(prof))
        print("\n--- client event-loop thread, own time by where the code lives ---")
        for where, t in by_package(prof)[:14]:
            print(f"{where:<44}{t:8.2f} s  {100 * t / total:5.1f} %  ({1000 * t / r['n']:.2f} ms/request)")
        for key in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(20)
            print(f"\n--- profile of the client's event-loop thread (by {key}) ---")
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))
    failed = 0
    for label, sync in (("sample fsyncs grouped (the default)", None), ("one fsync per sample line", 0.0)):
        e = run_eval_bench(max(1, args.n // 11), args.latency, args.concurrency, sync)
        failed += e["failed"]
        print(f"\nthrough run_eval, {label} ({e['n']} items: streaming, prompts, parsing, sample lines, scoring)")
        print(f"inference    {e['inference_s']:.2f} s  (whole run {e['total_s']:.2f} s)")
        print(f"ratio        {e['ratio']:.2f}  (inference / ideal {e['ideal_s']:.2f} s)")
        print(f"failed       {e['failed']}")
    return 0 if r["errors"] == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
