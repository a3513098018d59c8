"""20 `spuriverse submit` processes at once on one board: every one lands, nothing is lost or torn.

The 20 runs are copies of one valid frequent-baseline run that differ only in `model.alias`
(model-00 .. model-19): the alias changes neither samples nor metrics, so each stays valid, and
it changes the configuration key, so each gets its own slug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from leaderboard_helpers import mutate_run

from spuriverse.schema import Leaderboard

REPO = Path(__file__).resolve().parents[2]
N = 20


def test_twenty_concurrent_submits_all_land(world, frequent_run):
    runs = [mutate_run(frequent_run, world.runs / f"model-{i:02d}",
                       lambda r, s, i=i: r["model"].update(alias=f"model-{i:02d}"))
            for i in range(N)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "spuriverse", "submit", str(run), "--leaderboard-dir",
                               str(world.leaderboards)], env=env, cwd=world.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for run in runs]
    outs = [p.communicate(timeout=120) for p in procs]
    elapsed = time.perf_counter() - t0
    failed = [(i, p.returncode, err[-2000:]) for i, (p, (_, err)) in enumerate(zip(procs, outs)) if p.returncode]
    assert not failed, f"submits failed: {failed}"
    assert all(out.startswith("added: model-") for out, _ in outs), [o for o, _ in outs]

    board = Leaderboard.model_validate_json((world.board / "leaderboard.json").read_text("utf-8"))
    slugs = [e.slug for e in board.entries]
    assert len(slugs) == N + 2 and len(set(slugs)) == N + 2
    assert sum(e.baseline for e in board.entries) == 2
    assert {e.model for e in board.entries if not e.baseline} == {f"model-{i:02d}" for i in range(N)}
    # ranked as a whole: each entry is tested against the next one down, the last against none
    assert [e.vs_next.other for e in board.entries[:-1]] == slugs[1:] and board.entries[-1].vs_next is None

    subs = world.board / "submissions"
    assert sorted(p.name for p in subs.iterdir()) == sorted(slugs)
    for slug in slugs:
        assert {p.name for p in (subs / slug).iterdir()} == {"results.json", "samples.jsonl.gz", "outcomes.json"}
        json.loads((subs / slug / "results.json").read_text("utf-8"))
        assert len(json.loads((subs / slug / "outcomes.json").read_text())) == 24  # anchor + spurious items
    leftovers = [str(p) for p in world.leaderboards.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    # the pages were rendered from the final board (the last writer saw every entry)
    html = (world.board / "index.html").read_text("utf-8")
    readme = (world.board / "README.md").read_text("utf-8")
    for i in range(N):
        assert f"model-{i:02d}" in html and f"model-{i:02d}" in readme
    assert elapsed < 90, f"{N} concurrent submits took {elapsed:.1f} s"
