"""The two answer readers on one table of model outputs written by us: the lenient loop reader and the official
benchmark reader (the release's extraction, notes/primo_reference.md §6b)."""
from __future__ import annotations

import math

import pytest

from primo_loop.answers import (
    lenient_progress,
    official_number,
    read_answer,
    read_lenient,
    read_official,
    solution_value,
)
from primo_loop.errors import UnknownNameError

FULL = ("<think><planning>reach, grasp, lift</planning><observation>the cube is grasped</observation>"
        "<reasoning>two of three steps</reasoning></think><answer>{}</answer>")

# (model output, lenient reading on 0-100, official reading as the release computes it)
TABLE = [
    # PRIMO's own format: the readers agree
    (FULL.format("67"), 67.0, 67.0),
    ("<think>x</think><answer>40</answer>", 40.0, 40.0),
    ("<answer> 40 </answer>", 40.0, 40.0),
    ("<answer>40.5</answer>", 40.5, 40.5),
    ("<answer>\n72\n</answer>", 72.0, 72.0),
    ("<answer>0</answer>", 0.0, 0.0),
    ("<answer>100</answer>", 100.0, 100.0),
    ("<answer>1</answer>", 1.0, 1.0),
    ("<answer>~40</answer>", 40.0, 40.0),
    ("<answer>≈40</answer>", 40.0, 40.0),
    ("<answer>1,000</answer>", None, 1000.0),  # lenient: above 200 is no progress value
    ("<answer>4.5e1</answer>", 45.0, 45.0),
    ("<answer>+40</answer>", 40.0, 40.0),
    ("67", 67.0, 67.0),  # a bare number: the official reader falls back to the whole text
    (" 67 ", 67.0, 67.0),
    # percentages: the release divides by 100 on a trailing %; we read % as already on the 0-100 scale
    ("<answer>40%</answer>", 40.0, 0.4),
    ("<answer>40 %</answer>", 40.0, 0.4),
    ("<answer>0.5%</answer>", 0.5, 0.005),
    ("0.5%", 0.5, 0.005),
    ("<answer>0.5％</answer>", 0.5, 0.005),  # full-width percent sign
    ("<answer>~37.5%</answer>", 37.5, 0.375),
    ("<answer>40 percent</answer>", 40.0, None),
    ("<answer>150%</answer>", 100.0, 1.5),
    # fractions of 1: we scale decimals in [0, 1] to 0-100, the release keeps them
    ("<answer>0.4</answer>", 40.0, 0.4),
    ("<answer>.75</answer>", 75.0, 0.75),
    ("<answer>1.0</answer>", 100.0, 1.0),
    # hedges and words the release cannot read
    ("<answer>about 40</answer>", 40.0, None),
    ("<answer>approximately 40%</answer>", 40.0, None),
    ("<answer>Progress: 40</answer>", 40.0, None),
    ("<answer>roughly 55 (step 2 of 3)</answer>", 55.0, None),
    ("<answer>40-50</answer>", 45.0, None),
    ("<answer>40 - 50%</answer>", 45.0, None),
    ("<answer>40–50</answer>", 45.0, None),
    ("<answer>40 to 50</answer>", 45.0, None),
    ("<answer>0.5%-1%</answer>", 0.75, None),
    ("<answer>3/4</answer>", 75.0, None),
    ("<answer>40/100</answer>", 40.0, None),
    ("<answer>2 out of 5</answer>", 40.0, None),
    ("<answer>complete</answer>", 100.0, None),
    ("<answer>not started</answer>", 0.0, None),
    ("<answer>halfway</answer>", 50.0, None),
    ("<answer>not done</answer>", None, None),
    ("<answer>unclear</answer>", None, None),
    # step counts are not progress (the release reads nothing either)
    ("<answer>Step 3</answer>", None, None),
    ("<answer>2 of 5 steps</answer>", None, None),
    ("<answer>step 4/5</answer>", None, None),
    # out of range: we bound, the release does not
    ("<answer>105</answer>", 100.0, 105.0),
    ("<answer>-5</answer>", 0.0, -5.0),
    ("<answer>4000</answer>", None, 4000.0),
    # several blocks: we read the last, the release the first
    ("<answer>10</answer> wait, <answer>30</answer>", 30.0, 10.0),
    ("<answer>unsure</answer><answer>30</answer>", 30.0, None),
    # tag case and broken tags
    ("<ANSWER>40</ANSWER>", 40.0, None),
    ("<Answer>40</Answer>", 40.0, None),
    ("<answer>67", 67.0, None),
    ("<answer></answer>", None, None),
    ("<answer>  </answer>", None, None),
    # no tags at all
    ("<think>two steps done</think> 67", 67.0, None),
    ("<think>two steps done</think>The progress is 67%.", 67.0, None),
    ("about 40", 40.0, None),
    ("~40", 40.0, 40.0),
    ("40%", 40.0, 0.4),
    ("The task is about 40% complete.", 40.0, None),
    ("Progress: 40", 40.0, None),
    ("The progress is 40-50% by now.", 45.0, None),
    ("I estimate the progress at 35 because 2 of 3 steps are done", 35.0, None),
    # unreadable to both
    ("", None, None),
    ("<think>the gripper moves toward the cube, step 2 of", None, None),  # cut off inside <think>
    ("I cannot tell from these images what the robot has done so far, sorry.", None, None),
    ("ceionWrite o</ objects^mhi withialInageliftximate t<think st", None, None),  # a random model's output
    ("<answer>N/A</answer>", None, None),
]


def _same(got: float | None, want: float | None) -> bool:
    return got is None if want is None else got is not None and math.isclose(got, want, rel_tol=1e-12)


def test_table_is_large_enough():
    assert len(TABLE) >= 60 and len({t for t, _, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize("text,lenient,official", TABLE)
def test_lenient_reader(text, lenient, official):
    got = read_lenient(text).progress
    assert _same(got, lenient), f"{text!r}: lenient read {got}, expected {lenient}"


@pytest.mark.parametrize("text,lenient,official", TABLE)
def test_official_reader(text, lenient, official):
    got = read_official(text).progress
    assert _same(got, official), f"{text!r}: official read {got}, expected {official}"


def _release_reading(text: str) -> float | None:
    """The release's extraction written out once more from its description, for a cross-check."""
    import re

    m = re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.DOTALL)
    ans = m.group(1).strip() if m else ""
    if ans == "":
        ans = text
    s = ans.strip().replace("≈", "").replace("~", "").replace("％", "%")
    try:
        if s.endswith("%"):
            return float(s[:-1].replace(",", "")) / 100.0
        return float(s.replace(",", ""))
    except ValueError:
        return None


def test_official_reader_matches_the_described_harness_on_the_table():
    for text, _, _ in TABLE:
        assert _same(read_official(text).progress, _release_reading(text)), text


def test_none_and_modes():
    assert read_lenient(None).progress is None and read_official(None).progress is None
    assert read_answer("<answer>0.4</answer>", "official").progress == 0.4
    assert read_answer("<answer>0.4</answer>").progress == 40.0
    with pytest.raises(UnknownNameError, match="official"):
        read_answer("x", "offical")


def test_reasoning_is_kept():
    parsed = read_lenient(FULL.format("67"))
    assert parsed.tagged and parsed.progress == 67.0
    assert parsed.reasoning.startswith("<planning>reach") and parsed.reasoning.endswith("steps</reasoning>")
    assert read_lenient("all done <answer>100</answer>").reasoning == "all done"
    assert read_lenient("<think>partial thought").reasoning == "partial thought"
    assert not read_lenient("about 40").tagged
    assert read_official(FULL.format("67")).reasoning.startswith("<planning>reach")


def test_solution_value_reads_one_as_one():
    assert solution_value("<answer>1.0</answer>") == 1.0 and solution_value("<answer>37</answer>") == 37.0
    assert solution_value(None) is None and official_number("") is None
    assert lenient_progress("<answer>~37.5%</answer>") == 37.5
