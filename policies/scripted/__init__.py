"""Scripted waypoint policies with failure injection, for every task and robot in ``envs``.

A :class:`ScriptedPolicy` reads privileged state (object poses, gripper poses) from the env and drives the
OSC_POSE controller with P-control on waypoints: approach above the grasp point -> descend -> close ->
lift -> (transport -> lower -> release -> retreat) -> hold. Targets are world positions turned into the
arm controller's frame (the humanoid's arm frames are tilted), and the gripper is kept pointing down with
its fingers aligned to the object's yaw.

The GR1ArmsOnly humanoid (Lift only; ``scripted_robots``/``check_scripted``) runs the same plan with its right
arm and hand, the left arm held still and its hand open: the hand keeps its start orientation (fingers forward,
palm facing left) and the palm goes to ``HAND_OFFSET`` beside the cube, so closing wraps the fingers around it.
It relies on ``envs.robots.BASE_SHIFT``, which moves the robot closer to and lower at the table.

Failure injection (``failure=``), drawn from ``seed`` so episodes are reproducible:

* ``drop``: open the gripper and stop the arm while carrying (Lift, Stack: 4-10 cm up; PickPlaceCan:
  30-70 % of the way to the goal).
* ``offset_grasp``: approach and close 4-5 cm off the grasp point (in x/y), then carry on as if held.
* ``close_early``: close 5-9 cm above the grasp point, then carry on.
* ``push_away``: lower a closed gripper beside the object and sweep it 0.35 m away.
* ``freeze``: stop moving (zero arm motion) at a random step in steps 10-45.

Door has phases of its own (grasp the lever from the front, turn it, pull the door round its hinge):
:class:`~policies.scripted.door.DoorPolicy`, which ``ScriptedPolicy(env)`` builds for a Door env. Its failure
modes are drop (let go while pulling), offset_grasp (close above or below the lever), close_early (close in
front of it) and freeze. NutAssemblySquare likewise gets :class:`~policies.scripted.nut.NutSquarePolicy` (the
shared phases, plus turning the nut square to the peg and lining it up before lowering).

``failure_injected_at`` is the env step at which the failure happened. ``replan()`` restarts from the
approach wherever the robot is and disables injection for the rest of the episode, so a replan after a
drop can succeed.

The package by concern: :mod:`~policies.scripted.policy` (the waypoint state machine),
:mod:`~policies.scripted.plans` (where each task's waypoints are; which task/robot pairs are scripted),
:mod:`~policies.scripted.hands` (per-robot grippers and hands), :mod:`~policies.scripted.geometry` (rotations),
:mod:`~policies.scripted.evaluation` (success rates). Every public name is importable from here.
"""
from __future__ import annotations

from policies.scripted.door import DoorPolicy  # imported here so that ScriptedPolicy(env) finds it for Door
from policies.scripted.evaluation import evaluate
from policies.scripted.geometry import POS_SCALE, R_DOWN, ROT_SCALE, choose_yaw, rot_error, rot_z, wrap, yaw_of
from policies.scripted.hands import (
    CLOSE_LEVEL,
    CLOSEDNESS,
    GRASP_DZ,
    HAND_OFFSET,
    OPEN_LEVEL,
    WIDE_OPEN_LEVEL,
    grip_command,
    gripper_is_open,
    hand_offset,
    open_level,
)
from policies.scripted.nut import NutSquarePolicy  # as DoorPolicy: found by ScriptedPolicy(env)
from policies.scripted.plans import (
    HUMANOID_TASKS,
    PLANS,
    DoorPlan,
    LiftPlan,
    NutSquarePlan,
    PickPlaceCanPlan,
    StackPlan,
    TaskPlan,
    check_plan,
    check_scripted,
    scripted_robots,
)
from policies.scripted.policy import FAILURE_MODES, ScriptedPolicy

__all__ = [
    "CLOSEDNESS", "CLOSE_LEVEL", "DoorPlan", "DoorPolicy", "FAILURE_MODES", "GRASP_DZ", "HAND_OFFSET",
    "HUMANOID_TASKS", "NutSquarePlan", "NutSquarePolicy", "OPEN_LEVEL", "PLANS",
    "POS_SCALE", "ROT_SCALE", "R_DOWN", "WIDE_OPEN_LEVEL", "LiftPlan", "PickPlaceCanPlan", "ScriptedPolicy",
    "StackPlan", "TaskPlan", "check_plan", "check_scripted", "choose_yaw", "evaluate", "grip_command",
    "gripper_is_open", "hand_offset", "open_level", "rot_error", "rot_z", "scripted_robots", "wrap", "yaw_of",
]
