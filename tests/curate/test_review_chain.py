"""Review (scripted --auto-accept) and the curation chain available so far: mine -> judge -> review -> synth."""

from __future__ import annotations

from pathlib import Path

from spuriverse.data.curation import accepted_candidates, read_jsonl
from spuriverse.persist import append_jsonl
from spuriverse.curate.review import auto_accept
from spuriverse.cli import main
from spuriverse.schema import Judgment, ReviewDecision, SynthProvenance

TABLE = (
    "index,answer,question,A,B,C,D,category,prediction,parsed,spuriousAttr,isSpurious,isError\n"
    "11,A,What is the man waiting for?,a cab,a train,a bus,a plane,Scene,(C) a bus,C,Yes: the bags,True,True\n"
    "12,B,What sport is this?,golf,tennis,polo,ski,Scene,(A) golf,A,Yes: the grass,True,True\n"
    "13,C,What colour is the car?,red,blue,green,black,Attr,(A) red,A,No,False,True\n"
    "14,D,How many dogs?,One,Two,Three,Four,Count,(D) Four,D,,False,False\n"
)


def test_auto_accept_takes_only_what_a_reviewer_could_accept(tmp_path):
    build = tmp_path / "b"
    table = tmp_path / "meta.csv"
    table.write_text(TABLE)
    assert main(["curate", "mine", "--predictions", str(table), "--preset", "seedbench", "--out", str(build)]) == 0
    assert main(["curate", "judge", str(build), "--verdicts", str(table), "--preset", "seedbench"]) == 0
    # the reference's verdicts carry no scene descriptions: nothing to synthesize, nothing accepted
    assert auto_accept(build) == {"accepted": 0, "already_reviewed": 0, "not_spurious": 1, "no_descriptions": 2}
    # an LLM judge (or a person) supplies descriptions for one candidate
    judged = {j.candidate_id: j for j in read_jsonl(build / "judgments.jsonl", Judgment)}
    cid = sorted(c for c, j in judged.items() if j.spurious)[0]
    append_jsonl(build / "judgments.jsonl", judged[cid].model_copy(update={
        "positive": "a man at a curb with many suitcases", "negative": "a man at a curb", "spurious_attributes":
        ["suitcases"]}))
    assert auto_accept(build)["accepted"] == 1
    assert auto_accept(build) == {"accepted": 0, "already_reviewed": 1, "not_spurious": 1, "no_descriptions": 1}
    [decision] = list(read_jsonl(build / "reviews.jsonl", ReviewDecision))
    assert decision.candidate_id == cid and decision.reviewer == "auto-accept"
    [cand] = accepted_candidates(build)
    assert cand.positive.endswith("suitcases") and cand.options == ["a cab", "a train", "a bus", "a plane"]


def test_mine_judge_review_synth_chain(tmp_path, tiny_sd, capsys):
    build = tmp_path / "b"
    table = tmp_path / "meta.csv"
    table.write_text(TABLE)
    main(["curate", "mine", "--predictions", str(table), "--preset", "seedbench", "--out", str(build)])
    main(["curate", "judge", str(build), "--verdicts", str(table), "--preset", "seedbench"])
    for j in list(read_jsonl(build / "judgments.jsonl", Judgment)):
        if j.spurious:
            append_jsonl(build / "judgments.jsonl", j.model_copy(update={"positive": f"{j.rationale} scene",
                                                                         "negative": "plain scene"}))
    assert main(["curate", "review", str(build), "--auto-accept"]) == 0
    assert main(["synth", str(build), "--backend", "text2img", "--model", str(tiny_sd), "--n", "2",
                 "--width", "64", "--height", "64", "--steps", "2", "--no-progress"]) == 0
    assert "made 8, skipped 0 existing, refused 0, failed 0" in capsys.readouterr().out
    provs = [SynthProvenance.model_validate_json(p.read_text()) for p in Path(build, "images").rglob("*.json")]
    assert len(provs) == 8 and {p.status for p in provs} == {"ok"}


def test_auto_accept_killed_mid_write_then_rerun_gives_the_same_decisions(tmp_path):
    """What SIGKILL can leave (the first decisions, then half a line) is repaired by the re-run, which
    appends the rest in the same order: the same decisions as one run (only wall-clock timestamps differ)."""
    from helpers.curate_data import make_curation_dir

    def build(name: str) -> Path:
        b = make_curation_dir(tmp_path / name, n=3)
        (b / "reviews.jsonl").unlink()  # judged, nobody decided yet
        return b

    def decisions(b: Path) -> list[dict]:
        return [r.model_dump(exclude={"timestamp"}) for r in read_jsonl(b / "reviews.jsonl", ReviewDecision)]

    whole, killed = build("whole"), build("killed")
    assert auto_accept(whole)["accepted"] == 3
    auto_accept(killed)
    lines = (killed / "reviews.jsonl").read_bytes().splitlines(keepends=True)
    (killed / "reviews.jsonl").write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])
    assert auto_accept(killed) == {"accepted": 2, "already_reviewed": 1, "not_spurious": 0, "no_descriptions": 0}
    assert decisions(killed) == decisions(whole) and len(decisions(whole)) == 3
