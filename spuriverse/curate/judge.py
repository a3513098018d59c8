"""Stage 2 of curation: an LLM judge's verdict on every error -> ``judgments.jsonl``.

For each `ErrorRecord` of ``errors.jsonl`` the judge (a `JudgeBackend` of `spuriverse.curate.judges`: an
OpenAI-compatible endpoint or a local HF model) gets one request: the anchor image, the question, the options, the model's wrong
choice and the right answer (prompt: ``templates/judge.toml``), and must answer a `JudgeOutput`
(spurious yes/no, rationale, core and top-2 spurious attributes, positive/negative scene lines).

- **Bookkeeping.** Every finished verdict is appended durably at once (`append_jsonl`): a killed run
  loses only the requests in flight. A failed verdict (API fault after retries, invalid output after
  retries, missing image) is recorded too, with ``spurious=None`` and ``error``. At the end the file is
  rewritten atomically in a canonical order (stable sort by candidate id, so the last line per
  candidate still wins and earlier judges' lines are kept): a killed and resumed run leaves the same
  bytes as an uninterrupted one.
- **Cache.** A candidate whose latest judgment has the same judge and ``prompt_hash`` and a verdict
  (``spurious`` not None) is skipped; failed ones are asked again. Another judge or another prompt
  template (another hash) judges again and appends; the last line wins.
- **Missing anchor image** (no ``image``, file absent or not decodable): by default no request is made
  and a failure is recorded ("fail": the protocol's judge must see the image; a re-run after fetching
  the images retries it). ``missing_image="text"`` sends the text alone, with the template's
  ``no_image_note``.
- ``judge_summary.json``: counts, tokens, judge, prompt hash and seconds of the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from spuriverse.curate.judge_backends import judge_schema
from spuriverse.curate.judges import JudgeBackend, JudgeRequest, JudgeResult
from spuriverse.data.curation import ERRORS, JUDGMENTS, read_jsonl
from spuriverse.eval.prompts import format_option, format_options
from spuriverse.models.base import ImageDecodeError, ImageInput
from spuriverse.persist import append_jsonl, atomic_write_jsonl, atomic_write_text
from spuriverse.schema import ErrorRecord, JudgeSummary, Judgment, letters_for
from spuriverse.locking import locks_folder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ERRORS", "JUDGE_SUMMARY", "JUDGMENTS", "JudgeSummary", "JudgeTemplate", "canonicalize_judgments",
           "judge_errors", "load_template", "render_prompt"]

JUDGE_SUMMARY = "judge_summary.json"


@dataclass(frozen=True)
class JudgeTemplate:
    version: int
    system: str
    user: str
    no_image_note: str

    @property
    def hash(self) -> str:
        """sha256 of the template text and the response schema (not of any item); 16 hex digits."""
        schema = json.dumps(judge_schema(), sort_keys=True)
        blob = "\x00".join([f"judge v{self.version}", self.system, self.user, self.no_image_note, schema])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@cache
def load_template() -> JudgeTemplate:
    text = resources.files("spuriverse.curate").joinpath("templates/judge.toml").read_text("utf-8")
    t = tomllib.loads(text)
    return JudgeTemplate(int(t["version"]), t["system"].strip(), t["user"].strip(), t["no_image_note"].strip())


def _choice(letter: str | None, options: list[str]) -> str | None:
    letters = letters_for(len(options))
    if letter in letters:
        return format_option(letter, options[letters.index(letter)])
    return None


def render_prompt(err: ErrorRecord, template: JudgeTemplate | None = None, *, image: bool = True) -> tuple[str, str]:
    """(system, user) text of the judge's request for one error."""
    t = template or load_template()
    options = format_options(err.options)
    answer = _choice(err.answer, err.options) or err.answer
    prediction = _choice(err.prediction, err.options)
    if prediction is None:
        raw = (err.raw or err.prediction or "").strip().replace("\n", " ")
        prediction = f"an answer matching none of the options: {raw[:300]!r}" if raw else "no answer"
    user = t.user.format(question=err.question.strip(), options=options, answer=answer, prediction=prediction)
    return t.system, user if image else f"{user}\n\n{t.no_image_note}"


def canonicalize_judgments(path: Path) -> None:
    """Rewrite ``judgments.jsonl`` atomically, stably sorted by candidate id (last line still wins)."""
    records = list(read_jsonl(path, Judgment))
    if not records and not path.exists():
        return
    records.sort(key=lambda j: j.candidate_id)
    atomic_write_jsonl(path, records)


def _load_image(curation_dir: Path, err: ErrorRecord, keep_pixels: bool) -> tuple[ImageInput | None, str | None]:
    if not err.image:
        return None, "the error has no anchor image"
    path = curation_dir / err.image
    try:
        return ImageInput.from_bytes(path.read_bytes(), keep_pixels=keep_pixels), None
    except FileNotFoundError:
        return None, f"anchor image not found: {err.image}"
    except (OSError, ImageDecodeError) as exc:
        return None, f"anchor image unreadable: {err.image} ({exc})"


def _judgment(cid: str, judge: str, prompt_hash: str, res: JudgeResult) -> Judgment:
    if res.output is None:
        return Judgment(candidate_id=cid, judge=judge, prompt_hash=prompt_hash, spurious=None,
                        error=res.error or "no verdict", attempts=res.attempts, usage=res.usage)
    o = res.output
    return Judgment(candidate_id=cid, judge=judge, prompt_hash=prompt_hash, spurious=o.spurious, rationale=o.rationale,
                    core_attributes=o.core_attributes, spurious_attributes=o.spurious_attributes,
                    positive=o.positive, negative=o.negative, attempts=res.attempts, usage=res.usage)


async def _judge_one(curation_dir: Path, err: ErrorRecord, backend: JudgeBackend, template: JudgeTemplate,
                     missing_image: str) -> JudgeResult:
    image, problem = _load_image(curation_dir, err, keep_pixels=backend.needs_pixels)
    if problem is not None and missing_image == "fail":
        return JudgeResult(error=f"{problem} (not sent; --missing-image text sends the text alone)")
    system, user = render_prompt(err, template, image=image is not None)
    try:
        return await backend.ask(JudgeRequest(err.candidate_id, system, user, image))
    except Exception as exc:  # a bug or an unexpected client error must not lose the other verdicts
        return JudgeResult(error=f"judge error: {type(exc).__name__}: {str(exc)[:300]}", attempts=1)


async def _run(curation_dir: Path, todo: list[ErrorRecord], backend: JudgeBackend, template: JudgeTemplate,
               judge: str, concurrency: int, missing_image: str, progress: bool, summary: JudgeSummary) -> None:
    sem = asyncio.Semaphore(concurrency)
    path = curation_dir / JUDGMENTS
    bar = tqdm(total=len(todo), disable=not progress, desc="judge", unit="err")

    async def one(err: ErrorRecord) -> None:
        async with sem:
            res = await _judge_one(curation_dir, err, backend, template, missing_image)
        j = _judgment(err.candidate_id, judge, template.hash, res)
        append_jsonl(path, j)
        summary.requests += j.attempts
        if res.mode is not None:
            summary.output_modes[res.mode] = summary.output_modes.get(res.mode, 0) + 1
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            setattr(summary, key, getattr(summary, key) + (j.usage or {}).get(key, 0))
        if j.spurious is None:
            summary.failed += 1
        else:
            summary.judged += 1
        bar.update()

    await backend.open()
    try:
        await asyncio.gather(*(one(e) for e in todo))
    finally:
        bar.close()
        await backend.aclose()


@locks_folder("curation_dir", stage="curate judge")
def judge_errors(curation_dir: str | Path, backend: JudgeBackend, *, concurrency: int = 8,
                 missing_image: str = "fail", limit: int | None = None, progress: bool = True,
                 template: JudgeTemplate | None = None) -> JudgeSummary:
    """Judge every error of ``curation_dir/errors.jsonl`` not judged yet by `backend` with this prompt.

    `backend`: a `JudgeBackend` (`spuriverse.curate.judges.make_judge`, or `OpenAIJudge` / `HFJudge`). At most `concurrency` requests in flight; `limit` caps the
    candidates asked in this run (in candidate-id order). Writes ``judgments.jsonl`` and
    ``judge_summary.json``; returns the summary.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if missing_image not in ("fail", "text"):
        raise ValueError("missing_image must be 'fail' or 'text'")
    curation_dir = Path(curation_dir)
    if not (curation_dir / ERRORS).exists():
        raise FileNotFoundError(f"{curation_dir / ERRORS} not found: run `spuriverse curate mine` first")
    t0 = time.perf_counter()
    template = template or load_template()
    judge, phash = backend.name, template.hash
    errors = {e.candidate_id: e for e in read_jsonl(curation_dir / ERRORS, ErrorRecord)}
    path = curation_dir / JUDGMENTS

    def current() -> dict[str, Judgment]:
        return {j.candidate_id: j for j in read_jsonl(path, Judgment)}

    def done(j: Judgment | None) -> bool:
        return j is not None and j.judge == judge and j.prompt_hash == phash and j.spurious is not None

    latest = current()
    summary = JudgeSummary(judge=judge, prompt_hash=phash, errors=len(errors))
    todo = [errors[c] for c in sorted(errors) if not done(latest.get(c))]
    summary.cached = len(errors) - len(todo)
    if limit is not None and len(todo) > limit:
        summary.not_attempted, todo = len(todo) - limit, todo[:limit]
    if todo:
        asyncio.run(_run(curation_dir, todo, backend, template, judge, concurrency, missing_image, progress, summary))
    canonicalize_judgments(path)
    latest = current()
    summary.spurious = sum(1 for c in errors if done(latest.get(c)) and latest[c].spurious)
    summary.seconds = round(time.perf_counter() - t0, 3)
    atomic_write_text(curation_dir / JUDGE_SUMMARY, summary.to_json())
    return summary
