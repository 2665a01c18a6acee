"""The prompt profiles (primo-sft, primo-rl), wording read from a user's file, and wrapping a record once."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from primo_loop.errors import ConfigError, UnknownNameError
from primo_loop.prompting import (
    DEFAULT_TEMPLATE,
    QUESTION_TEMPLATE,
    RL_PREFIX,
    SYSTEM_PROMPT,
    TYPE_HINTS,
    PromptTemplate,
    build_messages,
    extract_instruction,
    format_response,
    load_prompt_file,
    progress_question,
    query_question,
    resolve_template,
)
from primo_loop.types import CriticQuery

CHECKOUT = Path(__file__).resolve().parents[1] / "fixtures" / "prompt_checkout"
MODULE = CHECKOUT / "src" / "primo_prompts.py"


def _user_text(messages):
    return messages[-1]["content"][-1]["text"]


def test_messages_order_is_image_video_image_question():
    msgs = build_messages("How far?", initial="I0", clip="CLIP", current="I1")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"][0]["text"] == SYSTEM_PROMPT
    parts = msgs[1]["content"]
    assert [p["type"] for p in parts] == ["image", "video", "image", "text"]
    assert parts[0]["image"] == "I0" and parts[1]["video"] == "CLIP" and parts[2]["image"] == "I1"
    for tag in ("<planning>", "<observation>", "<reasoning>", "<answer>"):
        assert tag in parts[3]["text"]


def test_sft_layout_follows_the_release():
    text = _user_text(build_messages("How far has it come?", question_type="numerical"))
    # QUESTION block, then QUESTION TYPE with the type on its own line, the template, the hint after it
    assert text.startswith("QUESTION:\nHow far has it come?\n\nQUESTION TYPE:\nnumerical\n\n")
    assert text.endswith("</answer>" + TYPE_HINTS["numerical"])
    regression = _user_text(build_messages("q", question_type="regression"))
    assert regression.endswith(TYPE_HINTS["regression"]) and "QUESTION TYPE:\nregression\n" in regression
    assert _user_text(build_messages("q", question_type="free-form")).endswith("</answer>")  # no hint known


def test_rl_layout_has_no_system_and_the_prefix():
    rl = resolve_template(profile="primo-rl")
    msgs = build_messages("How far?", template=rl)
    assert [m["role"] for m in msgs] == ["user"]
    text = _user_text(msgs)
    assert text.startswith(RL_PREFIX + "QUESTION:\nHow far?\n") and text.endswith(TYPE_HINTS["numerical"])
    with pytest.raises(UnknownNameError, match="primo-rl"):
        resolve_template(profile="primo-r1")


def test_placeholders_carry_no_none_keys():
    # A chat template turns any `image`/`video` key, even None, into a vision placeholder.
    parts = build_messages("q")[1]["content"]
    assert parts[:3] == [{"type": "image"}, {"type": "video"}, {"type": "image"}]


def test_prompt_module_is_parsed_never_executed():
    # The fixture raises if executed; its wording is ours, in the release's structure.
    words = load_prompt_file(MODULE)
    assert words["system"].startswith("FIXTURE-SYSTEM") and "{Question}" in words["question"]
    assert words["type_hints"]["numerical"] == " FIXTURE-HINT-NUMERICAL." and "rl_prefix" not in words
    sft = resolve_template(MODULE, "primo-sft")
    msgs = build_messages("Task: lift. How far?", template=sft, question_type="numerical")
    assert msgs[0]["content"][0]["text"] == words["system"]
    text = _user_text(msgs)
    # what the release's str.format + type hint would give: slots filled, doubled braces undoubled
    want = words["question"].replace("{Question}", "Task: lift. How far?").replace("{question_type}", "numerical")
    want = want.replace("{{", "{").replace("}}", "}") + " FIXTURE-HINT-NUMERICAL."
    assert text == want and "{like this}" in text


def test_checkout_folder_gives_the_rl_prefix(caplog):
    rl = resolve_template(CHECKOUT, "primo-rl")
    text = rl.render_question("How far?", question_type="regression")
    assert rl.system is None and text.startswith("FIXTURE-RL-PREFIX: first image initial")
    assert text.endswith(" FIXTURE-HINT-REGRESSION.")
    # the module alone has no RL sentence: ours is used, and the log says so
    with caplog.at_level("WARNING"):
        assert resolve_template(MODULE, "primo-rl").prefix == RL_PREFIX
    assert "no RL prefix" in caplog.text


def test_text_json_yaml_files(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("Instruction: {instruction}. Progress? JSON like {\"a\": 1} stays.")
    t = resolve_template(txt)
    assert t.system == SYSTEM_PROMPT
    assert t.render_question("q", instruction="lift", question_type="other") == \
        'Instruction: lift. Progress? JSON like {"a": 1} stays.'
    yml = tmp_path / "t.yaml"
    yml.write_text("system: null\nquestion: 'Q: {question}'\ntype_hints: {numerical: ' H.'}\n")
    msgs = build_messages("how far", template=resolve_template(yml))
    assert [m["role"] for m in msgs] == ["user"] and _user_text(msgs) == "Q: how far H."
    js = tmp_path / "t.json"
    js.write_text('{"question": "{Question} [{answer_hint}]", "type_hints": {"numerical": " H."}}')
    assert resolve_template(js).render_question("q") == "q [H.]"  # the hint goes in its slot, not after
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder here")
    with pytest.raises(ConfigError, match="Question"):
        resolve_template(bad)
    with pytest.raises(ConfigError, match="not found"):
        resolve_template(tmp_path / "missing.txt")
    module = tmp_path / "m.py"
    module.write_text("SYSTEM_PROMPT = 'x'\n")
    with pytest.raises(ConfigError, match="QUESTION_TEMPLATE"):
        resolve_template(module)


def test_instruction_round_trip():
    text = DEFAULT_TEMPLATE.render_question(progress_question("put the can in the bin"))
    assert extract_instruction(text) == "put the can in the bin"


def test_a_record_question_is_wrapped_once():
    frame = np.zeros((8, 8, 3), np.uint8)
    problem = 'Task: "open the door". How far has the task progressed? Answer 0-100.'
    record_query = CriticQuery(instruction="open the door", initial=frame, clip=frame[None], current=frame,
                               question=problem)
    sim_query = CriticQuery(instruction="open the door", initial=frame, clip=frame[None], current=frame)
    assert query_question(record_query) == problem
    assert query_question(sim_query) == progress_question("open the door")
    text = DEFAULT_TEMPLATE.render_question(query_question(record_query))
    assert text.count("QUESTION:") == 1 and text.count(problem) == 1
    # the evaluator's prompt and the trainer's prompt for one record are the same text
    from primo_loop.critics.primo import VLMCritic

    critic = VLMCritic.__new__(VLMCritic)
    critic.template = DEFAULT_TEMPLATE
    assert _user_text(critic.messages(record_query)) == _user_text(build_messages(problem))


def test_template_validation_and_format_response():
    with pytest.raises(ConfigError, match="slot"):
        PromptTemplate(question="no slot")
    assert "{Question}" in QUESTION_TEMPLATE and "{question_type}" in QUESTION_TEMPLATE
    assert format_response(63.4, "<planning>p</planning>") == "<think><planning>p</planning></think><answer>63</answer>"


def test_the_evaluator_asks_an_official_record_its_own_question(monkeypatch):
    """An official record (no `instruction`) reaches the critic once wrapped: its `problem` is the question."""
    from primo_loop.evaluate import EvalConfig, evaluate
    from primo_loop.types import CriticVerdict

    for name in ("VIDEO_DATA_ROOT", "PRIMO_DATA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    seen: list[str] = []

    class Spy:
        name = "spy"

        def assess(self, queries):
            seen.extend(build_messages(query_question(q))[-1]["content"][-1]["text"] for q in queries)
            return [CriticVerdict(progress=0.5) for _ in queries]

    records = CHECKOUT.parent / "primo" / "records.jsonl"
    evaluate(Spy(), [records], None, EvalConfig(nframes=4))
    problem = "Task: lift the red block. How far has the task progressed (0-100)?"
    assert seen and all(t.count("QUESTION:") == 1 and t.count(problem) == 1 for t in seen)
    assert all(progress_question(problem) not in t for t in seen)  # not wrapped in our sim question
