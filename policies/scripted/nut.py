"""The scripted NutAssemblySquare policy: grasp the square nut by its handle, carry it over the square peg, turn
it square to the peg, line it up, lower it down the peg and let go.

The shared waypoint machine (:class:`~policies.scripted.policy.ScriptedPolicy`) does approach -> descend ->
grasp -> lift -> transport -> lower -> release -> retreat, with the waypoints of
:class:`~policies.scripted.plans.NutSquarePlan` (grasp at the handle, fingers closing across it; carry the nut's
bottom above the peg top; release with the nut's centre on the peg axis at the table). This subclass adds what a
peg with 7 mm of room each side needs:

* while carrying, the hand turns about the vertical so that the handle points towards the robot or sideways
  (:func:`carry_turn`): the nut's sides are then parallel to the peg's, and the hand stays within reach;
* while lowering, the nut stays at its height until its centre is within 4 mm of the peg axis, and only then
  goes down.

``ScriptedPolicy(env)`` builds this class for NutAssemblySquare (it registers with ``task="NutAssemblySquare"``).
Failure modes: the shared ``drop`` (let go 30-70 % of the way to the peg), ``offset_grasp`` (close 4-5 cm off
the handle, on its outer side: towards the nut the fingers would close on the ring), ``close_early`` (close 5-9 cm
above it) and ``freeze``.
"""
from __future__ import annotations

import numpy as np

from envs.tasks.nut_square import NUT_HALF_HEIGHT
from policies.scripted.geometry import rot_z, wrap
from policies.scripted.policy import ScriptedPolicy

LINE_UP_TOL = 0.004  # m: nut centre to peg axis (x/y) before it goes down the peg
CARRY_PHASES = ("transport", "lower", "release", "retreat", "hold")
OFFSET_ARC = 70.0  # degrees either side of the handle's outward direction that offset_grasp closes in


def carry_turn(handle_yaw: float) -> float:
    """The turn (rad, about the vertical) that points the handle along -x, +y or -y, whichever is nearest.

    The nut's sides are parallel to its handle, so any of these squares it to the peg; the fourth, +x (away from
    the robot), would put the hand beyond the peg, out of some arms' reach.

    >>> [round(carry_turn(a), 4) for a in (0.3, np.pi - 0.2, -1.0)]
    [1.2708, 0.2, -0.5708]
    """
    goals = (np.pi / 2, np.pi, -np.pi / 2)
    turns = [wrap(g - handle_yaw, 2 * np.pi) for g in goals]
    return min(turns, key=abs)


class NutSquarePolicy(ScriptedPolicy, task="NutAssemblySquare"):
    """:class:`ScriptedPolicy` that squares the nut to the peg and lines it up before lowering."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._r_carry: np.ndarray | None = None  # hand orientation that holds the nut square to the peg

    def replan(self) -> None:
        super().replan()
        self._r_carry = None

    def _draw_failure(self) -> None:
        """The shared draws, with ``offset_grasp``'s direction kept to the handle's outer side: closing 4-5 cm
        off the handle towards the nut closes on the ring and often holds it (11 of 20 Panda episodes held it,
        2 succeeded; none of the 6 within 82 degrees of the outward direction did)."""
        super()._draw_failure()
        turn = (np.arctan2(self._offset[1], self._offset[0]) + np.pi) / (2 * np.pi)  # the drawn direction, in [0, 1]
        ang = self.plan.object_yaw() + np.radians(OFFSET_ARC) * (2 * turn - 1)
        self._offset = np.linalg.norm(self._offset) * np.array([np.cos(ang), np.sin(ang), 0.0])

    def _r_target(self) -> np.ndarray:
        if self._r_carry is not None and self.phase in CARRY_PHASES:
            return self._r_carry
        return super()._r_target()

    def _phase_transport(self) -> np.ndarray:
        if self._r_carry is None:
            turn = carry_turn(self.plan.object_yaw())
            self._r_carry = rot_z(turn) @ self.view.eef_mat(self.arm)
        return super()._phase_transport()

    def _phase_lower(self) -> np.ndarray:
        obj, goal = self.plan.object_pos(), self.plan.place_pos()
        eef = self.view.eef_pos(self.arm)
        target = eef + (goal - obj)
        above_peg = obj[2] - NUT_HALF_HEIGHT > self.env.oracle.peg_top() - 0.005
        if above_peg and np.linalg.norm(goal[:2] - obj[:2]) > LINE_UP_TOL and self._phase_t <= 60:
            target[2] = max(eef[2], self.plan.carry_z())  # line up first, then go down
        if abs(goal[2] - obj[2]) < 0.007 or self._phase_t > 90:
            self._set_phase("release")
            return self._phase_release()
        return self._action(target, 1.0, max_speed=0.5)
