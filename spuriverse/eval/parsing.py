"""Extract the chosen option letter from a model's free-text answer.

Rules are ranked; the first rank that yields a valid letter wins, and the parser never guesses.

1. ``strict`` -- an explicit final-answer declaration (``Answer: (C)``, ``Final answer: C``,
   ``The answer is (C)``; the LAST one wins), else the whole response is a letter label, optionally
   followed by one line of text (``D``, ``(D)``, ``(D) cab``, ``D) cab``, ``D. cab``, ``D: cab``).
   The text after a label is not checked against the option: the letter is what was asked for.
2. ``heuristic`` -- the last declaration phrase (``the correct option is (B)``, ``I choose B``,
   ``the answer based on the image is B``); else a label opening a multi-line answer; else a
   letter mentioned as ``(B)`` / ``option B``, counted only if exactly one distinct valid letter is.
3. ``option_text`` -- the normalised response equals one option's text, or contains exactly one
   option's text as a whole phrase (a match inside a longer matched option, e.g. "two" inside
   "twenty-two", does not count); skipped for answers with negations or refusals.
4. ``unparsed`` with ``letter=None``.

Since parser 1.1 (older versions stay reachable through ``parse_answer(..., version=...)`` so a run
scored with them still verifies):

- A reasoning trace is set aside first: the answer is what follows the last closing marker
  (``</think>``, ``</thinking>``, ``</reasoning>``, ``[/THINK]``, ``◁/think▷``,
  ``<|end_of_thought|>``; gpt-oss's ``<|channel|>final<|message|>`` opens the answer). A trace that
  is opened and never closed (cut off by ``max_new_tokens``) is ``unparsed`` / ``unterminated_trace``;
  a closed trace with nothing after it is ``unparsed`` / ``empty_after_trace``. Letters inside the
  trace never count.
- ``\boxed{C}`` (LaTeX, optionally ``$...$`` and ``\text{...}``) is an explicit declaration.
- ``option_text`` / ``leading``: the answer *begins* with exactly one option's text (case-insensitive)
  followed by punctuation, a line break or the end ("No, the bench is not red." on Yes/No). It comes
  after the letter declarations, so "No ... the answer is (A)" follows the declaration; the negation
  veto of the other option-text rules does not apply to it (the answer's first words are the answer).

Letters are case-sensitive tokens: lowercase letters never count, a letter inside a word never
counts, and a bare ``A`` followed by a lowercase word ("A man ...") is the article. Letters beyond
the item's options never count; if the final declaration or the whole-response label names such a
letter (``Answer: (E)`` on 4 options, ``(C) nan`` on 2), the letter rules (1--2) stop there and only
``option_text`` may still apply: the model's explicit answer is not an option, so no other letter
from its text is promoted in its place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spuriverse.schema import MAX_OPTIONS, letters_for

PARSER_VERSION = "1.1"


def best_letter(logprobs: dict[str, float]) -> str | None:
    """The letter a run answers by log-prob: the highest, ties to the earliest letter (deterministic,
    never random); None when there are none. The runner and the leaderboard's verifier both decide by this."""
    return max(logprobs, key=lambda k: (logprobs[k], -ord(k))) if logprobs else None


# What each parser version adds; a version not listed here is unknown (never guessed at).
PARSER_FEATURES: dict[str, frozenset[str]] = {
    "1.0": frozenset(),
    "1.1": frozenset({"trace", "boxed", "leading_text"}),
}

# -- letter tokens ---------------------------------------------------------------------------
# A bare capital: not inside a word/abbreviation; a bare "A" followed by a lowercase word is the
# article unless that word is one that can only follow a letter ("A because ...", "A is ...").
_AFTER_A = r"(?:because|since|as|is|seems|appears|would|matches|fits|corresponds|given|based|due)"
_BARE = rf"(?<![\w.'’-])(?P<b>[A-Z])(?![\w'’-]|\.\w)(?!(?<=A)\s+(?!{_AFTER_A}\b)[a-z])"
_PAREN = r"[(\[]\s*(?P<p>[A-Z])\s*[)\]]"
_TOKEN = rf"(?:{_PAREN}|{_BARE})"
_OR_OTHER = r"(?!\s*(?:(?i:or)\b|/)\s*(?:[(\[]\s*[A-Z]\s*[)\]]|[A-Z]\b))"  # "B or C" is a hedge
_OPT_WORD = r"(?:(?i:option|choice|letter)\s+)?"

_DECLARATION = re.compile(
    rf"(?i:\b(?:(?:final|correct|best)\s+)?answer\b)(?:\s*(?:(?i:is)\b|[:=\-–—]))*\s*"
    rf"{_OPT_WORD}{_TOKEN}{_OR_OTHER}"
)
_PHRASE = re.compile(
    r"(?i:\banswer\b[^.\n]{0,80}?\b(?:is|be)\b\s*:?\s*(?:(?:likely|probably|clearly)\s+)?"
    r"|\b(?:correct|right|best)\s+(?:option|choice|letter|one)\s*(?:is\b|would\s+be\b|:)?\s*"
    r"|\b(?:choose|chose|select|selected|pick|picked|go\s+with|going\s+with|opt\s+for)\s+)"
    rf"{_OPT_WORD}{_TOKEN}{_OR_OTHER}"
)
_PHRASE_AFTER = re.compile(rf"{_TOKEN}\s+(?i:is\s+(?:the\s+)?(?:correct|right|best)\b)")
_MENTION = re.compile(rf"{_PAREN}|(?i:\b(?:option|choice|letter)\s+){_BARE}")
_LABEL = re.compile(
    r"(?:[(\[]\s*(?P<p>[A-Z])\s*[)\]](?=\W|$)"  # (D)  [D]
    r"|(?P<b>[A-Z])(?:\s*[).:\-–—](?=\s|$)|(?=[ \t]*\n)|$))"  # D)  D.  D:  D -  D
    r"[ \t]*(?P<rest>.*)",
    re.S,
)
_NEGATED = re.compile(r"(?i:\bnot|n't|\bexcept|\brule\s+out)\s+(?:be\s+)?$")  # "not (A)"
_ANY_LABEL = re.compile(r"[(\[]\s*[A-Z]\s*[)\]]")

# -- reasoning traces and LaTeX (parser 1.1) -----------------------------------------------------
_TRACE_OPEN = re.compile(r"<think>|<thinking>|<reasoning>|\[THINK\]|◁think▷|<\|begin_of_thought\|>"
                         r"|<\|channel\|>analysis<\|message\|>", re.I)
_TRACE_CLOSE = re.compile(r"</think>|</thinking>|</reasoning>|\[/THINK\]|◁/think▷|<\|end_of_thought\|>"
                          r"|<\|channel\|>final<\|message\|>", re.I)
_HARMONY_TAIL = re.compile(r"<\|(?:end|return|call)\|>\s*$")
_BOXED = re.compile(r"\$*\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?[(\[]?\s*([A-Z])\s*[)\]]?\s*\}?\s*\}\$*")
_LEAD_END = re.compile(r"[ \t]*(?:[.,;:!?)\]—–-]|\n|$)")

# -- normalisation ---------------------------------------------------------------------------
_WIDE = str.maketrans({"（": "(", "）": ")", "［": "[", "］": "]", "【": "[", "】": "]", "：": ":"})
_MARKUP = re.compile(r"\*+|`+|__")
_QUOTES = "\"'“”‘’"
_WORDS = re.compile(r"[^\W_]+")
_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|none|without|cannot|unable|unclear|unsure|impossible)\b"
    r"|n['’]t\b",
    re.I,
)


@dataclass(frozen=True)
class ParseResult:
    """Outcome of parsing one answer: the letter (or None), how it was found, and by which rule.

    Rules: strict ``declaration`` / ``label``; heuristic ``declaration_phrase`` / ``leading_label``
    / ``single_mention``; option_text ``exact`` / ``leading`` / ``contains``; unparsed ``empty`` /
    ``invalid_letter`` / ``no_match`` / ``unterminated_trace`` / ``empty_after_trace``.
    """

    letter: str | None
    status: str  # "strict" | "heuristic" | "option_text" | "unparsed"
    rule: str | None = None


def _letter(m: re.Match[str]) -> str:
    return m.group("p") or m.group("b")


def _clean(text: str) -> str:
    """Unify wide brackets, drop markdown emphasis and code marks, strip quotes and final dots."""
    text = _MARKUP.sub("", text.translate(_WIDE)).strip()
    while len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.rstrip(". \t\r\n")


def _norm(text: str) -> str:
    """Case-folded words joined by single spaces (punctuation and hyphens become spaces)."""
    return " ".join(_WORDS.findall(text.casefold()))


def _by_option_text(text: str, options: list[str], letters: tuple[str, ...]) -> ParseResult | None:
    """Rule 3: equality with one option's text, or a sole whole-phrase occurrence of one."""
    resp = _norm(text)
    opts = [(_norm(o), letter) for o, letter in zip(options, letters)]
    opts = [(o, letter) for o, letter in opts if o]
    if not resp or not opts:
        return None
    equal = {letter for o, letter in opts if o == resp}
    if len(equal) == 1:
        return ParseResult(equal.pop(), "option_text", "exact")
    if equal:
        return None
    option_words = {w for o, _ in opts for w in o.split()}
    if any(m.group(0).lower() not in option_words for m in _NEGATION.finditer(text)):
        return None  # "it is not a cab", "I don't know": never read an option out of it
    padded = f" {resp} "
    spans: list[tuple[int, int, int, str]] = []  # (start, end, option length, letter)
    for o, letter in opts:
        if len(o) == 1 and o.isalpha():
            continue  # a one-letter option ("b") would match any stray letter
        needle, start = f" {o} ", padded.find(f" {o} ")
        while start != -1:
            spans.append((start, start + len(needle), len(o), letter))
            start = padded.find(needle, start + 1)
    found = {
        letter
        for s, e, n, letter in spans
        if not any(n2 > n and s2 <= s and e <= e2 for s2, e2, n2, _ in spans)
    }
    if len(found) == 1:
        return ParseResult(found.pop(), "option_text", "contains")
    return None


def _after_trace(text: str) -> str | None:
    """The text after the last closed reasoning trace; None for a trace that never closes."""
    closes = list(_TRACE_CLOSE.finditer(text))
    if closes:
        return _HARMONY_TAIL.sub("", text[closes[-1].end():])
    if _TRACE_OPEN.search(text):
        return None
    return text


def _by_leading_text(text: str, options: list[str], letters: tuple[str, ...]) -> ParseResult | None:
    """The answer begins with exactly one option's text, then punctuation, a line break or the end."""
    low = text.casefold()
    hits: list[tuple[int, str]] = []
    for option, letter in zip(options, letters):
        o = " ".join(option.split()).casefold().rstrip(".")
        if o and low.startswith(o) and _LEAD_END.match(low, len(o)) and _norm(low[len(o):]):
            hits.append((len(o), letter))  # (nothing after the option: ``exact`` decides)
    if not hits:
        return None
    longest = max(n for n, _ in hits)
    top = {letter for n, letter in hits if n == longest}  # "no" inside "no, never": the longer one
    return ParseResult(top.pop(), "option_text", "leading") if len(top) == 1 else None


def _invalid(text: str, options: list[str], letters: tuple[str, ...]) -> ParseResult:
    """The model's explicit letter is not an option: only its option text may still count."""
    found = _by_option_text(text, options, letters)
    return found or ParseResult(None, "unparsed", "invalid_letter")


class UnknownParserVersion(ValueError):
    """A run names a parser version this spuriverse does not know."""


def parser_features(version: str) -> frozenset[str]:
    """The rules parser `version` adds over 1.0; `UnknownParserVersion` if it is not one we know."""
    try:
        return PARSER_FEATURES[version]
    except KeyError:
        known = ", ".join(PARSER_FEATURES)
        raise UnknownParserVersion(f"parser version {version!r} is unknown here (known: {known})") from None


def parse_answer(text: str | None, options: list[str], *, version: str = PARSER_VERSION) -> ParseResult:
    """Parse a model's answer `text` to a multiple-choice item with option texts `options`.

    `options` are in letter order (A, B, ...); an empty option text keeps its letter valid but is
    never matched as text. Returns a `ParseResult`; the letter, when set, is always a valid one.
    `version` selects the rules of an earlier parser version (see `PARSER_FEATURES`).
    """
    features = parser_features(version)
    if len(options) > MAX_OPTIONS:
        raise ValueError(f"at most {MAX_OPTIONS} options are supported, got {len(options)}")
    if text is None or not text.strip():
        return ParseResult(None, "unparsed", "empty")
    if "trace" in features:
        after = _after_trace(text)
        if after is None:
            return ParseResult(None, "unparsed", "unterminated_trace")
        if not after.strip():
            return ParseResult(None, "unparsed", "empty_after_trace")
        text = after
    letters = letters_for(len(options))
    options = [o if isinstance(o, str) else "" for o in options]
    clean = _clean(text)
    if "boxed" in features:
        clean = _BOXED.sub(lambda m: f"Answer: ({m.group(1)})", clean)

    # 1. strict: the last explicit declaration, else the whole response as a label
    declared, rule, leading = None, "declaration", None
    for m in _DECLARATION.finditer(clean):
        declared = _letter(m)
    label = _LABEL.fullmatch(clean)
    if label and declared is None and not _ANY_LABEL.search(label["rest"].partition("\n")[0]):
        if "\n" in label["rest"]:
            leading = _letter(label)  # a label opening a longer answer: heuristic, below
        else:
            declared, rule = _letter(label), "label"
    if declared is not None:
        if declared in letters:
            return ParseResult(declared, "strict", rule)
        return _invalid(clean, options, letters)

    # 2. heuristic: last declaration phrase, a leading label, or a single mentioned letter
    hits = [m for rx in (_PHRASE, _PHRASE_AFTER) for m in rx.finditer(clean)]
    phrased = [_letter(m) for m in sorted(hits, key=lambda m: m.start())]
    if phrased:
        if phrased[-1] in letters:
            return ParseResult(phrased[-1], "heuristic", "declaration_phrase")
        return _invalid(clean, options, letters)
    if leading is not None:
        if leading in letters:
            return ParseResult(leading, "heuristic", "leading_label")
        return _invalid(clean, options, letters)
    if "leading_text" in features:
        found = _by_leading_text(clean, options, letters)
        if found is not None:
            return found
    mentioned = {
        _letter(m)
        for m in _MENTION.finditer(clean)
        if not _NEGATED.search(clean, max(0, m.start() - 40), m.start())
    } & set(letters)
    if len(mentioned) == 1:
        return ParseResult(mentioned.pop(), "heuristic", "single_mention")

    # 3. option text; 4. give up
    return _by_option_text(clean, options, letters) or ParseResult(None, "unparsed", "no_match")
