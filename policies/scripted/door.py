"""The scripted Door policy: grasp the lever from the front, turn it until the latch lets go, pull the door open.

Phases: approach (in front of the lever end, gripper pointing into the door, fingers closing vertically) ->
descend (in to the lever) -> grasp -> turn (the grip site rotated about the latch axis, the hand rolling with
the lever) -> pull (rotated about the hinge axis, the hand yawing with the door) -> hold. ``ScriptedPolicy(env)``
builds this class for the Door task (it registers with ``task="Door"``).

Failure injection (the modes of ``envs.task_spec("Door").failure_modes``):

* ``drop``: open the gripper and stop while pulling, with the door 30-70 % of the way open.
* ``offset_grasp``: close 4-5 cm above or below the lever.
* ``close_early``: close 5-9 cm in front of the lever.
* ``freeze``: stop moving at a random step in 10-45 (the shared machinery).
"""
from __future__ import annotations

import numpy as np

from envs.tasks.door import OPEN_ANGLE, UNLATCH_ANGLE
from policies.scripted.geometry import rot_error
from policies.scripted.policy import ScriptedPolicy

TURN_TO = UNLATCH_ANGLE + 0.1  # turn a little past the angle where the latch lets go
TURN_SIGN = -1.0  # the lever turns freely either way; this way the arm's wrist has room (measured on Panda)
TURN_LEAD = 0.3  # rad: how far ahead of the lever each turning step aims


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` (rad) about the unit-normalised ``axis`` (Rodrigues).

    >>> np.round(axis_rotation(np.array([0.0, 0.0, 2.0]), np.pi / 2) @ np.array([1.0, 0.0, 0.0]), 6).tolist()
    [0.0, 1.0, 0.0]
    """
    a = np.asarray(axis, dtype=np.float64)
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


class DoorPolicy(ScriptedPolicy, task="Door"):
    """:class:`ScriptedPolicy` with the Door's own phases (see the module docstring)."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._r_goal = self.plan.grip_rotation()
        self._r_held: np.ndarray | None = None  # hand orientation when a phase that turns it started
        self._hinge0 = 0.0
        self._vertical = float(self._param_rng.choice([-1.0, 1.0]))  # offset_grasp: above or below the lever
        self._last_eef: np.ndarray | None = None
        self._still = 0

    def replan(self) -> None:
        super().replan()
        self._r_goal, self._r_held = self.plan.grip_rotation(), None

    def _r_target(self) -> np.ndarray:
        return self._r_goal

    def _grasp_target(self) -> np.ndarray:
        g = self.plan.grasp_pos()
        if self._injecting("offset_grasp"):
            g = g + np.array([0.0, 0.0, self._vertical * np.linalg.norm(self._offset)])
        return g

    def _phase_approach(self) -> np.ndarray:
        target = self._grasp_target() - self.plan.front_distance * self.plan.into_door()
        if (self._rot_ok() and (self._err(target) < 0.01 or self._stuck())) or self._phase_t > 80:
            self._set_phase("descend")
        return self._action(target, -1.0)

    def _phase_descend(self) -> np.ndarray:
        target = self._grasp_target() + 0.005 * self.plan.into_door()
        if self._injecting("close_early"):
            if float(np.dot(target - self.view.eef_pos(self.arm), self.plan.into_door())) < self._close_height:
                self._injected()
                self._set_phase("grasp")
                return self._phase_grasp()
        if self._err(target) < 0.007 or self._stuck() or self._phase_t > 40:
            self._set_phase("grasp")
            return self._phase_grasp()
        return self._action(target, -1.0)

    def _phase_lift(self) -> np.ndarray:  # after the grasp: the Door turns instead of lifting
        self._set_phase("turn")
        return self._phase_turn()

    def _phase_turn(self) -> np.ndarray:
        if self._r_held is None:
            self._r_held = self.view.eef_mat(self.arm)
        angle = abs(self.env.oracle.handle_angle())
        if angle >= TURN_TO or self._phase_t > 80:
            self._set_phase("pull")
            self._r_held = None
            return self._phase_pull()
        anchor, axis = self.plan.latch_axis()
        step = TURN_SIGN * TURN_LEAD
        eef = self.view.eef_pos(self.arm)
        target = anchor + axis_rotation(axis, step) @ (eef - anchor)
        self._r_goal = axis_rotation(axis, TURN_SIGN * angle + step) @ self._r_held
        return self._action(target, 1.0)

    def _phase_pull(self) -> np.ndarray:
        if self._r_held is None:
            self._r_held, self._hinge0 = self.view.eef_mat(self.arm), self.env.oracle.hinge_angle()
        hinge = self.env.oracle.hinge_angle()
        if self._injecting("drop") and hinge > self._drop_frac * OPEN_ANGLE:
            return self._drop()
        if self.env.oracle.success() or self._phase_t > 100:
            self._set_phase("hold")
            return self._phase_hold()
        anchor, axis = self.plan.hinge_axis()
        eef = self.view.eef_pos(self.arm)
        target = anchor + axis_rotation(axis, 0.15) @ (eef - anchor)
        self._r_goal = axis_rotation(axis, hinge - self._hinge0 + 0.1) @ self._r_held
        return self._action(target, 1.0)

    def _stuck(self) -> bool:
        """The grip site has moved less than 1 mm a step for 5 steps (blocked short of its waypoint: some arms
        cannot reach the exact front pose), after the phase's first 10 steps."""
        eef = self.view.eef_pos(self.arm)
        last = getattr(self, "_last_eef", None)
        self._still = self._still + 1 if last is not None and np.linalg.norm(eef - last) < 0.001 else 0
        self._last_eef = eef
        return self._phase_t > 10 and self._still >= 5

    def _rot_ok(self) -> bool:
        return bool(np.linalg.norm(rot_error(self._r_goal, self.view.eef_mat(self.arm))) < 0.1)
