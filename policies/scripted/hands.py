"""What the scripted policies know about each robot's gripper or hand: where it grasps and how to drive it.

The GR1ArmsOnly humanoid grasps with its right hand at its start orientation (fingers forward along world +x,
palm facing world +y, thumb up): the palm goes to ``HAND_OFFSET`` beside the object, the fingers past it, and
closing curls the ring and pinky fingers around it against the palm (a power grasp; see ``SimView.grasping``).
The offset keeps the lower edge of the hand off the table top.

robosuite's grippers integrate the sign of their command (Jaco's slowly: 0.01 per step), so "open" and "closed"
are levels of the integrated command (``gripper.current_action``) where the policy stops pushing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# per-robot grasp depth: grip-site height relative to the grasp point (fingers' reach differs)
GRASP_DZ = {"Panda": -0.005, "Jaco": 0.005}
# humanoid hands: the palm's world offset from the grasp point (replaces GRASP_DZ)
HAND_OFFSET = {"GR1ArmsOnly": np.array([-0.07, -0.045, 0.015])}
# how closed a gripper is, in [-1, 1], from robosuite's integrated command (``gripper.current_action``)
CLOSEDNESS = {
    "PandaGripper": lambda ca: float(ca[1]),
    "RethinkGripper": lambda ca: float(ca[0]),
    "Robotiq140Gripper": lambda ca: float(ca[0]),
    "JacoThreeFingerGripper": lambda ca: float(-ca[0]),
}
# where "open" stops for objects up to ~4.5 cm (cubes); -1 = fully open
OPEN_LEVEL = {"Robotiq140Gripper": -0.4, "JacoThreeFingerGripper": 0.0}
WIDE_OPEN_LEVEL = {"JacoThreeFingerGripper": -0.4}  # for the can (6.6 cm)
CLOSE_LEVEL = {"JacoThreeFingerGripper": 0.4}


def hand_offset(robot: str) -> np.ndarray:
    """Grip site relative to the grasp point when grasping (world).

    >>> hand_offset("Jaco").tolist(), hand_offset("Sawyer").tolist()
    ([0.0, 0.0, 0.005], [0.0, 0.0, -0.005])
    """
    if robot in HAND_OFFSET:
        return HAND_OFFSET[robot]
    return np.array([0.0, 0.0, GRASP_DZ.get(robot, -0.005)])


def open_level(gripper_name: str, wide_open: bool) -> float:
    """Where "open" stops for the gripper class ``gripper_name`` (-1: fully open).

    >>> open_level("JacoThreeFingerGripper", wide_open=False), open_level("PandaGripper", wide_open=True)
    (0.0, -1.0)
    """
    levels = WIDE_OPEN_LEVEL if wide_open else OPEN_LEVEL
    return levels.get(gripper_name, -1.0)


def grip_command(gripper: Any, grip: float, wide_open: bool) -> float:
    """The gripper action for a wanted state (+1 closed, -1 open) of robosuite's ``gripper``.

    "Open" stops at the gripper's OPEN_LEVEL for small objects (``wide_open`` False): Jaco's fingers would take
    ~100 steps to close again from fully open, and the Robotiq140's 14 cm span would hit a neighbouring cube.
    """
    name = type(gripper).__name__
    if grip > 0:
        if (name in CLOSE_LEVEL and not wide_open
                and CLOSEDNESS[name](np.ravel(gripper.current_action)) >= CLOSE_LEVEL[name]):
            return 0.0  # firm enough; closing further would make the release slower
        return grip
    level = open_level(name, wide_open)
    ca = np.ravel(getattr(gripper, "current_action", np.zeros(1)))
    if name not in CLOSEDNESS or ca.size == 0 or level <= -1.0:
        return grip
    closed = CLOSEDNESS[name](ca)
    return -1.0 if closed > level else 0.0


def gripper_is_open(gripper: Any, wide_open: bool) -> bool:
    """Whether ``gripper`` is back at its open level (integrating grippers); always True for the others."""
    name = type(gripper).__name__
    if name not in CLOSEDNESS or open_level(name, wide_open) <= -1.0:
        return True
    return CLOSEDNESS[name](np.ravel(gripper.current_action)) <= open_level(name, wide_open) + 0.05
