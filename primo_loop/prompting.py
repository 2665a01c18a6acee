"""The structured temporal prompt and its named profiles (shared by the primo and remote critics and training).

A user turn is ordered [initial image, video clip, current image, question], as PRIMO R1 reads it. The question
text follows the release's layout (notes/primo_reference.md §6b), in two **profiles**:

- ``primo-sft`` (default; the release's SFT and evaluation layout): a system prompt, then the question template
  with the record's question in its ``{Question}`` slot and the type on its own line under ``QUESTION TYPE:``,
  then a per-type hint appended after the template;
- ``primo-rl`` (the release's GRPO layout): no system message, and the question prefixed with one sentence
  saying what the initial image, the video and the final image are.

The wording is ours unless the user supplies theirs with ``prompt_file=PATH`` (see :func:`load_prompt_file`):
their checkout's prompt module (parsed with :mod:`ast`, never executed) or a text / JSON / YAML file. A record's
question (its ``problem``) is wrapped exactly once, the same way in training and in evaluation.
"""
from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError, check_choice

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------- our wording

SYSTEM_PROMPT = (
    "You are an expert at understanding embodied procedures: you watch an agent work and judge, from what you "
    "see, how far it has come toward finishing its task. Reason before you answer: put your thinking inside "
    "<think> </think> and the final answer inside <answer> </answer>. The <think> block holds three sections in "
    "this order: <planning>, <observation> and <reasoning>. The <answer> block holds only what the question type "
    "asks for, with no comment."
)

QUESTION_TEMPLATE = (
    "QUESTION:\n{Question}\n\n"
    "QUESTION TYPE:\n{question_type}\n\n"
    "Look closely at the visual input and work out where the task stands.\n\n"
    "Think step by step inside <think> </think>, in three sections, then answer inside <answer> </answer>:\n\n"
    "<think>\n"
    "<planning>\nThe goal, the initial state, what success looks like, and the steps that lead to it.\n</planning>\n"
    "<observation>\nWhat happens over time: the agent's actions, how the objects move or change, and any sign of "
    "a slip, a drop or a miss.\n</observation>\n"
    "<reasoning>\nQuestion yourself as you go: match what you observed to the planned steps, check which steps "
    "are really done, and correct yourself if something does not fit.\n</reasoning>\n"
    "</think>\n"
    "<answer>\n[the final answer, in the `{question_type}` format, with nothing else]\n</answer>"
)

TYPE_HINTS = {
    "numerical": " Write only the number (for example 40 or 62.5) inside the <answer> </answer> tags.",
    "regression": " Write only the number (for example 40 or 62.5) inside the <answer> </answer> tags.",
    "multiple choice": " Write only the letter of one option inside the <answer> </answer> tags.",
    "boolean": " Write only Yes or No inside the <answer> </answer> tags.",
}

RL_PREFIX = ("With the first image as the initial state, the video as the attempt so far and the last image as "
             "the current state, ")

PROFILES = ("primo-sft", "primo-rl")
DEFAULT_PROFILE = "primo-sft"
SLOTS = ("Question", "question", "instruction", "question_type", "answer_hint")


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt profile's wording: system prompt, question template, per-type hints and the question prefix.

    The question template may use the slots ``{Question}`` (alias ``{question}``: the record's ``problem``
    text), ``{instruction}``, ``{question_type}`` and ``{answer_hint}`` (where the type hint goes; without this
    slot the hint is appended after the template, as the release does). Slots are replaced literally; with
    ``format_braces`` (templates read from Python modules, which the release fills with ``str.format``) doubled
    braces are then undoubled.

    Attributes:
        system: the system prompt; None or "" sends no system message.
        question: the question template.
        type_hints: hint text by ``problem_type``.
        prefix: text put before the filled template (the RL layout's sentence).
        name: the profile name (for logs and run summaries).
        source: where the wording came from ("ours" or a file path).
        format_braces: undouble ``{{`` / ``}}`` after filling the slots.
    """

    system: str | None = SYSTEM_PROMPT
    question: str = QUESTION_TEMPLATE
    type_hints: Mapping[str, str] = field(default_factory=lambda: dict(TYPE_HINTS))
    prefix: str = ""
    name: str = DEFAULT_PROFILE
    source: str = "ours"
    format_braces: bool = False

    def __post_init__(self) -> None:
        if not any("{" + s + "}" in self.question for s in ("Question", "question", "instruction")):
            raise ConfigError("Expected the question template to contain `{Question}`, `{question}` or "
                              f"`{{instruction}}`, actually: {self.question[:80]!r}... Add the slot where the "
                              "record's question goes.")

    def render_question(self, question: str, instruction: str | None = None,
                        question_type: str = "numerical") -> str:
        """The full question text: prefix + filled template + type hint.

        >>> PromptTemplate(question="Q: {Question} ({question_type})", type_hints={}).render_question("how far?")
        'Q: how far? (numerical)'
        """
        hint = self.type_hints.get(question_type, "")
        values = {"Question": question, "question": question, "instruction": instruction or question,
                  "question_type": question_type, "answer_hint": hint.strip()}
        out = self.question
        for k in SLOTS:
            out = out.replace("{" + k + "}", values[k])
        if self.format_braces:
            out = out.replace("{{", "{").replace("}}", "}")
        return self.prefix + out + ("" if "{answer_hint}" in self.question else hint)


def _strings_in_module(path: Path) -> dict[str, Any]:
    """String and str->str dict literals assigned to names anywhere in a Python file (parsed, never run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Could not parse the prompt module {path}: {exc}") from exc
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue
        ok = isinstance(value, str) or (isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()))
        if not ok:
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                found.setdefault(target.id, value)
    return found


# Names a release checkout uses (facts: src/primo_prompts.py; the RL sentence lives in the GRPO script).
_MODULE_KEYS = {"system": ("SYSTEM_PROMPT",), "question": ("QUESTION_TEMPLATE",), "type_hints": ("TYPE_TEMPLATE",),
                "rl_prefix": ("RL_PREFIX", "prompt_prefix")}
CHECKOUT_FILES = ("src/primo_prompts.py", "src/r1-v/src/open_r1/grpo_interleave.py")


def load_prompt_file(path: str | Path) -> dict[str, Any]:
    """Read prompt wording from a user's file; returns the keys found among ``system``, ``question``,
    ``type_hints``, ``rl_prefix`` (plus ``format_braces``).

    - a **folder**: a release checkout; ``src/primo_prompts.py`` gives the system prompt, template and type hints,
      ``src/r1-v/src/open_r1/grpo_interleave.py`` the RL sentence;
    - a **.py** file: parsed with :mod:`ast` (never executed); ``SYSTEM_PROMPT``, ``QUESTION_TEMPLATE``,
      ``TYPE_TEMPLATE`` and ``RL_PREFIX`` (or ``prompt_prefix``) are read where assigned as literals;
    - a **.json / .yaml / .yml** file: a mapping with ``question`` (alias ``user``) and optionally ``system``
      (null for none), ``type_hints`` and ``rl_prefix``;
    - any other file: the whole text is the question template.

    Raises:
        ConfigError: the path is missing or unreadable, or holds no question template.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        prompts = p / CHECKOUT_FILES[0]
        if not prompts.is_file():
            raise ConfigError(f"Expected {p} to be a PRIMO-R1 checkout holding {CHECKOUT_FILES[0]}, actually: not "
                              "found. Pass the prompt module itself (prompt_file=.../primo_prompts.py).")
        out = _from_module(prompts, required=True)
        rl_script = p / CHECKOUT_FILES[1]
        if "rl_prefix" not in out and rl_script.is_file():
            found = _from_module(rl_script, required=False)
            if "rl_prefix" in found:
                out["rl_prefix"] = found["rl_prefix"]
        return out
    if not p.is_file():
        raise ConfigError(f"Prompt file not found: {p}. Pass prompt_file= a .py prompt module, a release checkout "
                          "folder, or a .txt/.json/.yaml file.")
    suffix = p.suffix.lower()
    if suffix == ".py":
        return _from_module(p, required=True)
    text = p.read_text(encoding="utf-8")
    if suffix not in (".json", ".yaml", ".yml"):
        return {"question": text}
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json/yaml raise their own types
        raise ConfigError(f"Could not read the prompt file {p}: {exc}") from exc
    if not isinstance(data, Mapping) or not (data.get("question") or data.get("user")):
        raise ConfigError(f"Expected {p} to hold a mapping with a `question` template (and optionally `system`, "
                          f"`type_hints`, `rl_prefix`), actually: {type(data).__name__} without one")
    out = {"question": data.get("question") or data["user"]}
    for key in ("system", "type_hints", "rl_prefix"):
        if key in data:
            out[key] = data[key]
    return out


def _from_module(path: Path, required: bool) -> dict[str, Any]:
    names = _strings_in_module(path)
    out: dict[str, Any] = {}
    for key, candidates in _MODULE_KEYS.items():
        for name in candidates:
            value = names.get(name)
            if isinstance(value, dict if key == "type_hints" else str):
                out[key] = value
                break
    if required and "question" not in out:
        raise ConfigError(f"Expected {path} to assign QUESTION_TEMPLATE a string literal, actually: not found "
                          f"(names with string values: {sorted(names)[:12]})")
    if out:
        out["format_braces"] = True
    return out


def resolve_template(template: PromptTemplate | str | Path | None = None,
                     profile: str = DEFAULT_PROFILE) -> PromptTemplate:
    """The prompt for a profile, with the wording of ``template`` (a :class:`PromptTemplate` is used as is; a
    path is read with :func:`load_prompt_file`; None gives our wording).

    >>> resolve_template(profile="primo-rl").system is None
    True
    """
    if isinstance(template, PromptTemplate):
        return template
    profile = check_choice("prompt_profile", str(profile), PROFILES)
    words: dict[str, Any] = load_prompt_file(template) if template not in (None, "") else {}
    system = words.get("system", SYSTEM_PROMPT)
    prefix = ""
    if profile == "primo-rl":
        system = None
        prefix = words.get("rl_prefix", RL_PREFIX)
        if template not in (None, "") and "rl_prefix" not in words:
            logger.warning("prompt file %s has no RL prefix sentence (RL_PREFIX or prompt_prefix); using ours",
                           template)
    return PromptTemplate(system=system, question=words.get("question", QUESTION_TEMPLATE),
                          type_hints=dict(words.get("type_hints", TYPE_HINTS)), prefix=prefix, name=profile,
                          source=str(template) if template not in (None, "") else "ours",
                          format_braces=bool(words.get("format_braces", False)))


DEFAULT_TEMPLATE = PromptTemplate()


def progress_question(instruction: str) -> str:
    """The ``problem`` text of a progress record: the instruction and the progress question (our PRIMO exports
    carry the same text).

    >>> progress_question("lift the cube")[:28]
    'Task: "lift the cube". The f'
    """
    return (f'Task: "{instruction}". The first image shows the initial state, the video shows the attempt so '
            "far, and the last image shows the current state. How far has the task progressed? Answer with a "
            "number from 0 (not started) to 100 (fully completed).")


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
        question: the record's ``problem`` text (instruction + progress question), wrapped here exactly once.
        initial: the initial-state image.
        clip: the video clip.
        current: the current-state image.
        template: the prompt profile's wording (default ``primo-sft`` in our words).
        instruction: the bare instruction, for templates that use ``{instruction}``.
        question_type: PRIMO's ``problem_type``.

    Returns:
        ``[system message (unless the profile has none), user message]`` with list-of-parts contents.

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


def query_question(query: Any) -> str:
    """The question a critic query asks: a benchmark record's own ``problem`` when the query carries one,
    else the progress question written from its instruction (so a record is never wrapped twice)."""
    return getattr(query, "question", None) or progress_question(query.instruction)


def format_response(progress: float, reasoning: str | None = None) -> str:
    """A response in PRIMO's output format (progress on the 0-100 scale).

    >>> format_response(42.4, "<planning>p</planning>")
    '<think><planning>p</planning></think><answer>42</answer>'
    """
    return f"<think>{reasoning or ''}</think><answer>{int(round(float(progress)))}</answer>"


__all__ = ["PromptTemplate", "resolve_template", "load_prompt_file", "build_messages", "format_response",
           "progress_question", "extract_instruction", "query_question", "PROFILES", "DEFAULT_PROFILE",
           "DEFAULT_TEMPLATE"]
