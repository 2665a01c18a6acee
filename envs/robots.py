"""The robots our environments support, and how each is driven.

Every robot runs robosuite's BASIC composite controller: OSC_POSE deltas (position + axis-angle, in the
arm's base frame) per arm plus the gripper/hand actuators. Single arms have a 7-D action
``[dx, dy, dz, dax, day, daz, grip]``; the GR1ArmsOnly humanoid has 24-D (right arm 0-6, left arm 6-12,
right hand 12-18, left hand 18-24). ``grip`` is -1 open, +1 closed.
"""
from __future__ import annotations

import numpy as np

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


# robosuite 1.5.2's Robotiq85 gripper (default of UR5e and Kinova3) cannot close with mujoco 3.9: its tendon
# linkage drifts and each inner finger jams on its inner knuckle with the pads 6 cm apart, so it cannot hold
# a 4 cm cube. We give those arms the Robotiq140 (IIWA's default), which closes.
GRIPPERS: dict[str, str] = {"UR5e": "Robotiq140Gripper", "Kinova3": "Robotiq140Gripper"}

# Control steps (20 Hz) a robot's gripper needs, from its open state, to close firmly on a 4 cm object.
# Jaco's gripper integrates its command at 0.01 per step (robosuite's design): it is slow.
GRIP_STEPS: dict[str, int] = {"Panda": 8, "Sawyer": 8, "UR5e": 10, "IIWA": 10, "Kinova3": 10, "Jaco": 35,
                              "GR1ArmsOnly": 15}

# Collision geoms switched off because robosuite 1.5.2's models jam on them (with mujoco 3.9):
# - Sawyer: the link0 sphere rests on the base cylinder and the contact's friction locks joint 0 (the arm
#   then cannot reach y < ~0.05 over the table).
# These geoms touch nothing else in our tasks.
_NO_COLLISION_GEOMS: dict[str, tuple[str, ...]] = {
    "Sawyer": ("robot0_base_col",),
}

# World shift (x, y, z) of a robot's root body, applied after construction. GR1ArmsOnly stands at
# (-0.55, 0, 0.95) with its hands at 1.1 m, ~0.55 m behind the table centre: its right hand (held at its start
# orientation: fingers forward, palm facing left) cannot get below ~0.9 m nor reach the cube. Moved 0.25 m
# forward, 0.15 m to its left and 0.2 m down (shoulders ~0.3 m above the table top, torso clear of the table),
# the right palm reaches the cube's side at the table top. The OSC controllers and ``robot0_base_pos`` read the
# base pose from the simulator, so they follow.
BASE_SHIFT: dict[str, tuple[float, float, float]] = {"GR1ArmsOnly": (0.25, 0.15, -0.2)}


def fix_model(robot: str, sim) -> None:
    """Patch known robosuite model problems of ``robot`` in a live ``sim`` (idempotent).

    Changes ``sim.model`` in place: they last across soft resets; a hard reset rebuilds the model, after which
    this is called again.
    """
    for name in _NO_COLLISION_GEOMS.get(robot, ()):
        gid = sim.model.geom_name2id(name)
        sim.model.geom_contype[gid] = 0
        sim.model.geom_conaffinity[gid] = 0
    shift = BASE_SHIFT.get(robot)
    if shift is not None and not getattr(sim.model, "_primo_base_shifted", False):
        bid = sim.model.body_name2id("robot0_base")
        sim.model.body_pos[bid] += np.asarray(shift)
        sim.model._primo_base_shifted = True
        sim.forward()
