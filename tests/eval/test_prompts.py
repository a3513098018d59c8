"""Rendered prompts are snapshot-tested: a changed word is a deliberate, reviewed change.

Regenerate after an intended change with `SPURIVERSE_UPDATE_SNAPSHOTS=1 make test` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spuriverse.eval.prompts import STRATEGIES, get_template, render_prompt, rotate_options

SNAP = Path(__file__).parent / "snapshots"
CASES = {
    2: ("Is the squirrel climbing up the fence?", ["Yes", "No"]),
    4: ("What is the man by the bags awaiting?", ["skateboarder", "train", "delivery", "cab"]),
    6: ("Which sport is shown?", ["tennis", "golf", "surfing", "skiing", "rugby", "polo"]),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("n", sorted(CASES))
def test_rendered_prompt_matches_snapshot(strategy, n):
    q, opts = CASES[n]
    rp = render_prompt(q, opts, strategy)
    text = f"hash: {rp.template_hash}\nletters: {','.join(rp.letters)}\n--- system\n{rp.system}\n--- user\n{rp.user}\n"
    path = SNAP / f"{strategy}_{n}opt.txt"
    if os.environ.get("SPURIVERSE_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path.name}; run with SPURIVERSE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8")


def test_two_option_items_show_two_options_only():
    rp = render_prompt("Is it red?", ["Yes", "No"], "direct")
    assert "(C)" not in rp.user and "nan" not in rp.user
    assert rp.letters == ("A", "B") and "(A, B)" in rp.user


def test_template_hashes_differ_per_strategy_and_are_stable():
    hashes = {s: get_template(s).hash for s in STRATEGIES}
    assert len(set(hashes.values())) == len(STRATEGIES)
    assert all(len(h) == 16 for h in hashes.values())


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy 'zero'"):
        get_template("zero")


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_rotations_keep_the_answer_text(n):
    opts = [f"opt{i}" for i in range(n)]
    for answer_idx in range(n):
        answer = "ABCDEF"[answer_idx]
        for r in range(n):
            rotated, new = rotate_options(opts, answer, r)
            assert sorted(rotated) == sorted(opts)
            assert rotated["ABCDEF".index(new)] == opts[answer_idx]
        # every rotation puts the answer at a different letter: position bias cannot help
        assert len({rotate_options(opts, answer, r)[1] for r in range(n)}) == n
