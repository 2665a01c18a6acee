"""The structured prompt, answer parsing and PRIMO rewards (no model needed)."""
from __future__ import annotations

import math

import pytest

from primo_loop.errors import ConfigError
from primo_loop.prompting import (
    DEFAULT_TEMPLATE,
    SYSTEM_PROMPT,
    PromptTemplate,
    accuracy_reward,
    build_messages,
    extract_instruction,
    format_response,
    format_reward,
    parse_progress,
    parse_response,
    progress_question,
)

FULL = ("<think><planning>reach, grasp, lift</planning><observation>the cube is grasped</observation>"
        "<reasoning>two of three steps</reasoning></think><answer>{}</answer>")

PARSE_TABLE = [
    # PRIMO's own format
    (FULL.format("67"), 67.0),
    ("<think>x</think><answer>40</answer>", 40.0),
    ("<answer> 40 </answer>", 40.0),
    ("<answer>40.5</answer>", 40.5),
    ("<answer>\n72\n</answer>", 72.0),
    # percentages and hedges
    ("<answer>40%</answer>", 40.0),
    ("<answer>40 %</answer>", 40.0),
    ("<answer>40 percent</answer>", 40.0),
    ("<answer>~40</answer>", 40.0),
    ("<answer>≈40</answer>", 40.0),
    ("<answer>about 40</answer>", 40.0),
    ("<answer>approximately 40%</answer>", 40.0),
    ("<answer>Progress: 40</answer>", 40.0),
    ("<answer>roughly 55 (step 2 of 3)</answer>", 55.0),
    # ranges -> midpoint
    ("<answer>40-50</answer>", 45.0),
    ("<answer>40 - 50%</answer>", 45.0),
    ("<answer>40–50</answer>", 45.0),
    ("<answer>40 to 50</answer>", 45.0),
    # fractions of 1 and other fractions
    ("<answer>0.4</answer>", 40.0),
    ("<answer>.75</answer>", 75.0),
    ("<answer>1.0</answer>", 100.0),
    ("<answer>1</answer>", 1.0),
    ("<answer>0</answer>", 0.0),
    ("<answer>3/4</answer>", 75.0),
    ("<answer>40/100</answer>", 40.0),
    ("<answer>2 out of 5</answer>", 40.0),
    # out of range
    ("<answer>105</answer>", 100.0),
    ("<answer>150%</answer>", 100.0),
    ("<answer>-5</answer>", 0.0),
    ("<answer>4000</answer>", None),
    # words
    ("<answer>complete</answer>", 100.0),
    ("<answer>not started</answer>", 0.0),
    ("<answer>not done</answer>", None),
    ("<answer>halfway</answer>", 50.0),
    # several answer blocks: the last one counts
    ("<answer>10</answer> wait, <answer>30</answer>", 30.0),
    # missing or broken tags
    ("<think>two steps done</think> 67", 67.0),
    ("<think>two steps done</think>The progress is 67%.", 67.0),
    ("<answer>67", 67.0),
    ("67", 67.0),
    ("about 40", 40.0),
    ("~40", 40.0),
    ("The task is about 40% complete.", 40.0),
    ("Progress: 40", 40.0),
    ("The progress is 40-50% by now.", 45.0),
    ("I estimate the progress at 35 because 2 of 3 steps are done", 35.0),
    # unreadable
    ("", None),
    (None, None),
    ("<answer></answer>", None),
    ("<answer>unclear</answer>", None),
    ("<think>the gripper moves toward the cube, step 2 of", None),  # cut off inside <think>
    ("I cannot tell from these images what the robot has done so far, sorry.", None),
    ("ceionWrite o</ objects^mhi withialInageliftximate t<think st", None),  # a random model's output
]


@pytest.mark.parametrize("text,expected", PARSE_TABLE)
def test_parse_table(text, expected):
    got = parse_progress(text)
    if expected is None:
        assert got is None, f"{text!r} -> {got}"
    else:
        assert got is not None and math.isclose(got, expected), f"{text!r} -> {got}, expected {expected}"


def test_reasoning_is_extracted():
    parsed = parse_response(FULL.format("67"))
    assert parsed.tagged and parsed.progress == 67.0
    assert parsed.reasoning.startswith("<planning>reach") and parsed.reasoning.endswith("steps</reasoning>")
    assert parse_response("all done <answer>100</answer>").reasoning == "all done"
    assert parse_response("<think>partial thought").reasoning == "partial thought"
    assert not parse_response("about 40").tagged


def test_messages_order_is_image_video_image_question():
    msgs = build_messages("How far?", initial="I0", clip="CLIP", current="I1")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"][0]["text"] == SYSTEM_PROMPT
    parts = msgs[1]["content"]
    assert [p["type"] for p in parts] == ["image", "video", "image", "text"]
    assert parts[0]["image"] == "I0" and parts[1]["video"] == "CLIP" and parts[2]["image"] == "I1"
    assert "How far?" in parts[3]["text"] and "QUESTION TYPE: numerical" in parts[3]["text"]
    for tag in ("<planning>", "<observation>", "<reasoning>", "<answer>"):
        assert tag in parts[3]["text"]


def test_placeholders_carry_no_none_keys():
    # A chat template turns any `image`/`video` key, even None, into a vision placeholder.
    parts = build_messages("q")[1]["content"]
    assert parts[:3] == [{"type": "image"}, {"type": "video"}, {"type": "image"}]


def test_template_file_overrides(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("Instruction: {instruction}. Progress? JSON like {\"a\": 1} stays.")
    t = PromptTemplate.load(txt)
    assert t.system == SYSTEM_PROMPT
    assert t.render_question("q", instruction="lift") == 'Instruction: lift. Progress? JSON like {"a": 1} stays.'
    yml = tmp_path / "t.yaml"
    yml.write_text("system: null\nquestion: 'Q: {question}'\n")
    t = PromptTemplate.load(yml)
    msgs = build_messages("how far", template=t)
    assert [m["role"] for m in msgs] == ["user"] and msgs[0]["content"][-1]["text"] == "Q: how far"
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder here")
    with pytest.raises(ConfigError, match="question"):
        PromptTemplate.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        PromptTemplate.load(tmp_path / "missing.txt")


def test_instruction_round_trip():
    text = DEFAULT_TEMPLATE.render_question(progress_question("put the can in the bin"))
    assert extract_instruction(text) == "put the can in the bin"


def test_format_reward():
    good = FULL.format("40")
    assert format_reward([good, " \n" + good + "\n"]) == [1.0, 1.0]
    bad = [
        "<think>no sections</think><answer>40</answer>",
        "<answer>40</answer>",
        FULL.format("40").replace("<observation>the cube is grasped</observation>", ""),
        good + " trailing words",
        "<think><observation>o</observation><planning>p</planning><reasoning>r</reasoning></think>"
        "<answer>1</answer>",  # sections out of order
    ]
    assert format_reward(bad) == [0.0] * len(bad)
    # conversational completions, as TRL passes them
    assert format_reward([[{"role": "assistant", "content": good}]]) == [1.0]


def test_accuracy_reward_in_trl_signature():
    completions = [[{"role": "assistant", "content": c}] for c in
                   ["<answer>40</answer>", "<answer>90</answer>", "40", "<answer>?</answer>", "<answer>50</answer>"]]
    rewards = accuracy_reward(prompts=[None] * 5, completions=completions, completion_ids=[[1]] * 5,
                              solution=["<answer>50</answer>"] * 4 + [None], progress=[None] * 4 + [None],
                              trainer_state=None, log_extra=None)
    assert rewards == [0.9, 0.6, 0.0, 0.0, None]
    # the unrounded `progress` column wins over the rounded solution
    assert accuracy_reward(["<answer>40</answer>"], solution=["<answer>50</answer>"], progress=[45.0]) == [0.95]
    assert accuracy_reward(["<answer>100</answer>"], solution=["<answer>0</answer>"]) == [0.0]


def test_format_response_parses_back():
    text = format_response(63.4, "<planning>p</planning>")
    assert parse_progress(text) == 63.0 and format_reward([text]) == [0.0]  # the sections are incomplete
