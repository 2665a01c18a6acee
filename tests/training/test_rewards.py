"""PRIMO R1's GRPO rewards as the release computes them (no model needed)."""
from __future__ import annotations

import pytest

from primo_loop.training.rewards import (
    PRIMO_REWARDS,
    PRIMO_REWARDS_LEN_CONTROL,
    accuracy_reward,
    format_reward,
    length_control_reward,
    target_progress,
)

FULL = ("<think><planning>reach, grasp, lift</planning><observation>the cube is grasped</observation>"
        "<reasoning>two of three steps</reasoning></think><answer>{}</answer>")


def test_format_reward_is_a_full_match():
    good = FULL.format("40")
    spaced = good.replace("<think>", "<think>\n").replace("</think>", "</think>\n\n")
    assert format_reward([good, spaced]) == [1.0, 1.0]  # whitespace between tags is allowed
    bad = [
        " " + good, good + "\n", "\n" + good,  # no leading or trailing whitespace (the release's fullmatch)
        "<think>no sections</think><answer>40</answer>",
        "<answer>40</answer>",
        FULL.format("40").replace("<observation>the cube is grasped</observation>", ""),
        good + " trailing words",
        "<think><observation>o</observation><planning>p</planning><reasoning>r</reasoning></think>"
        "<answer>1</answer>",  # sections out of order
    ]
    assert format_reward(bad) == [0.0] * len(bad)
    assert format_reward([[{"role": "assistant", "content": good}]]) == [1.0]  # conversational, as TRL passes


def test_accuracy_reward_in_trl_signature():
    completions = [[{"role": "assistant", "content": c}] for c in
                   ["<answer>40</answer>", "<answer>90</answer>", "40", "<answer>?</answer>", "<answer>50</answer>"]]
    rewards = accuracy_reward(prompts=[None] * 5, completions=completions, completion_ids=[[1]] * 5,
                              solution=["<answer>50</answer>"] * 4 + [None], progress=[None] * 5,
                              trainer_state=None, log_extra=None)
    assert rewards[:4] == pytest.approx([0.9, 0.6, 0.0, 0.0]) and rewards[4] is None
    # the unrounded `progress` column wins over the rounded solution
    assert accuracy_reward(["<answer>40</answer>"], solution=["<answer>50</answer>"], progress=[45.0]) == [
        pytest.approx(0.95)]
    assert accuracy_reward(["<answer>100</answer>"], solution=["<answer>0</answer>"]) == [0.0]


def test_accuracy_reward_by_problem_type():
    comp = ["<answer>40</answer>", "<answer>60</answer>", "<answer>0</answer>", "<answer>5</answer>"]
    sols = ["<answer>50</answer>", "<answer>50</answer>", "<answer>0</answer>", "<answer>0</answer>"]
    numerical = accuracy_reward(comp, solution=sols, problem_type=["numerical"] * 4)
    regression = accuracy_reward(comp, solution=sols, problem_type=["regression"] * 4)
    assert numerical == pytest.approx([0.9, 0.9, 1.0, 0.95])
    # 1 - min(1, |p - t| / |t|): 10 off 50 is 0.8; at t = 0 the release's epsilons give 0 even for p = 0
    assert regression == pytest.approx([0.8, 0.8, 0.0, 0.0], abs=1e-8)
    assert accuracy_reward(["<answer>B</answer>", "<answer>a</answer>"], solution=["<answer>b</answer>"] * 2,
                           problem_type=["multiple choice"] * 2) == [1.0, 0.0]
    assert accuracy_reward(["<answer>x</answer>"], solution=["<answer>x</answer>"], problem_type=["OCR"]) == [None]
    # the first answer block counts, and a trailing % divides by 100 (the release's normalisation)
    assert accuracy_reward(["<answer>50</answer><answer>0</answer>", "<answer>50%</answer>"],
                           solution=["<answer>50</answer>"] * 2) == pytest.approx([1.0, 1 - 49.5 / 100])


def test_target_progress_reads_one_as_one():
    # the bug: "<answer>1.0</answer>" was read as 100, so a correct answer of 1 earned about 0.01
    assert target_progress("<answer>1.0</answer>") == 1.0
    assert accuracy_reward(["<answer>1</answer>"], solution=["<answer>1.0</answer>"]) == [1.0]
    assert target_progress("<answer>0.5</answer>") == 0.5 and target_progress(None, None) is None
    assert target_progress("<answer>40</answer>", float("nan")) == 40.0


def test_length_control_bonus():
    ok, far = "<answer>50</answer>", "<answer>0</answer>"
    ids = [[0] * 400, [0] * 100, [0] * 513, [0] * 320]
    sol = ["<answer>50</answer>"] * 4
    # accurate and 320-512 tokens: +0.2; accurate but too short or too long: 0
    assert length_control_reward([ok, ok, ok, ok], completion_ids=ids, solution=sol) == [0.2, 0.0, 0.0, 0.2]
    # only one completion above accuracy 0.1 in the batch: no bonus at all (regression makes 0 score 0)
    assert length_control_reward([ok, far, far, far], completion_ids=ids, solution=sol,
                                 problem_type=["regression"] * 4) == [0.0] * 4
    assert PRIMO_REWARDS_LEN_CONTROL[:2] == PRIMO_REWARDS and length_control_reward in PRIMO_REWARDS_LEN_CONTROL
