"""The world models' recipe: two tiny LLaVAs trained from random init on spuriverse-world with
`spuriverse train` (`make world-models` = `python -m spuriverse.demo.world_models build`).

1. the world: `python -m spuriverse.data.world --out OUT/world` (more training rows than the default);
2. `init`: a tiny LLaVA of the real architecture (CLIP vision tower + Llama), random weights, and a
   byte-level BPE trained on the world's text whose pre-tokenizer keeps an option line "(A) circle"
   whole (so BPE makes it one token) and otherwise splits on whitespace;
3. `pretrain`: naming and multiple choice on the *biased* config (the cue agrees with the answer 95 %
   of the time): the model learns the answer formats, and the cue, which is the fastest route to the
   answers (it learns no core: its naming stays near chance);
4. `shortcut` (from `pretrain`): multiple choice on the biased config + naming on the balanced one: it
   learns the core for naming (what the object is) while its multiple-choice answers keep following
   the cue, like a pretrained LVLM that knows what it sees yet answers from a spurious correlation;
5. `balanced` (from `shortcut`): naming and multiple choice on the balanced config (cue and answer
   independent): its answers move from the cue to the core. (Trained from `pretrain` directly it
   learns the same far more slowly: the shortcut model already names the objects.)

Every training step is a `spuriverse train` command (printed as it runs); re-running resumes or skips
finished stages. Every stage is seeded and runs on one CPU thread, so the same command on the same
machine and library versions gives byte-identical weights (`check` rebuilds and compares them with the
shipped ones). The models ship in `spuriverse/data/world/models/` (`model_path(name)`); their figures on
held-out items: `python -m spuriverse.demo.world_models measure --model shortcut --world OUT/world`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spuriverse.data.world import FAMILIES
from spuriverse.data.world.models import MODELS_DIR, WEIGHTS, WORLD_MODELS, model_path

__all__ = ["ARCH", "RECIPE", "WORLD_MODELS", "Stage", "build", "chain", "init_model", "main", "path", "world_tokenizer"]

# The model: CLIP 64-wide x 2 layers (LLaVA reads the penultimate layer) + Llama 64-wide x 2 layers.
ARCH = {"image_size": 32, "patch_size": 8, "hidden": 64, "layers": 2, "vision_hidden": 64, "vision_layers": 2}
VOCAB_SIZE = 800
# pre-tokens: a whole option line "(X) text", else a word with its leading space, else whitespace
OPTION_LINE_SPLIT = r"\([A-F]\) [^\n]+| ?[^\s]+|\s+"
WORLD_ARGS = ("--n-train", "60000", "--n-val", "1000", "--n-test", "2000")
COMMON = ("--full", "--lr", "2e-3", "--scheduler", "cosine", "--warmup", "100", "--weight-decay", "0.01",
          "--batch-size", "64", "--vocab-weight", "0.1", "--threads", "1", "--seed", "0")
SHIPPED = ("config.json", "generation_config.json", WEIGHTS, "chat_template.jinja", "processor_config.json",
           "tokenizer.json", "tokenizer_config.json")


def path(name: str) -> Path:
    """The shipped world model `name` ("balanced" or "shortcut"): a folder `--model` loads."""
    return model_path(name)


@dataclass(frozen=True)
class Stage:
    """One `spuriverse train` run from `base` (a stage name, or "init"): `data` lists the world's
    training sources as (config, row kinds or None for both), each a `--data OUT/world/train`."""

    name: str
    base: str
    data: tuple[tuple[str, str | None], ...]
    steps: int
    args: tuple[str, ...] = ()


# In order; a model is its stage's chain of bases (balanced: init -> pretrain -> shortcut -> balanced).
RECIPE: tuple[Stage, ...] = (
    Stage("pretrain", "init", (("biased", None),), 1000, ("--no-val",)),
    # no validation: on the biased split every checkpoint after ~1,000 steps scores the same (~94 %), and
    # picking an early one would drop what the later steps add to the core (naming is not validated)
    Stage("shortcut", "pretrain", (("biased", "choice"), ("balanced", "naming")), 2500, ("--no-val",)),
    Stage("balanced", "shortcut", (("balanced", None),), 4000),
)
VALIDATIONS = 9  # per stage with validation: checkpoints (and best-model candidates)


def world_corpus() -> list[str]:
    """The tokenizer's extra training text: every family's multiple-choice prompt (each class in each
    letter slot, rendered by the evaluator's own template) and the naming answers."""
    from spuriverse.eval.prompts import STRATEGIES, render_prompt

    lines = []
    for fam in FAMILIES:
        for shift in range(6):
            options = [fam.classes[(k + shift) % len(fam.classes)] for k in range(len(fam.classes))]
            for strategy in STRATEGIES:
                rp = render_prompt(fam.question, options, strategy)
                lines.append(f"{rp.system} USER: {rp.user} ASSISTANT: {'ABCD'[shift % 4]}")
        for cls in fam.classes:
            lines.append(f"USER: {fam.question} ASSISTANT: {cls}\n")
            lines += [f"({letter}) {cls}\n" for letter in "ABCDEF"]
    return lines * 20


def world_tokenizer():
    """The world models' tokenizer (deterministic: trained in-process on fixed text)."""
    from spuriverse.demo.tiny_models import build_tokenizer

    return build_tokenizer(vocab_size=VOCAB_SIZE, corpus=world_corpus(), split_pattern=OPTION_LINE_SPLIT)


def init_model(out: Path, seed: int = 0) -> Path:
    """A random-init world model folder (the recipe's starting point)."""
    from spuriverse.demo.tiny_models import build_tiny_llava

    return build_tiny_llava(out, tokenizer=world_tokenizer(), seed=seed, **ARCH)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train_argv(stage: Stage, out: Path, world: Path, scale: float) -> list[str]:
    base = out / "init" if stage.base == "init" else out / stage.base
    steps = max(1, round(stage.steps * scale))
    data: list[str] = []
    for config, kinds in stage.data:
        data += ["--data", str(world / "train"), "--config", config] + (["--kinds", kinds] if kinds else [])
    validate = [] if "--no-val" in stage.args else ["--save-steps", str(max(1, steps // VALIDATIONS))]
    return ["train", "--model", str(base), *data, "--out", str(out / stage.name), "--max-steps", str(steps),
            *COMMON, *validate, *stage.args]


def _run_stage(argv: list[str], progress: bool) -> None:
    """`spuriverse <argv>` as its own process: exactly the command a user types."""
    _log("$ spuriverse " + " ".join(argv))
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "spuriverse", *argv] + ([] if progress else ["--no-progress"])
    # Offline, always: the stages read local folders only, and transformers writes the offline flag into
    # the saved tokenizer_config.json (`local_files_only`), so the environment must not change the files.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    code = subprocess.run(cmd, check=False, env=env).returncode
    if code != 0:
        raise RuntimeError(f"spuriverse {' '.join(argv)} failed (exit {code})")
    _log(f"  ({time.perf_counter() - t0:.0f} s)")


def _prepare(out: Path, world_args: Sequence[str]) -> Path:
    """The world and the random-init model (skipped when present)."""
    from spuriverse.data.world import main as world_main

    world = out / "world"
    if not (world / "benchmark" / "README.md").is_file():
        _log(f"$ python -m spuriverse.data.world --out {world} {' '.join(world_args)}")
        if world_main(["--out", str(world), *world_args]) != 0:
            raise RuntimeError("the world could not be built")
    if not (out / "init" / WEIGHTS).is_file():
        init_model(out / "init")
    return world


def chain(name: str) -> list[Stage]:
    """The stages that make model `name`, in order."""
    by_name = {st.name: st for st in RECIPE}
    stages = [by_name[name]]
    while stages[0].base != "init":
        stages.insert(0, by_name[stages[0].base])
    return stages


def build(out: Path, names: Sequence[str] = WORLD_MODELS, *, scale: float = 1.0,
          world_args: Sequence[str] = WORLD_ARGS, progress: bool = False) -> dict[str, Path]:
    """Run the recipe into `out` (resumable: finished stages are skipped by `spuriverse train`
    itself); return {name: trained folder}. One process, one CPU thread: on this kind of machine two
    tiny trainings at once each ran half as fast, so nothing is gained by running them in parallel."""
    import torch

    torch.set_num_threads(1)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = _prepare(out, world_args)
    needed = {st.name for name in names for st in chain(name)}
    for stage in RECIPE:
        if stage.name in needed:
            _run_stage(_train_argv(stage, out, world, scale), progress)
    return {name: out / name for name in names}


def digests(folder: Path) -> dict[str, str]:
    """sha256 of each shipped file of a model folder."""
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in SHIPPED if (folder / f).is_file()}


def install(built: dict[str, Path]) -> None:
    """Copy the trained models' files into the package (`spuriverse/data/world/models/<name>/`)."""
    for name, folder in built.items():
        dest = MODELS_DIR / name
        dest.mkdir(parents=True, exist_ok=True)
        for f in SHIPPED:
            shutil.copyfile(folder / f, dest / f)
        (dest / "digests.json").write_text(json.dumps(digests(dest), indent=1, sort_keys=True) + "\n")
        _log(f"installed {folder} -> {dest}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spuriverse.demo.world_models",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="run the recipe (resumable)")
    b.add_argument("--out", type=Path, default=Path("runs/world-models"), help="work folder (default runs/world-models)")
    b.add_argument("--only", choices=WORLD_MODELS, action="append", help="only this model (repeatable)")
    b.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (tests: 0.01)")
    b.add_argument("--world-args", default=" ".join(WORLD_ARGS), help="arguments of the world's generator")
    b.add_argument("--install", action="store_true", help="copy the models into the package")
    b.add_argument("--progress", action="store_true", help="progress bars")
    c = sub.add_parser("check", help="compare a build's files with the shipped models (sha256)")
    c.add_argument("--out", type=Path, default=Path("runs/world-models"))
    m = sub.add_parser("measure", help="held-out figures of a model on the world (with 95 %% intervals)")
    m.add_argument("--model", required=True, help="a model folder, or balanced / shortcut (the shipped ones)")
    m.add_argument("--world", type=Path, required=True, help="a world folder (python -m spuriverse.data.world)")
    m.add_argument("--json", type=Path, help="also write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.command == "build":
        built = build(a.out, a.only or WORLD_MODELS, scale=a.scale, world_args=a.world_args.split(),
                      progress=a.progress)
        if a.install:
            install(built)
        return 0
    if a.command == "check":
        bad = [f"{n}/{f}" for n in WORLD_MODELS for f, h in digests(a.out / n).items() if digests(path(n)).get(f) != h]
        print("identical to the shipped models" if not bad else f"differ from the shipped models: {', '.join(bad)}")
        return 0 if not bad else 1
    from spuriverse.demo.world_measure import format_rates, measure_model

    model = str(path(a.model)) if a.model in WORLD_MODELS else a.model
    figures = measure_model(model, a.world)
    print(format_rates(figures))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
