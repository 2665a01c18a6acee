"""The structured temporal prompt, answer parsing and the PRIMO rewards (shared by vlm, remote and training).

The prompt follows PRIMO R1's structure (notes/primo_reference.md §2) in our own words:

- a **system prompt** that casts the model as a specialist in reasoning about embodied procedures and fixes the
  output format: ``<think>`` holding ``<planning>``, ``<observation>`` and ``<reasoning>`` in that order, then
  ``<answer>`` holding only a number from 0 to 100;
- a **user turn** ordered [initial image, video clip, current image, question]; the question wraps the record's
  ``problem`` text (instruction + progress question) in QUESTION / QUESTION TYPE sections and asks for the three
  reasoning sections.

A user template file can replace our wording (to match a checkpoint's training prompt exactly), see
:class:`PromptTemplate`.

Answers are read by :func:`parse_response`, which is deliberately forgiving (missing tags, ``%``, ``about 40``,
``~40``, ranges, fractions) and returns ``None`` for anything it cannot read with confidence.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError

# ------------------------------------------------------------------------------------------------ the prompt

SYSTEM_PROMPT = (
    "You are an expert at understanding embodied procedures: you watch a robot work and judge, from what you "
    "see, how far it has come toward finishing its task.\n"
    "Always reason before you answer, in this exact format:\n"
    "<think><planning>...</planning><observation>...</observation><reasoning>...</reasoning></think>"
    "<answer>...</answer>\n"
    "Inside <answer> write only the final answer, with no words and no units."
)

QUESTION_TEMPLATE = (
    "QUESTION:\n{question}\n\n"
    "QUESTION TYPE: {question_type}\n\n"
    "Look closely at the initial image, the video and the current image, then think step by step inside "
    "<think> </think>, in three parts:\n"
    "<planning>: the goal, the initial state, what success looks like, and the steps that lead to it.</planning>\n"
    "<observation>: what happens over time: the robot's actions, how the objects move or change, and any sign "
    "of a slip, a drop or a miss.</observation>\n"
    "<reasoning>: question yourself as you go: match what you observed to the planned steps, check which steps "
    "are really done, and correct yourself if something does not fit.</reasoning>\n"
    "Then give your final answer inside <answer> </answer>.\n"
    "{answer_hint}"
)

ANSWER_HINTS = {
    "numerical": "Write only a number from 0 to 100 inside the answer tags, for example <answer>40</answer>.",
    "regression": "Write only a number from 0 to 100 inside the answer tags, for example <answer>40</answer>.",
}

TEMPLATE_FIELDS = ("question", "instruction", "question_type", "answer_hint")


@dataclass(frozen=True)
class PromptTemplate:
    """The system prompt and the question template.

    The question template may use the fields ``{question}`` (the record's ``problem`` text: instruction plus
    progress question), ``{instruction}``, ``{question_type}`` and ``{answer_hint}``; they are replaced
    literally, so other braces in a user's file need no escaping.

    Attributes:
        system: the system prompt; None or "" sends no system message.
        question: the question template.
    """

    system: str | None = SYSTEM_PROMPT
    question: str = QUESTION_TEMPLATE

    def __post_init__(self) -> None:
        if "{question}" not in self.question and "{instruction}" not in self.question:
            raise ConfigError("Expected the question template to contain `{question}` or `{instruction}`, "
                              f"actually: {self.question[:80]!r}...")

    @classmethod
    def load(cls, path: str | Path) -> PromptTemplate:
        """Read a template file.

        - ``.json`` / ``.yaml`` / ``.yml``: a mapping with ``question`` (alias ``user``) and optionally ``system``
          (``null`` or ``""`` for no system message; absent keeps ours).
        - any other suffix: the whole file is the question template; our system prompt is kept.

        Raises:
            ConfigError: the file is missing, unreadable, or lacks the question template.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"Prompt template file not found: {p}")
        text = p.read_text()
        if p.suffix.lower() not in (".json", ".yaml", ".yml"):
            return cls(system=SYSTEM_PROMPT, question=text)
        try:
            if p.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # noqa: BLE001 - json/yaml raise their own types
            raise ConfigError(f"Could not read prompt template {p}: {exc}") from exc
        if not isinstance(data, Mapping) or not (data.get("question") or data.get("user")):
            raise ConfigError(f"Expected {p} to hold a mapping with a `question` template (and optionally "
                              f"`system`), actually: {type(data).__name__}")
        return cls(system=data.get("system", SYSTEM_PROMPT), question=data.get("question") or data["user"])

    def render_question(self, question: str, instruction: str | None = None,
                        question_type: str = "numerical") -> str:
        """Fill the question template.

        >>> PromptTemplate(question="Q: {question} ({question_type})").render_question("how far?")
        'Q: how far? (numerical)'
        """
        values = {"question": question, "instruction": instruction or question, "question_type": question_type,
                  "answer_hint": ANSWER_HINTS.get(question_type, "")}
        out = self.question
        for k in TEMPLATE_FIELDS:
            out = out.replace("{" + k + "}", values[k])
        return out


DEFAULT_TEMPLATE = PromptTemplate()


def resolve_template(template: PromptTemplate | str | Path | None) -> PromptTemplate:
    """A template from a :class:`PromptTemplate`, a file path, or None (ours)."""
    if template is None:
        return DEFAULT_TEMPLATE
    if isinstance(template, PromptTemplate):
        return template
    return PromptTemplate.load(template)


def progress_question(instruction: str) -> str:
    """The ``problem`` text for an instruction (the same text our PRIMO exports carry).

    >>> progress_question("lift the cube").startswith('Task: "lift the cube"')
    True
    """
    from primo_loop.data.primo_format import progress_question as _pq

    return _pq(instruction)


_TASK_QUOTE_RE = re.compile(r'Task:\s*"(.+?)"', re.S)


def extract_instruction(question_text: str) -> str:
    """Recover the instruction from a rendered question (used by the loopback server).

    >>> extract_instruction(DEFAULT_TEMPLATE.render_question(progress_question("stack the cubes")))
    'stack the cubes'
    """
    m = _TASK_QUOTE_RE.search(question_text)
    return m.group(1).strip() if m else question_text.strip()


def build_messages(question: str, *, initial: Any = None, clip: Any = None, current: Any = None,
                   template: PromptTemplate | None = None, instruction: str | None = None,
                   question_type: str = "numerical") -> list[dict[str, Any]]:
    """Chat messages in the order PRIMO reads them: [initial image, video clip, current image, question].

    The media objects are put in the parts as given (PIL images, arrays, lists of frames, URLs); a ``None``
    medium leaves a bare placeholder part (``{"type": "image"}``), which is what TRL's trainers fill from
    an ``images`` column. Keys are never set to None: a chat template turns any ``image``/``video`` key,
    even a None one, into a vision placeholder.

    Args:
        question: the ``problem`` text (instruction + progress question).
        initial: the initial-state image.
        clip: the video clip.
        current: the current-state image.
        template: prompt wording (default ours).
        instruction: the bare instruction, for templates that use ``{instruction}``.
        question_type: PRIMO's ``problem_type`` (``numerical`` for progress).

    Returns:
        ``[system message (unless the template has none), user message]`` with list-of-parts contents.

    >>> [p["type"] for p in build_messages("how far?")[1]["content"]]
    ['image', 'video', 'image', 'text']
    """
    template = template or DEFAULT_TEMPLATE

    def part(kind: str, value: Any) -> dict[str, Any]:
        return {"type": kind} if value is None else {"type": kind, kind: value}

    text = template.render_question(question, instruction=instruction, question_type=question_type)
    user = {"role": "user", "content": [part("image", initial), part("video", clip), part("image", current),
                                        {"type": "text", "text": text}]}
    messages: list[dict[str, Any]] = []
    if template.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": template.system}]})
    messages.append(user)
    return messages


def format_response(progress: float, reasoning: str | None = None) -> str:
    """A response in PRIMO's output format (progress on the 0-100 scale).

    >>> format_response(42.4, "<planning>p</planning>")
    '<think><planning>p</planning></think><answer>42</answer>'
    """
    return f"<think>{reasoning or ''}</think><answer>{int(round(float(progress)))}</answer>"


# -------------------------------------------------------------------------------------------- answer parsing

MAX_OVERSHOOT = 200.0
"""Readings in (100, MAX_OVERSHOOT] are clamped to 100 (a model overshooting); above it they are unreadable
(a number that large is not a progress estimate but a step count, a year or an id)."""

_NUM = r"[-+]?\d+(?:\.\d+)?|[-+]?\.\d+"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ANSWER_OPEN_RE = re.compile(r"<answer>(.*)$", re.S | re.I)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_RANGE_RE = re.compile(rf"({_NUM})\s*(%?)\s*(?:-|–|—|to|~)\s*({_NUM})\s*(%?)", re.I)
_FRACTION_RE = re.compile(rf"({_NUM})\s*(?:/|out of)\s*({_NUM})", re.I)
_NUMBER_RE = re.compile(rf"({_NUM})\s*(%|percent\b|per cent\b)?", re.I)
_PROGRESS_RE = re.compile(rf"(?:progress|completion|completed|complete|answer)\D{{0,40}}?({_NUM})\s*(%?)", re.I)
_PERCENT_RE = re.compile(rf"({_NUM})\s*(?:%|percent\b)", re.I)
_WORDS = (
    (re.compile(r"\b(not (yet )?started|no progress|nothing done)\b", re.I), 0.0),
    (re.compile(r"\b(half ?way|half done|halfway done)\b", re.I), 50.0),
    (re.compile(r"(?<!not )(?<!yet )\b(fully (completed?|done)|completed?|finished|done|succeeded|success(ful)?)\b",
                re.I), 100.0),
)
_FORMAT_RE = re.compile(
    r"^\s*<think>\s*<planning>.*?</planning>\s*<observation>.*?</observation>\s*<reasoning>.*?</reasoning>\s*"
    r"</think>\s*<answer>.*?</answer>\s*$", re.S)


@dataclass(frozen=True)
class ParsedAnswer:
    """What :func:`parse_response` read from a model's text.

    Attributes:
        progress: progress on the 0-100 scale, or None if unreadable.
        reasoning: the ``<think>`` content (or the text before the answer), or None.
        answer: the text span the number was read from, or None.
        tagged: True if the number came from inside ``<answer>`` tags.
    """

    progress: float | None
    reasoning: str | None = None
    answer: str | None = None
    tagged: bool = False


def _to_float(s: str) -> float:
    return float(s)


def _scale(value: float, percent: bool, literal: str) -> float | None:
    """One number on the 0-100 scale: decimals in [0, 1] without % are fractions ("0.4" -> 40)."""
    if not percent and "." in literal and 0.0 <= value <= 1.0:
        value *= 100.0
    return _bound(value)


def _bound(value: float) -> float | None:
    if value != value or value > MAX_OVERSHOOT:  # NaN or absurdly large
        return None
    return min(100.0, max(0.0, value))


def read_number(text: str) -> float | None:
    """Read one progress value (0-100) from a short answer text, or None.

    Rules, in order: a range ("40-50", "40 to 50") gives its midpoint; a fraction ("3/4", "2 out of 5",
    "40/100") its percentage; otherwise the first number, where ``%`` marks a percentage and a decimal in
    [0, 1] without ``%`` is read as a fraction of 1 ("0.4" -> 40; the integers "0" and "1" stay 0 and 1).
    Negative values clamp to 0, values in (100, 200] clamp to 100, larger ones are unreadable. With no number,
    a few words are understood ("complete" -> 100, "halfway" -> 50, "not started" -> 0).

    >>> [read_number(s) for s in ["40", "40%", "~40", "about 40", "40-50", "0.4", "3/4", "105", "abc"]]
    [40.0, 40.0, 40.0, 40.0, 45.0, 40.0, 75.0, 100.0, None]
    """
    t = text.strip().replace("≈", " ").replace("\u2212", "-")
    m = _RANGE_RE.search(t)
    if m and not m.group(3).startswith(("-", "+")):
        a, b = _to_float(m.group(1)), _to_float(m.group(3))
        pct = bool(m.group(2) or m.group(4))
        sa, sb = _scale(a, pct, m.group(1)), _scale(b, pct, m.group(3))
        if sa is not None and sb is not None and a >= 0:
            return (sa + sb) / 2.0
    m = _FRACTION_RE.search(t)
    if m:
        num, den = _to_float(m.group(1)), _to_float(m.group(2))
        if den > 0:
            return _bound(num if den == 100 else 100.0 * num / den)
    m = _NUMBER_RE.search(t)
    if m:
        return _scale(_to_float(m.group(1)), bool(m.group(2)), m.group(1))
    for pattern, value in _WORDS:
        if pattern.search(t):
            return value
    return None


def parse_response(text: str | None) -> ParsedAnswer:
    """Read progress (0-100) and reasoning from a model's response.

    - With ``<answer>...</answer>``: the last answer block is read with :func:`read_number`.
    - With ``<answer>`` opened but not closed (a cut-off response): what follows it is read.
    - Without answer tags: the text after ``</think>`` (or all of it if there is no think block) is searched
      for "progress ... N", then "N%", and a short reply (up to 6 words, e.g. "about 40") is read whole. A
      ``<think>`` block that never closed (the token budget ran out) is unreadable.

    >>> parse_response("<think>two of three steps done</think><answer>67</answer>").progress
    67.0
    >>> parse_response("The progress is about 40%.").progress
    40.0
    >>> parse_response("<think>the gripper is still moving").progress is None
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
    tail = text[think.end():] if think else text
    tail = tail.strip()
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


def parse_progress(text: str | None) -> float | None:
    """Progress on the 0-100 scale from a response, or None (see :func:`parse_response`).

    >>> parse_progress("<answer>~37.5%</answer>")
    37.5
    """
    return parse_response(text).progress


# -------------------------------------------------------------------------------------------- PRIMO rewards

def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    parts: list[str] = []
    for msg in completion or []:
        content = msg.get("content") if isinstance(msg, Mapping) else msg
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):
            parts.extend(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return "".join(parts)


def has_primo_format(text: str) -> bool:
    """True iff the whole text is ``<think>`` with planning, observation, reasoning in order, then ``<answer>``.

    >>> has_primo_format("<think><planning>a</planning><observation>b</observation>"
    ...                  "<reasoning>c</reasoning></think> <answer>40</answer>")
    True
    >>> has_primo_format("<think>a</think><answer>40</answer>")
    False
    """
    return bool(_FORMAT_RE.match(text))


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """PRIMO's format reward: 1.0 iff the completion has the full tag structure, else 0.0.

    A plain callable in TRL's reward-function signature ``(prompts, completions, **columns)``.

    >>> format_reward(["<think><planning>a</planning><observation>b</observation><reasoning>c</reasoning>"
    ...                "</think><answer>1</answer>", "<answer>1</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if has_primo_format(completion_text(c)) else 0.0 for c in completions]


def target_progress(solution: Any = None, progress: Any = None) -> float | None:
    """The ground-truth progress (0-100) of a row: ``progress`` when present, else the ``solution`` answer."""
    if progress is not None:
        try:
            value = float(progress)
            if value == value:
                return value
        except (TypeError, ValueError):
            pass
    if solution is not None:
        return parse_response(str(solution)).progress
    return None


def accuracy_reward(completions: Sequence[Any], solution: Sequence[Any] | None = None,
                    progress: Sequence[Any] | None = None, **kwargs: Any) -> list[float | None]:
    """PRIMO's accuracy reward for numerical answers: ``max(0, 1 - |y_hat - y| / 100)``.

    ``y_hat`` is read only from inside ``<answer>`` tags (as PRIMO's grader does): an untagged or unreadable
    answer scores 0. ``y`` comes from the ``progress`` column (unrounded, sim exports) or else the ``solution``
    column (``<answer>NN</answer>``); a row with neither gets None (TRL skips it for this reward).

    >>> accuracy_reward(["<answer>40</answer>", "<answer>90</answer>", "40"], solution=["<answer>50</answer>"] * 3)
    [0.9, 0.6, 0.0]
    """
    n = len(completions)
    sols = list(solution) if solution is not None else [None] * n
    progs = list(progress) if progress is not None else [None] * n
    out: list[float | None] = []
    for c, sol, prog in zip(completions, sols, progs):
        y = target_progress(sol, prog)
        if y is None:
            out.append(None)
            continue
        parsed = parse_response(completion_text(c))
        if not parsed.tagged or parsed.progress is None:
            out.append(0.0)
            continue
        out.append(round(max(0.0, 1.0 - abs(parsed.progress - y) / 100.0), 6))
    return out


PRIMO_REWARDS = (format_reward, accuracy_reward)
"""The reward functions PRIMO R1's GRPO stage sums: format + accuracy."""
