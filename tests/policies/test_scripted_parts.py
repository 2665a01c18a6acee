"""The parts of ``policies/scripted/`` without a simulator: how each gripper is driven, the yaw choice, and the
names callers import from ``policies.scripted`` (the package re-exports every name of the former module)."""
from __future__ import annotations

import numpy as np
import pytest

from policies.scripted.geometry import choose_yaw
from policies.scripted.hands import grip_command, gripper_is_open


def gripper(cls_name: str, current_action=None):
    """A stand-in for a robosuite gripper: the policy reads only its class name and ``current_action``."""
    attrs = {} if current_action is None else {"current_action": np.asarray(current_action, float)}
    return type(cls_name, (), attrs)()


@pytest.mark.parametrize("closed_by, wide_open, command", [
    (0.5, False, 0.0),  # Jaco past its close level on a cube: stop closing (the release stays quick)
    (0.1, False, 1.0),  # not there yet: keep closing
    (0.5, True, 1.0),  # the can: no close level, keep closing
])
def test_jaco_closes_to_its_level_on_cubes_only(closed_by, wide_open, command):
    # Jaco's closedness is the negated integrated command
    assert grip_command(gripper("JacoThreeFingerGripper", [-closed_by]), 1.0, wide_open) == command


@pytest.mark.parametrize("closed_by, wide_open, command, is_open", [
    (0.3, False, -1.0, False),  # closed beyond the open level (0.0): open
    (0.03, False, -1.0, True),  # still opening, yet open enough for the release (0.05 of slack)
    (-0.2, False, 0.0, True),  # at the open level for cubes: stop, or the fingers would take long to close again
    (-0.2, True, -1.0, False),  # the can needs the wider level (-0.4): keep opening
    (-0.5, True, 0.0, True),
])
def test_jaco_opens_only_to_its_open_level(closed_by, wide_open, command, is_open):
    assert grip_command(gripper("JacoThreeFingerGripper", [-closed_by]), -1.0, wide_open) == command
    assert gripper_is_open(gripper("JacoThreeFingerGripper", [-closed_by]), wide_open) is is_open


def test_the_robotiq_stops_opening_before_its_full_span_and_others_pass_the_command_through():
    # its 14 cm span would hit a neighbouring cube: "open" stops at -0.4
    assert grip_command(gripper("Robotiq140Gripper", [-0.5]), -1.0, False) == 0.0
    assert grip_command(gripper("Robotiq140Gripper", [-0.3]), -1.0, False) == -1.0
    assert grip_command(gripper("Robotiq140Gripper", [-0.5]), -1.0, True) == -1.0  # wide: fully open
    for g in (gripper("PandaGripper", [0.0, 0.9]), gripper("SomeHandWithoutState")):
        assert grip_command(g, -1.0, False) == -1.0 and grip_command(g, 1.0, False) == 1.0
        assert gripper_is_open(g, False)  # no open level: nothing to wait for


def test_the_yaw_keeps_the_fingers_off_a_neighbour_and_turns_the_least_otherwise():
    quarter = np.pi / 2
    assert choose_yaw(0.3 + 2 * quarter, quarter, None) == pytest.approx(0.3)  # the object's symmetry, not its yaw
    # a neighbour along world y: the fingers (closing along the gripper's y axis) turn to close along x
    yaw = choose_yaw(0.3, quarter, np.array([0.0, 1.0]))
    assert yaw == pytest.approx(0.3 - quarter) and abs(np.cos(yaw)) < abs(np.cos(0.3))
    assert all(abs(choose_yaw(y, quarter, None)) <= quarter / 2 + 1e-9 for y in np.linspace(-3, 3, 25))


def test_every_name_of_the_former_module_imports_from_the_package():
    import policies.scripted as scripted
    from policies.scripted import (  # noqa: F401 - the imports callers make today
        FAILURE_MODES,
        HAND_OFFSET,
        ScriptedPolicy,
        check_scripted,
        evaluate,
        scripted_robots,
    )

    former = {"FAILURE_MODES", "R_DOWN", "POS_SCALE", "ROT_SCALE", "GRASP_DZ", "HAND_OFFSET", "HUMANOID_TASKS",
              "CLOSEDNESS", "OPEN_LEVEL", "WIDE_OPEN_LEVEL", "CLOSE_LEVEL", "rot_z", "yaw_of", "wrap", "rot_error",
              "TaskPlan", "LiftPlan", "StackPlan", "PickPlaceCanPlan", "PLANS", "scripted_robots", "check_scripted",
              "check_plan", "ScriptedPolicy", "evaluate"}
    assert former <= set(scripted.__all__) and all(hasattr(scripted, n) for n in scripted.__all__)
    assert ScriptedPolicy.__module__ == "policies.scripted.policy" and evaluate.__module__.endswith(".evaluation")
