"""Task specs and the privileged-state oracle they share.

A :class:`TaskSpec` says what a task is in words (instruction, canonical steps) and which robosuite env and
robots it uses. Its ``oracle`` class watches the simulator during an episode and turns privileged state into
progress in [0, 1], a stage name, the events seen so far, and failure events. These are our own definitions:
robosuite's shaped rewards are not progress (Lift's has no lifting term at all).

Shared rules of every object task (the per-task modules add their stages on top):

* **reach** (0 .. ``reach_weight``): linear in the distance from the nearest gripper to the grasp point,
  from the distance at reset (0) down to ``reach_tol`` (full weight).
* **grasp** (``grasp_level``): the object is held, i.e. robosuite's ``_check_grasp`` (both finger pads touch
  it; for a dexterous hand also palm-or-thumb plus a finger) for 2 consecutive steps; a hold ends after 3 steps without contact.
* **carried** (``grasp_level`` .. <1): task-specific (lift height, alignment, transport); lift fractions are
  the highest reached during the current hold, so lowering onto a goal does not lower progress.
* **success** = robosuite's ``_check_success()`` -> 1.0.
* When the object is not held, progress is ``max(reach, resting_progress)``: a dropped object falls back to
  the reach level.

Failure events (``failed`` latches when one happens):

* ``"the <object> was dropped"``: a hold that had lifted the object ends away from the goal.
* ``"the grasp missed the <object>"``: the gripper was commanded closed for ``envs.robots.GRIP_STEPS``
  + 8 steps, starting within ``miss_radius`` of the grasp point, without ever holding the object.
* ``"the <object> was pushed out of reach"`` / ``"the <object> fell off the table"``: task-specific bounds.
* ``"the robot stopped moving"``: neither the grippers' positions nor their finger joints moved more than
  ``stall_tol`` for ``stall_window`` steps before success.

Recovery (so that "replan after a failure" can succeed): a new hold clears ``failed`` whatever the failure
was, unless the object is still out of the workspace; a stall is also cleared when a gripper moves again. The events list keeps the whole history.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.robots import GRIP_STEPS
from primo_loop.errors import UnsupportedError


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, in words and in robosuite terms.

    Attributes:
        name: our task name (also the Gymnasium id ``primo/<name>-v0``).
        env_name: the robosuite environment it builds.
        instruction: the instruction given to the critic.
        canonical_steps: the plan in words (used to write VLM reasoning).
        robots: robots that can do it with our controller and scripted policy.
        oracle: the per-episode oracle class (a :class:`TaskOracle` subclass).
        env_kwargs: robosuite keyword arguments our definition fixes.
        stages: documented stage names, in order, with their progress ranges.
        failure_modes: scripted failure modes that make sense for this task.
        horizon: default episode length (steps at 20 Hz): the slowest supported robot's scripted policy
            succeeds well within it.
    """

    name: str
    env_name: str
    instruction: str
    canonical_steps: tuple[str, ...]
    robots: tuple[str, ...]
    oracle: type[TaskOracle]
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    failure_modes: tuple[str, ...] = ("drop", "offset_grasp", "close_early", "push_away", "freeze")
    horizon: int = 200

    def check_robot(self, robot: str) -> None:
        """Raise UnsupportedError if ``robot`` cannot do this task."""
        if robot not in self.robots:
            raise UnsupportedError(f"Robot {robot!r} is not supported for task {self.name!r}; "
                                   f"robots that work for {self.name}: {', '.join(self.robots)}.")


class SimView:
    """Read-only helpers over a robosuite env: gripper positions, grasp checks, grip commands."""

    def __init__(self, rs_env: Any):
        self.env = rs_env
        self.sim = rs_env.sim
        self.robot = rs_env.robots[0]
        self.arms: tuple[str, ...] = tuple(self.robot.arms)
        self._eef_site = {arm: self.robot.eef_site_id[arm] for arm in self.arms}
        split = self.robot.composite_controller._action_split_indexes
        self._grip_slice = {arm: slice(*split[f"{arm}_gripper"]) for arm in self.arms if f"{arm}_gripper" in split}
        # dexterous hands (the humanoid's) also hold an object between the palm and the curled fingers
        self._hand_groups: dict[str, list[list[str]]] = {}
        for arm in self.arms:
            gripper = self.robot.gripper[arm]
            palm = [g for g in gripper.contact_geoms if "palm" in g]
            if palm:
                important = gripper.important_geoms
                self._hand_groups[arm] = [palm + list(important["left_fingerpad"]), list(important["right_fingerpad"])]

    def eef_pos(self, arm: str) -> np.ndarray:
        return np.array(self.sim.data.site_xpos[self._eef_site[arm]])

    def eef_mat(self, arm: str) -> np.ndarray:
        return np.array(self.sim.data.site_xmat[self._eef_site[arm]]).reshape(3, 3)

    def all_eef_pos(self) -> np.ndarray:
        return np.concatenate([self.eef_pos(a) for a in self.arms])

    def motion_state(self) -> np.ndarray:
        """Gripper positions and finger joint positions: what moves when the robot does anything."""
        fingers = [self.sim.data.qpos[self.robot._ref_gripper_joint_pos_indexes[a]] for a in self.arms]
        return np.concatenate([self.all_eef_pos(), *fingers])

    def nearest_arm(self, point: np.ndarray) -> tuple[str, float]:
        """The arm whose gripper is nearest to ``point``, and the distance."""
        dists = {a: float(np.linalg.norm(self.eef_pos(a) - point)) for a in self.arms}
        arm = min(dists, key=dists.get)
        return arm, dists[arm]

    def body_pos(self, body_id: int) -> np.ndarray:
        return np.array(self.sim.data.body_xpos[body_id])

    def body_quat(self, body_id: int) -> np.ndarray:
        """Body orientation, (w, x, y, z) as MuJoCo stores it."""
        return np.array(self.sim.data.body_xquat[body_id])

    def grasping(self, obj: Any) -> bool:
        """robosuite's grasp check (finger pads of any gripper touch ``obj``); for dexterous hands, also the
        palm or thumb together with a finger (a power grasp, where the thumb may not touch)."""
        if self.env._check_grasp(gripper=self.robot.gripper, object_geoms=obj):
            return True
        return any(self.env._check_grasp(gripper=groups, object_geoms=obj) for groups in self._hand_groups.values())

    def grip_command(self, action: np.ndarray | None, arm: str) -> float:
        """Mean gripper command of ``arm`` in ``action`` (> 0 closing); 0 without an action."""
        if action is None or arm not in self._grip_slice:
            return 0.0
        return float(np.mean(action[self._grip_slice[arm]]))


def frac(x: float) -> float:
    """Clip to [0, 1].

    >>> frac(1.7), frac(-0.2), frac(0.25)
    (1.0, 0.0, 0.25)
    """
    return float(min(1.0, max(0.0, x)))


class TaskOracle:
    """Per-episode monitor: progress, stage, events and failures from privileged sim state.

    Subclasses name the object (``noun``), where to grasp it, and the carried/resting progress; the shared
    reach/grasp/drop/miss/push/stall logic lives here (see the module docstring).
    """

    noun = "object"
    reach_weight = 0.3
    grasp_level = 0.5
    reach_tol = 0.02
    lift_event_height: float | None = 0.03  # emit "<object> was lifted" above this height (None: never)
    miss_radius = 0.15
    stall_window = 30
    stall_tol = 0.005
    success_event = "the task was completed"

    def __init__(self, view: SimView, spec: TaskSpec, robot: str):
        self.view = view
        self.spec = spec
        self.miss_steps = GRIP_STEPS.get(robot, 10) + 8
        self._setup()

    # ----- hooks for subclasses -------------------------------------------------------------------------
    def _setup(self) -> None:
        """Look up body ids etc. (called once)."""

    def object_pos(self) -> np.ndarray:
        raise NotImplementedError

    def grasp_point(self) -> np.ndarray:
        return self.object_pos()

    def grasping(self) -> bool:
        raise NotImplementedError

    def success(self) -> bool:
        return bool(self.view.env._check_success())

    def carried_progress(self, lift: float) -> tuple[float, str]:
        """Progress and stage while the object is held; ``lift`` in [0, 1] is the best lift this hold."""
        return self.grasp_level + (1.0 - self.grasp_level) * 0.99 * lift, "lift"

    def lift_fraction(self, height: float) -> float:
        """Height above the resting height -> lift fraction in [0, 1]."""
        return frac(height / 0.05)

    def resting_progress(self) -> float:
        """Progress credited to where the object lies when not held (e.g. released in the goal)."""
        return 0.0

    def release_ok(self) -> bool:
        """Whether letting go of the object now is part of the plan (not a drop)."""
        return False

    def displaced_event(self) -> str | None:
        """A failure event if the (unheld) object left the reachable workspace, else None."""
        return None

    def extra(self) -> dict[str, Any]:
        """Task-specific numbers for ``privileged()``."""
        return {}

    # ----- episode bookkeeping ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.t = 0
        self.events: list[str] = []
        self._since_fail = 0
        self.failed = False
        self.failure_event: str | None = None
        self.obj0 = self.object_pos()
        self.rest_z = float(self.obj0[2])
        _, self.d0 = self.view.nearest_arm(self.grasp_point())
        self.d0 = max(self.d0, self.reach_tol + 0.05)
        self.grasp_streak = 0
        self.since_grasp = 10**6
        self.holding = False
        self.hold_lift = 0.0
        self.lifted = False  # the current hold raised the object above lift_event_height
        self.reached = False
        self.was_success = False
        self.close_streak = 0
        self.close_contact = False
        self.close_near = False
        self.displaced = False
        self.stalled_at: np.ndarray | None = None
        self.eef_hist: deque[np.ndarray] = deque(maxlen=self.stall_window)
        self._update(None)

    def step(self, action: np.ndarray) -> None:
        self.t += 1
        self._update(np.asarray(action, dtype=np.float64))

    def _event(self, text: str) -> None:
        self.events.append(text)

    def _fail(self, text: str) -> None:
        self.events.append(text)
        self._since_fail = len(self.events)
        if not self.failed:  # failure_event names what made the attempt fail first
            self.failed = True
            self.failure_event = text

    def _update(self, action: np.ndarray | None) -> None:
        n = self.noun
        obj = self.object_pos()
        arm, dist = self.view.nearest_arm(self.grasp_point())
        success = self.success()
        grasp_now = self.grasping()
        height = float(obj[2] - self.rest_z)

        if not self.reached and dist <= self.reach_tol + 0.01 and not self.holding:
            self.reached = True
            self._event(f"the gripper reached the {n}")

        # holds: start after 2 contact steps, end after 3 steps without contact
        if grasp_now:
            self.grasp_streak += 1
            self.since_grasp = 0
        else:
            self.grasp_streak = 0
            self.since_grasp += 1
        if not self.holding and self.grasp_streak >= 2:
            self.holding, self.hold_lift, self.lifted = True, 0.0, False
            self._event(f"the {n} was grasped")
            if self.displaced_event() is None:  # a new hold is a recovery (not of an object out of reach)
                self.failed, self.failure_event, self.displaced = False, None, False
            self.stalled_at = None
        if self.holding:
            self.hold_lift = max(self.hold_lift, self.lift_fraction(height))
            if (not self.lifted and self.lift_event_height is not None and height > self.lift_event_height):
                self.lifted = True
                self._event(f"the {n} was lifted")
            if self.since_grasp >= 3:
                self.holding = False
                if not self.release_ok():
                    self.reached = False
                    if self.lifted or height > 0.01 or self.hold_lift > 0.2:
                        self._fail(f"the {n} was dropped")
                    else:
                        self._event(f"the {n} was released")

        # a missed grasp: closed near the object for miss_steps without ever holding it
        closing = action is not None and self.view.grip_command(action, arm) > 0
        if closing and not self.holding:
            if self.close_streak == 0:
                self.close_near, self.close_contact = dist <= self.miss_radius, False
            self.close_streak += 1
            self.close_contact |= grasp_now
            if self.close_streak == self.miss_steps and self.close_near and not self.close_contact:
                self._fail(f"the grasp missed the {n}")
        elif not closing:
            self.close_streak = 0

        if not self.holding and not self.displaced:
            ev = self.displaced_event()
            if ev is not None:
                self.displaced = True
                self._fail(ev)

        # stalls
        eef = self.view.motion_state()
        self.eef_hist.append(eef)
        if self.stalled_at is not None:
            if np.max(np.abs(eef - self.stalled_at)) > 0.02:
                self.stalled_at = None
                if self.failure_event == "the robot stopped moving":
                    self.failed, self.failure_event = False, None
                    self._event("the robot moved again")
        elif not success and len(self.eef_hist) == self.stall_window:
            hist = np.stack(self.eef_hist)
            if np.max(np.abs(hist - hist.mean(axis=0))) < self.stall_tol:
                self.stalled_at = eef
                self._fail("the robot stopped moving")

        if success and not self.was_success and self.success_event not in self.events[self._since_fail:]:
            self._event(self.success_event)
        self.was_success = success

        reach = self.reach_weight * frac(1.0 - max(dist - self.reach_tol, 0.0) / (self.d0 - self.reach_tol))
        if success:
            progress, stage = 1.0, "done"
        elif self.holding:
            progress, stage = self.carried_progress(self.hold_lift)
        else:
            resting = self.resting_progress()
            progress = max(reach, resting)
            stage = "release" if resting > reach else ("grasp" if dist <= 0.04 else "reach")
        self.progress = float(min(1.0, max(0.0, progress)))
        self.stage = stage
        self.success_now = success
        self.numbers = {"reach_dist": dist, "object_height": height, "grasped": bool(grasp_now),
                        "holding": self.holding, **self.extra()}

    def snapshot(self) -> dict[str, Any]:
        """The ``privileged()`` dict of the current state."""
        return {
            "progress": self.progress,
            "failed": self.failed,
            "failure_event": self.failure_event,
            "stage": self.stage,
            "success": self.success_now,
            "events": list(self.events),
            "canonical_steps": list(self.spec.canonical_steps),
            **self.numbers,
        }
