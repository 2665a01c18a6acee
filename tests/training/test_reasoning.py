"""SFT targets written from privileged sim events."""
from __future__ import annotations

from primo_loop.answers import read_lenient as parse_response
from primo_loop.training.reasoning import sft_target, write_reasoning
from primo_loop.training.rewards import format_reward

STEPS = ["reach the block", "grasp it", "lift it"]


def test_sim_record_reasoning_follows_the_events_to_the_label():
    rec = {"problem_id": "ep/t0012", "instruction": "lift the red block", "canonical_steps": STEPS,
           "events": ["grasped"], "progress": 55.0, "solution": "<answer>55</answer>"}
    target = sft_target(rec)
    assert format_reward([target]) == [1.0]  # exactly PRIMO's tag structure
    parsed = parse_response(target)
    assert parsed.progress == 55.0
    assert "1) reach the block; 2) grasp it; 3) lift it" in parsed.reasoning  # planning = canonical steps
    assert "grasped" in parsed.reasoning  # observation = the events so far
    assert "1 of the 3 steps is done" in parsed.reasoning and "next one is: grasp it" in parsed.reasoning


def test_failure_and_edge_progress():
    text = write_reasoning("lift the block", STEPS, ["grasped", "dropped"], 30, failed=True, key="a")
    assert "failed" in text and "estimate the progress at 30" in text
    assert "All 3 steps are done" in write_reasoning("lift", STEPS, ["lifted"], 100)
    assert "not finished yet" in write_reasoning("lift", STEPS, [], 0)
    assert "has not changed the scene" in write_reasoning("lift", STEPS, [], 0, key="x") or \
        "Nothing has visibly changed" in write_reasoning("lift", STEPS, [], 0, key="x")


def test_deterministic_and_varied_phrasing():
    a = [write_reasoning("lift", STEPS, ["grasped"], 50, key=f"ep/{i}") for i in range(6)]
    assert a == [write_reasoning("lift", STEPS, ["grasped"], 50, key=f"ep/{i}") for i in range(6)]
    assert len({t.split(".")[0] for t in a}) > 1  # the openers vary with the record id


def test_official_fields_and_unlabelled_records():
    rec = {"planning": "P", "observation": "O", "reasoning": "R", "solution": "<answer>70</answer>"}
    assert sft_target(rec) == ("<think><planning>P</planning><observation>O</observation><reasoning>R</reasoning>"
                               "</think><answer>70</answer>")
    assert sft_target({"process": "thinking", "solution": "<answer>5</answer>"}) == \
        "<think>thinking</think><answer>5</answer>"
    # no events known (an official record without CoT): no claim about what happened
    target = sft_target({"problem": "Task: open the door.", "solution": "<answer>20</answer>"})
    assert "compare the current image" in target and parse_response(target).progress == 20.0
    assert sft_target({"problem": "x"}) is None
