"""Source presets: the known layouts of a source benchmark, one registry for every stage that reads one.

A preset names a source (A-OKVQA, SEED-Bench, ...) and says how to read it in either of two forms:

- `dataset`: a `ColumnMapping` for the benchmark itself, read through `datasets` when a model is run
  over it (`curate mine --source S --model M`; `--map` overrides fields of it);
- `predictions`: a `PredictionLayout` for a table of a model's precomputed answers (and a judge's
  verdicts) on it, such as the reference's meta CSVs (`curate mine --predictions`, `curate judge
  --verdicts`).

A preset has either form or both. A new preset is one `register_source_preset` call; the CLI's
`--preset` choices and help come from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spuriverse.schema import LETTERS, ColumnMapping

__all__ = ["SOURCE_PRESETS", "PredictionLayout", "SourcePreset", "dataset_mapping", "prediction_layout",
           "preset_names", "register_source_preset"]

Use = Literal["dataset", "predictions"]


@dataclass(frozen=True)
class PredictionLayout:
    """How to read one predictions table (column names; missing optional columns are simply not used).

    Options come from ``options_column`` (a JSON list of strings) when the table has it, else from the
    ``option_columns`` (letters in order) that the table has. The question id is ``id_column``; with
    ``hash_question_id`` it is ``f"{id}-{sha1(question, options)[:8]}"`` (for non-unique ids).
    ``image_template`` (``str.format`` over the row's columns) gives the anchor image path relative
    to the curation folder -- where a fetch step is expected to put it; the images are not part of
    the prediction tables. ``image_column`` (a path as is) wins when the table has it.
    """

    question: str = "question"
    answer: str = "answer"
    option_columns: tuple[str, ...] = tuple(LETTERS[:4])
    options_column: str | None = None
    drop_trailing_empty: bool = False
    id_column: str = "index"
    hash_question_id: bool = False
    image_column: str | None = None
    image_template: str | None = None
    category_column: str | None = None
    prediction: str = "prediction"
    reference_parsed: str | None = "parsed"
    verdict: str = "spuriousAttr"


@dataclass(frozen=True)
class SourcePreset:
    name: str
    help: str
    dataset: ColumnMapping | None = None
    predictions: PredictionLayout | None = None

    def layout(self, use: Use) -> ColumnMapping | PredictionLayout | None:
        return self.dataset if use == "dataset" else self.predictions


SOURCE_PRESETS: dict[str, SourcePreset] = {}


def register_source_preset(preset: SourcePreset) -> SourcePreset:
    if preset.name in SOURCE_PRESETS:
        raise ValueError(f"source preset {preset.name!r} is already registered")
    if preset.dataset is None and preset.predictions is None:
        raise ValueError(f"source preset {preset.name!r} has neither a dataset mapping nor a predictions layout")
    SOURCE_PRESETS[preset.name] = preset
    return preset


def preset_names(use: Use) -> list[str]:
    """The presets that can read a source in form `use`, in registration order."""
    return [name for name, p in SOURCE_PRESETS.items() if p.layout(use) is not None]


def _get(name: str, use: Use) -> SourcePreset:
    p = SOURCE_PRESETS.get(name)
    if p is None or p.layout(use) is None:
        what = "source preset" if use == "dataset" else "preset"
        raise ValueError(f"unknown {what} {name!r} (known: {', '.join(preset_names(use))})")
    return p


def dataset_mapping(name: str) -> ColumnMapping:
    """The column mapping of preset `name` (ValueError naming the known ones)."""
    mapping = _get(name, "dataset").dataset
    assert mapping is not None
    return mapping


def prediction_layout(name: str) -> PredictionLayout:
    """The predictions-table layout of preset `name` (ValueError naming the known ones)."""
    layout = _get(name, "predictions").predictions
    assert layout is not None
    return layout


# index = COCO image id (not unique): hashed with question + options (see spuriverse.curate.mine).
register_source_preset(SourcePreset(
    "aokvqa", "A-OKVQA (HuggingFaceM4/A-OKVQA; use --split validation: test has no answers)",
    dataset=ColumnMapping(question_id="question_id", question="question", options="choices", option_columns=[],
                          answer="correct_choice_idx", answer_format="index", image="image", category=None),
    predictions=PredictionLayout(hash_question_id=True, image_template="sources/coco/train2017/{index:0>12}.jpg"),
))
# lmms-lab/SEED-Bench: choice_a..choice_d, a letter answer; `image` is a list (video items hold several
# frames: the first is used); the category is the question type.
register_source_preset(SourcePreset(
    "seedbench", "SEED-Bench (lmms-lab/SEED-Bench)",
    dataset=ColumnMapping(question_id="question_id", question="question", options=None,
                          option_columns=["choice_a", "choice_b", "choice_c", "choice_d"], answer="answer",
                          answer_format="letter", image="image", category="question_type_id"),
    predictions=PredictionLayout(category_column="category", image_template="sources/seedbench/{index}.jpg"),
))
# The image_path column holds the authors' absolute paths: not used. Always 2 options (C/D are empty
# padding); 8 rows have an empty A/B cell: kept as "(empty)".
register_source_preset(SourcePreset(
    "naturalbench", "NaturalBench (predictions tables only)",
    predictions=PredictionLayout(option_columns=tuple(LETTERS[:2]), category_column="type",
                                 image_template="sources/naturalbench/{index}.jpg"),
))
# Dataset: question_id, question, options (list) or A..F, answer (letter / index / option text), image,
# category. Predictions: question_id, question, options (JSON list) or A..F, answer (letter), prediction,
# optional image (path relative to the curation folder), category, parsed, spuriousAttr.
register_source_preset(SourcePreset(
    "generic", "any table with the generic column names",
    dataset=ColumnMapping(),
    predictions=PredictionLayout(option_columns=tuple(LETTERS), options_column="options", drop_trailing_empty=True,
                                 id_column="question_id", image_column="image", category_column="category"),
))
