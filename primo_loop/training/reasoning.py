"""SFT targets: PRIMO-format reasoning written from privileged simulator events.

PRIMO R1's cold-start SFT data has a 72B teacher write the chain of thought. On our own sim rollouts we know the
truth, so we write it: **planning** = the task's canonical steps, **observation** = the events seen up to the
clip's end, **reasoning** = mapping the events onto the steps, which leads to the labelled progress. The answer is
the record's progress (0-100).

Official PRIMO records may instead carry ``planning`` / ``observation`` / ``reasoning`` (or a whole ``process``)
fields; those are used as they are.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from primo_loop.prompting import format_response
from primo_loop.training.rewards import target_progress

_OPENERS_PLAN = (
    "The goal is to {instruction}.",
    "The task: {instruction}.",
    "I am asked whether the robot managed to {instruction}.",
)
_OPENERS_OBS = (
    "Over the video, I see: {events}.",
    "From the first frame to the current one: {events}.",
    "What happens in the clip: {events}.",
)
_UNKNOWN = "I follow the robot through the video and compare the current image with the initial one."
_NOTHING = (
    "Nothing has visibly changed yet: the scene looks like the initial image.",
    "The robot has not changed the scene yet; the current image matches the initial one.",
)


def _pick(options: Sequence[str], key: str, salt: str) -> str:
    """A deterministic choice (stable across runs and machines, unlike ``hash``)."""
    h = int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:8], 16)
    return options[h % len(options)]


def _clean(s: str) -> str:
    return s.strip().rstrip(".")


def write_reasoning(instruction: str, canonical_steps: Sequence[str], events: Sequence[str] | None, progress: float, *,
                    failed: bool = False, key: str = "") -> str:
    """The ``<planning>``, ``<observation>`` and ``<reasoning>`` sections (without ``<think>``) for one clip.

    Args:
        instruction: the task in words.
        canonical_steps: the task's steps in order (may be empty: a one-step plan is assumed).
        events: the privileged events seen up to the clip's end, in order; None when unknown (not a sim record).
        progress: the labelled progress, 0-100; the reasoning leads to it.
        failed: the attempt has failed by the clip's end.
        key: a stable id (the record's ``problem_id``) that picks among phrasings, so a dataset is varied but
            reproducible.

    >>> text = write_reasoning("lift the cube", ["reach the cube", "grasp it", "lift it"], ["gripper at cube"], 33)
    >>> text.startswith("<planning>") and "<observation>" in text and text.endswith("</reasoning>")
    True
    """
    instruction = _clean(instruction)
    steps = [_clean(s) for s in canonical_steps if s and s.strip()] or [instruction]
    n = len(steps)
    plan = (_pick(_OPENERS_PLAN, key, "plan").format(instruction=instruction)
            + " At the start nothing is done. Success means the last step is finished. The steps are: "
            + "; ".join(f"{i + 1}) {s}" for i, s in enumerate(steps)) + ".")
    evs = [_clean(e) for e in events or [] if e and e.strip()]
    if evs:
        obs = _pick(_OPENERS_OBS, key, "obs").format(events="; then ".join(evs))
    else:
        obs = _UNKNOWN if events is None else _pick(_NOTHING, key, "none")
    p = min(100.0, max(0.0, float(progress)))
    done = min(n, int(math.floor(p / 100.0 * n + 1e-6)))
    parts = []
    if done == 0:
        parts.append(f"The first step ({steps[0]}) is not finished yet.")
    elif done >= n:
        parts.append(f"All {n} steps are done, the last one being: {steps[-1]}.")
    else:
        parts.append(f"{done} of the {n} steps {'is' if done == 1 else 'are'} done (up to: {steps[done - 1]}); "
                     f"the next one is: {steps[done]}.")
    if 0 < p < 100 and done < n:
        within = p / 100.0 * n - done
        parts.append(f"The current step looks about {int(round(100 * within))}% of the way through.")
    if failed:
        parts.append("But the last events show the attempt has failed, so progress will not go further "
                     "without a retry.")
    parts.append(f"Checking again against the current image, I estimate the progress at {int(round(p))}.")
    return (f"<planning>{plan}</planning><observation>{obs}</observation>"
            f"<reasoning>{' '.join(parts)}</reasoning>")


def sft_target(record: Mapping[str, Any]) -> str | None:
    """The full SFT response for a PRIMO record, or None if the record has no label.

    Uses, in order: the record's own ``planning``/``observation``/``reasoning`` fields; its ``process`` text;
    reasoning written from ``canonical_steps``/``events`` (sim exports); or, with none of these, a short plan
    from the instruction alone.

    >>> sft_target({"problem_id": "a", "instruction": "open the door", "progress": 100.0}).endswith(
    ...     "<answer>100</answer>")
    True
    """
    y = target_progress(record.get("solution"), record.get("progress"))
    if y is None:
        return None
    if record.get("planning") or record.get("observation") or record.get("reasoning"):
        think = (f"<planning>{record.get('planning') or ''}</planning>"
                 f"<observation>{record.get('observation') or ''}</observation>"
                 f"<reasoning>{record.get('reasoning') or ''}</reasoning>")
        return format_response(y, think)
    if record.get("process"):
        return format_response(y, str(record["process"]).strip())
    instruction = record.get("instruction") or record.get("problem") or "finish the task"
    return format_response(y, write_reasoning(instruction, record.get("canonical_steps") or [],
                                              record.get("events"), y, failed=bool(record.get("failed")),
                                              key=str(record.get("problem_id", ""))))
