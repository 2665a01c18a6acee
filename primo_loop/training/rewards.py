"""PRIMO R1's GRPO rewards as TRL reward functions: format, accuracy by ``problem_type``, and length control.

Each is a plain callable in TRL's signature ``(prompts, completions, **columns) -> list[float | None]``; TRL sums
them, as the release does (R = r_acc + r_fmt, plus the length bonus when it is on). The forms follow the release
(facts in notes/primo_reference.md §6b), in our own code:

- **format**: 1.0 iff the whole completion, with no leading or trailing whitespace, is ``<think>`` holding
  ``<planning>``, ``<observation>`` and ``<reasoning>`` in that order, then ``<answer>`` (whitespace between the
  tags allowed); else 0.0.
- **accuracy**: the prediction is read from the FIRST ``<answer>`` block only (no whole-text fallback, unlike the
  benchmark reader), with the release's number normalisation (:func:`primo_loop.answers.official_number`), and
  scored by the row's ``problem_type``: ``numerical`` ``clip(1 - |p - t| / 100, 0, 1)``; ``regression``
  ``1 - clip((|p - t| + 1e-9) / (|t| + 1e-9), 0, 1)``; ``multiple choice`` / ``boolean`` case-insensitive exact
  match. An unreadable prediction scores 0. The release's text scores (``OCR``: 1 - WER, ``free-form``: ROUGE)
  are not implemented: such rows get None, which TRL skips.
- **length control** (``--len_control`` in the released run): +0.2 for each completion whose accuracy is above
  0.1 and whose length is 320-512 tokens, provided more than one completion of the call's batch has accuracy
  above 0.1.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from primo_loop.answers import official_number, solution_value

NUMERIC_MAX_RANGE = 100.0
LENGTH_BONUS = 0.2
LENGTH_WINDOW = (320, 512)
LENGTH_MIN_ACCURACY = 0.1

_FORMAT_RE = re.compile(
    r"<think>\s*<planning>.*?</planning>\s*<observation>.*?</observation>\s*<reasoning>.*?</reasoning>\s*"
    r"</think>\s*<answer>.*?</answer>", re.S)
_FIRST_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)


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
    >>> has_primo_format(" <think><planning>a</planning><observation>b</observation>"
    ...                  "<reasoning>c</reasoning></think><answer>40</answer>")  # leading whitespace
    False
    """
    return bool(_FORMAT_RE.fullmatch(text))


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """PRIMO's format reward: 1.0 iff the completion has the full tag structure, else 0.0.

    >>> format_reward(["<think><planning>a</planning><observation>b</observation><reasoning>c</reasoning>"
    ...                "</think><answer>1</answer>", "<answer>1</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if has_primo_format(completion_text(c)) else 0.0 for c in completions]


def target_progress(solution: Any = None, progress: Any = None) -> float | None:
    """The ground truth (0-100) of a row: ``progress`` when present, else the ``solution`` answer.

    The solution is read as the release reads it, so ``<answer>1.0</answer>`` is 1 (not 100).

    >>> target_progress("<answer>1.0</answer>"), target_progress("<answer>40</answer>", 42.5)
    (1.0, 42.5)
    """
    if progress is not None:
        try:
            value = float(progress)
            if value == value:
                return value
        except (TypeError, ValueError):
            pass
    return solution_value(solution)


def predicted_value(text: str) -> float | None:
    """The prediction the accuracy reward reads: the first answer block, normalised; None without one."""
    m = _FIRST_ANSWER_RE.search(text)
    return official_number(m.group(1)) if m else None


def accuracy_score(pred: float | None, target: float, problem_type: str = "numerical", *,
                   max_range: float = NUMERIC_MAX_RANGE) -> float:
    """The release's accuracy for one numeric prediction (0 for an unreadable one).

    >>> accuracy_score(40, 50), round(accuracy_score(40, 50, "regression"), 6), accuracy_score(None, 50)
    (0.9, 0.8, 0.0)
    """
    if pred is None:
        return 0.0
    kind = (problem_type or "numerical").strip().lower()
    if kind == "regression":
        rel = (abs(pred - target) + 1e-9) / (abs(target) + 1e-9)
        return 1.0 - min(1.0, max(0.0, rel))
    if kind == "numerical":
        return min(1.0, max(0.0, 1.0 - abs(pred - target) / (max_range if max_range > 0 else NUMERIC_MAX_RANGE)))
    return 0.0


def _column(values: Sequence[Any] | None, n: int) -> list[Any]:
    return list(values) if values is not None else [None] * n


def accuracy_reward(completions: Sequence[Any], solution: Sequence[Any] | None = None,
                    progress: Sequence[Any] | None = None, problem_type: Sequence[Any] | None = None,
                    **kwargs: Any) -> list[float | None]:
    """PRIMO's accuracy reward, by ``problem_type`` (``numerical`` when the column is absent).

    The target comes from the ``progress`` column (unrounded, our sim exports) or else ``solution``; a row with
    neither gets None (TRL skips it for this reward). ``multiple choice`` and ``boolean`` rows compare the
    answer text with the solution's, case-insensitively.

    >>> accuracy_reward(["<answer>40</answer>", "<answer>90</answer>", "40"], solution=["<answer>50</answer>"] * 3)
    [0.9, 0.6, 0.0]
    """
    n = len(completions)
    out: list[float | None] = []
    for c, sol, prog, kind in zip(completions, _column(solution, n), _column(progress, n), _column(problem_type, n)):
        text = completion_text(c)
        kind = str(kind or "numerical").strip().lower()
        if kind not in ("numerical", "regression", "multiple choice", "boolean"):
            out.append(None)
            continue
        if kind in ("multiple choice", "boolean"):
            got, want = _FIRST_ANSWER_RE.search(text), _FIRST_ANSWER_RE.search(str(sol or ""))
            out.append(float(bool(got and want and got.group(1).strip().lower() == want.group(1).strip().lower())))
            continue
        y = target_progress(sol, prog)
        out.append(None if y is None else accuracy_score(predicted_value(text), y, kind))
    return out


def length_control_reward(completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                          **columns: Any) -> list[float]:
    """The release's length-control bonus (see the module docstring); needs TRL's ``completion_ids``.

    >>> ok = "<answer>50</answer>"
    >>> length_control_reward([ok, ok, "no answer"], completion_ids=[[0] * 400, [0] * 100, [0] * 400],
    ...                       solution=["<answer>50</answer>"] * 3)
    [0.2, 0.0, 0.0]
    """
    lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else \
        [len(completion_text(c).split()) for c in completions]
    acc = accuracy_reward(completions, **{k: v for k, v in columns.items()
                                          if k in ("solution", "progress", "problem_type")})
    good = [a is not None and a > LENGTH_MIN_ACCURACY for a in acc]
    if sum(good) <= 1:
        return [0.0] * len(completions)
    lo, hi = LENGTH_WINDOW
    return [LENGTH_BONUS if g and lo <= n <= hi else 0.0 for g, n in zip(good, lengths)]


PRIMO_REWARDS = (accuracy_reward, format_reward)
"""The reward functions PRIMO R1's GRPO stage sums (its ``reward_funcs`` default: accuracy, format)."""
PRIMO_REWARDS_LEN_CONTROL = (*PRIMO_REWARDS, length_control_reward)
"""The released run's rewards: accuracy + format + the length-control bonus."""
