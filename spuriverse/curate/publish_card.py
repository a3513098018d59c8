"""The README.md of a published benchmark: YAML front matter (licence, configs, features, splits,
generated like spuriverse-mini's), the hand-written card from `data_cards/NAME.md`, then generated
sections: how the items were selected, the kept correlations, and the provenance of every image."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Template

from spuriverse.schema import SynthProvenance, Verification
from spuriverse.templating import Markup, markdown_environment

REPO_CARDS = Path(__file__).resolve().parents[2] / "data_cards"


class CardMissing(FileNotFoundError):
    pass


def find_card(name: str, card: Path | None) -> Path:
    """`--card`, else data_cards/NAME.md (in the working directory, then in this checkout)."""
    tried = [Path(card)] if card is not None else [Path("data_cards") / f"{name}.md", REPO_CARDS / f"{name}.md"]
    for p in tried:
        if p.is_file():
            return p
    raise CardMissing(
        f"no data card for {name!r} (looked for {', '.join(map(str, tried))}). Write one first: what the "
        "benchmark is for, where its images come from, its licence and its limits (see "
        "data_cards/spuriverse-mini.md); publish adds the front matter, selection and provenance sections.")


@dataclass
class ConfigInfo:
    """One config of the dataset folder: its features and what its parquet file holds."""

    name: str
    path_glob: str
    features: Any
    n_rows: int
    num_bytes: int
    download_size: int


@dataclass
class Selection:
    """What the generated 'Selection' section reports."""

    n_accepted: int
    verifications: list[Verification] | None  # None: --unverified
    kept: list[str]
    judges: Counter
    counts: dict[str, int]
    controls: dict[str, Any] | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def front_matter(name: str, configs: list[ConfigInfo], license_id: str) -> str:
    import yaml
    from datasets import DatasetInfo, SplitDict, SplitInfo

    infos = []
    for c in configs:
        splits = SplitDict()
        splits.add(SplitInfo(name="test", num_bytes=c.num_bytes, num_examples=c.n_rows))
        info = DatasetInfo(features=c.features, splits=splits, download_size=c.download_size,
                           dataset_size=c.num_bytes)._to_yaml_dict()
        infos.append({"config_name": c.name, **info})
    n = configs[0].n_rows
    meta = {
        "pretty_name": name,
        "license": license_id,
        "language": ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["spurious-correlations", "multiple-choice", "vision-language", "counterfactual", "spuriverse"],
        "size_categories": ["n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K"],
        "configs": [{"config_name": c.name, **({"default": True} if c.name == "default" else {}),
                     "data_files": [{"split": "test", "path": c.path_glob}]} for c in configs],
        # datasets writes a single config as a mapping, several as a list
        "dataset_info": ({k: v for k, v in infos[0].items() if k != "config_name"} if len(infos) == 1 else infos),
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _cell(text: Any) -> str:
    """A value made safe for one markdown table cell (or line)."""
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> Markup:
    """An inline code span (safe in a table cell too: its pipes are escaped)."""
    return Markup("`" + _cell(text).replace("`", "'") + "`")


@cache
def _templates() -> tuple[Template, Template]:
    env = markdown_environment("spuriverse.curate", _cell)
    env.filters["code"] = _code
    return env.get_template("selection.md.j2"), env.get_template("provenance.md.j2")


def _gap(g: Any) -> str:
    ci = f" [{g.ci_low:+.2f}, {g.ci_high:+.2f}]" if g.ci_low is not None else ""
    return "–" if g.gap is None else f"{g.gap:+.2f}{ci} (n={g.n_spurious}/{g.n_counter})"


def selection_section(sel: Selection) -> str:
    """The generated "Selection" section (templates/selection.md.j2)."""
    v0 = sel.verifications[0] if sel.verifications else None
    kept = [(v.candidate_id, sel.attributes.get(v.candidate_id), [_gap(g) for g in v.per_model])
            for v in sel.verifications or [] if v.kept]
    return _templates()[0].render(
        sel=sel, v0=v0, judges=sorted(sel.judges.items()), n_items=sum(sel.counts.values()),
        counts=[(v, n) for v, n in sel.counts.items() if n], c=sel.controls, kept_rows=kept,
        kept_table=sel.verifications is not None and bool(sel.kept))


def provenance_section(items: list[tuple[str, SynthProvenance]], anchors: int) -> str:
    """The generated "Provenance" section (templates/provenance.md.j2)."""
    rows = []
    for item_id, p in items:
        mask = (p.mask_sha256[:12] if p.mask_sha256 else "") + (f" {list(p.mask_box)}" if p.mask_box else "")
        rows.append((item_id, p, p.model_id + (f"@{p.model_revision}" if p.model_revision else ""), mask.strip()))
    return _templates()[1].render(rows=rows, anchors=anchors)


def environment() -> dict[str, str]:
    import datasets
    import pyarrow

    import spuriverse

    return {"spuriverse": spuriverse.__version__, "datasets": datasets.__version__, "pyarrow": pyarrow.__version__}


def card_text(card: Path, name: str, configs: list[ConfigInfo], sel: Selection,
              provenance: list[tuple[str, SynthProvenance]], n_anchors: int, license_id: str) -> str:
    body = card.read_text(encoding="utf-8")
    if body.startswith("---\n"):  # a front matter in the source card is replaced by the generated one
        body = body.split("\n---\n", 1)[1] if "\n---\n" in body else ""
    env = json.dumps(environment(), sort_keys=True)
    return (front_matter(name, configs, license_id) + "\n" + body.strip("\n") + "\n\n"
            + selection_section(sel) + "\n" + provenance_section(provenance, n_anchors) + "\n"
            + f"<!-- build-environment: {env} -->\n")
