"""The robots our environments support, and how each is driven.

Every robot runs robosuite's BASIC composite controller: OSC_POSE deltas (position + axis-angle, in the
arm's base frame) per arm plus the gripper/hand actuators. Single arms have a 7-D action
``[dx, dy, dz, dax, day, daz, grip]``; the GR1ArmsOnly humanoid has 24-D (right arm 0-6, left arm 6-12,
right hand 12-18, left hand 18-24). ``grip`` is -1 open, +1 closed.
"""
from __future__ import annotations

ARM_ROBOTS: tuple[str, ...] = ("Panda", "Sawyer", "UR5e", "IIWA", "Kinova3", "Jaco")
HUMANOID_ROBOTS: tuple[str, ...] = ("GR1ArmsOnly",)
ROBOTS: tuple[str, ...] = ARM_ROBOTS + HUMANOID_ROBOTS


def is_humanoid(robot: str) -> bool:
    """True for the two-armed humanoids (24-D action, dexterous hands)."""
    return robot in HUMANOID_ROBOTS


def controller_config(robot: str) -> dict:
    """robosuite's BASIC composite controller config for ``robot`` (imports robosuite)."""
    from robosuite.controllers import load_composite_controller_config

    return load_composite_controller_config(controller="BASIC", robot=robot)
