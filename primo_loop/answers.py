"""Reading a progress number out of a model's answer: the lenient loop reader and the official benchmark reader.

Two readers, one module, each named for what it does:

- :func:`read_official` reproduces the answer extraction of PRIMO R1's benchmark harness exactly (facts in
  notes/primo_reference.md §6b): the FIRST ``<answer>...</answer>`` block (tags case-sensitive, inner whitespace
  stripped), the whole text when there is no block or the block is empty; then ``≈`` and ``~`` removed, a
  full-width ``％`` read as ``%``, commas removed, a trailing ``%`` divides by 100, and Python's ``float`` reads
  the rest (so ``4.5e1``, ``nan`` and ``1_000`` read as ``float`` reads them). No clamping. Use it for benchmark
  numbers that are comparable with the paper's.
- :func:`read_lenient` is the forgiving reader of the simulation loop: it reads the LAST answer block, unclosed
  and upper-case tags, ranges, fractions, hedges and a few words, treats decimals in [0, 1] without ``%`` as
  fractions of 1, and bounds the result to 0-100 (see its docstring for every rule, and docs/vlm.md for the forms
  on which the two readers differ and why).

``answer_parsing`` options of the critics name one of :data:`ANSWER_MODES`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from primo_loop.errors import check_choice

ANSWER_MODES = ("lenient", "official")


@dataclass(frozen=True)
class ParsedAnswer:
    """What a reader found in a model's text.

    Attributes:
        progress: the number on the 0-100 scale, or None if unreadable.
        reasoning: the ``<think>`` content (or the text before the answer), or None.
        answer: the text span the number was read from, or None.
        tagged: True if the number came from inside ``<answer>`` tags.
    """

    progress: float | None
    reasoning: str | None = None
    answer: str | None = None
    tagged: bool = False


# ------------------------------------------------------------------------------------------- official reader

_OFFICIAL_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
_OFFICIAL_THINK_RE = re.compile(r"<think>\s*(.*?)\s*</think>", re.S)


def official_number(text: str | None) -> float | None:
    """The release's number normalisation of an extracted answer string (None where ``float`` refuses it).

    >>> [official_number(s) for s in ["40", "40%", "0.5%", "~40", "1,000", "4.5e1", "about 40"]]
    [40.0, 0.4, 0.005, 40.0, 1000.0, 45.0, None]
    """
    s = (text or "").strip().replace("≈", "").replace("~", "").replace("％", "%")
    percent = s.endswith("%")
    if percent:
        s = s[:-1]
    s = s.replace(",", "")
    try:
        value = float(s)
    except ValueError:
        return None
    return value / 100.0 if percent else value


def read_official(text: str | None) -> ParsedAnswer:
    """Read an answer exactly as PRIMO R1's benchmark harness does (see the module docstring).

    >>> read_official("<answer>10</answer> then <answer>30</answer>").progress  # the first block counts
    10.0
    >>> read_official("<ANSWER>40</ANSWER>").progress is None  # tags are case-sensitive; the whole text is no number
    True
    >>> read_official("<answer>50%</answer>").progress  # the release divides by 100 on a trailing %
    0.5
    """
    if text is None:
        return ParsedAnswer(None)
    think = _OFFICIAL_THINK_RE.search(text)
    m = _OFFICIAL_ANSWER_RE.search(text)
    body = m.group(1).strip() if m else ""
    tagged = bool(body)
    if not body:
        body = text  # the release falls back to the whole output
    return ParsedAnswer(official_number(body), think.group(1).strip() if think else None, body, tagged)


# -------------------------------------------------------------------------------------------- lenient reader

MAX_OVERSHOOT = 200.0
"""Lenient readings in (100, MAX_OVERSHOOT] are bounded to 100 (a model overshooting); above it they are
unreadable (a number that large is not a progress estimate but a count, a year or an id)."""

_UNUM = r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUM = rf"[-+]?{_UNUM}"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ANSWER_OPEN_RE = re.compile(r"<answer>(.*)$", re.S | re.I)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_STEPS_RE = re.compile(rf"\bsteps?\s*(?:no\.?\s*|#\s*)?{_UNUM}(?:\s*(?:of|/|out of)\s*{_UNUM})?"
                       rf"|{_UNUM}\s*(?:of|/|out of)\s*{_UNUM}\s*steps?\b|{_UNUM}\s*steps?\b", re.I)
_RANGE_RE = re.compile(rf"({_NUM})\s*(%?)\s*(?:-|–|—|to|~)\s*({_UNUM})\s*(%?)", re.I)
_FRACTION_RE = re.compile(rf"({_NUM})\s*(?:/|out of)\s*({_UNUM})", re.I)
_NUMBER_RE = re.compile(rf"({_NUM})\s*(%|percent\b|per cent\b)?", re.I)
_PROGRESS_RE = re.compile(rf"(?:progress|completion|completed|complete|answer)\D{{0,40}}?({_NUM})\s*(%?)", re.I)
_PERCENT_RE = re.compile(rf"({_NUM})\s*(?:%|percent\b)", re.I)
_WORDS = (
    (re.compile(r"\b(not (yet )?started|no progress|nothing done)\b", re.I), 0.0),
    (re.compile(r"\b(half ?way|half done|halfway done)\b", re.I), 50.0),
    (re.compile(r"(?<!not )(?<!yet )\b(fully (completed?|done)|completed?|finished|done|succeeded|success(ful)?)\b",
                re.I), 100.0),
)


def _scale(value: float, percent: bool, literal: str) -> float | None:
    """One number on the 0-100 scale: a decimal in [0, 1] without % is a fraction of 1 ("0.4" -> 40)."""
    if not percent and "." in literal and 0.0 <= value <= 1.0:
        value *= 100.0
    return _bound(value)


def _bound(value: float) -> float | None:
    if value != value or value > MAX_OVERSHOOT:  # NaN or absurdly large
        return None
    return min(100.0, max(0.0, value))


def read_number(text: str) -> float | None:
    """Read one progress value (0-100) from a short answer text, leniently, or None.

    Rules, in order: step counts ("step 3", "2 of 5 steps") are not progress and are ignored; a range
    ("40-50", "40 to 50") gives its midpoint; a fraction ("3/4", "2 out of 5", "40/100") its percentage;
    otherwise the first number, where ``%`` (or ``％``, "percent") marks a value already on the 0-100 scale
    ("0.5%" is 0.5) and a decimal in [0, 1] without ``%`` is a fraction of 1 ("0.4" -> 40; the integers "0" and
    "1" stay 0 and 1). Scientific notation is read ("4.5e1" -> 45). Negative values are bounded to 0, values in
    (100, 200] to 100, larger ones are unreadable. With no number, a few words are understood ("complete" ->
    100, "halfway" -> 50, "not started" -> 0).

    >>> [read_number(s) for s in ["40", "40%", "~40", "about 40", "40-50", "0.4", "3/4", "105", "0.5%", "abc"]]
    [40.0, 40.0, 40.0, 40.0, 45.0, 40.0, 75.0, 100.0, 0.5, None]
    """
    t = text.strip().replace("≈", " ").replace("\u2212", "-").replace("％", "%").replace(",", "")
    t = _STEPS_RE.sub(" ", t)
    m = _RANGE_RE.search(t)
    if m:
        a, b = float(m.group(1)), float(m.group(3))
        pct = bool(m.group(2) or m.group(4))
        sa, sb = _scale(a, pct, m.group(1)), _scale(b, pct, m.group(3))
        if sa is not None and sb is not None and a >= 0:
            return (sa + sb) / 2.0
    m = _FRACTION_RE.search(t)
    if m:
        num, den = float(m.group(1)), float(m.group(2))
        if den > 0:
            return _bound(num if den == 100 else 100.0 * num / den)
    m = _NUMBER_RE.search(t)
    if m:
        return _scale(float(m.group(1)), bool(m.group(2)), m.group(1))
    for pattern, value in _WORDS:
        if pattern.search(t):
            return value
    return None


def read_lenient(text: str | None) -> ParsedAnswer:
    """Read progress (0-100) and reasoning from a model's response, forgivingly (the loop's reader).

    - With ``<answer>...</answer>`` (any case): the LAST answer block is read with :func:`read_number`.
    - With ``<answer>`` opened but not closed (a cut-off response): what follows it is read.
    - Without answer tags: the text after ``</think>`` (or all of it if there is no think block) is searched
      for "progress ... N", then "N%", and a short reply (up to 6 words, e.g. "about 40") is read whole. A
      ``<think>`` block that never closed (the token budget ran out) is unreadable.

    >>> read_lenient("<think>two of three steps done</think><answer>67</answer>").progress
    67.0
    >>> read_lenient("The progress is about 40%.").progress
    40.0
    >>> read_lenient("<think>the gripper is still moving").progress is None
    True
    """
    if not text:
        return ParsedAnswer(None)
    think = _THINK_RE.search(text)
    reasoning = think.group(1).strip() if think else None
    answers = _ANSWER_RE.findall(text)
    if answers:
        body = answers[-1].strip()
        if reasoning is None:
            reasoning = text[: text.lower().find("<answer>")].strip() or None
        return ParsedAnswer(read_number(body), reasoning, body, tagged=True)
    opened = _ANSWER_OPEN_RE.search(text)
    if opened:
        body = opened.group(1).strip()
        if reasoning is None:
            reasoning = text[: opened.start()].strip() or None
        return ParsedAnswer(read_number(body) if body else None, reasoning, body or None, tagged=True)
    lower = text.lower()
    if "<think>" in lower and "</think>" not in lower:
        return ParsedAnswer(None, text[lower.find("<think>") + len("<think>"):].strip() or None)
    tail = (text[think.end():] if think else text).strip()
    if not tail:
        return ParsedAnswer(None, reasoning)
    for pattern in (_PROGRESS_RE, _PERCENT_RE):
        hits = list(pattern.finditer(tail))
        if hits:
            span = tail[hits[-1].start(1): hits[-1].start(1) + 24]  # the number and what follows ("40-50%")
            return ParsedAnswer(read_number(span), reasoning, span.strip())
    if len(tail.split()) <= 6:
        return ParsedAnswer(read_number(tail), reasoning, tail)
    return ParsedAnswer(None, reasoning or tail)


def read_answer(text: str | None, mode: str = "lenient") -> ParsedAnswer:
    """Read ``text`` with the reader named by ``mode`` (one of :data:`ANSWER_MODES`).

    >>> read_answer("<answer>0.4</answer>").progress, read_answer("<answer>0.4</answer>", "official").progress
    (40.0, 0.4)
    """
    mode = check_choice("answer_parsing", mode, ANSWER_MODES)
    return read_official(text) if mode == "official" else read_lenient(text)


def lenient_progress(text: str | None) -> float | None:
    """Progress on the 0-100 scale read leniently, or None (see :func:`read_lenient`).

    >>> lenient_progress("<answer>~37.5%</answer>")
    37.5
    """
    return read_lenient(text).progress


def solution_value(solution: str | None) -> float | None:
    """The ground truth of a record's ``solution`` (``<answer>NN</answer>``), read as the release reads it.

    The release reads solutions with the same extraction as answers; our exports write plain integers, so the
    two readers agree on them, and ``<answer>1.0</answer>`` is 1, never 100.

    >>> solution_value("<answer>37</answer>"), solution_value("<answer>1.0</answer>"), solution_value(None)
    (37.0, 1.0, None)
    """
    if solution is None:
        return None
    return read_official(str(solution)).progress
