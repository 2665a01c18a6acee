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

``failure_injected_at`` is the env step at which the failure happened. ``replan()`` restarts from the
approach wherever the robot is and disables injection for the rest of the episode, so a replan after a
drop can succeed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envs.robots import ARM_ROBOTS, GRIP_STEPS, HUMANOID_ROBOTS
from primo_loop.errors import UnsupportedError, check_choice

FAILURE_MODES = ("drop", "offset_grasp", "close_early", "push_away", "freeze")

# pointing down, fingers aligned with the world axes (all our single arms start close to this)
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
POS_SCALE = 0.05  # OSC_POSE: action 1.0 = 5 cm per step
ROT_SCALE = 0.5  # and 0.5 rad per step

# per-robot grasp depth: grip-site height relative to the grasp point (fingers' reach differs)
GRASP_DZ = {"Panda": -0.005, "Jaco": 0.005}
# Humanoid hands: the grip site is the palm, held at the hand's start orientation (fingers forward along world
# +x, palm facing world +y, thumb up). The palm goes beside the object (world offset from the grasp point, which
# replaces GRASP_DZ), the fingers past it; closing curls the ring and pinky fingers around it against the palm (a
# power grasp; see SimView.grasping). The offset keeps the lower edge of the hand off the table top.
HAND_OFFSET = {"GR1ArmsOnly": np.array([-0.07, -0.045, 0.015])}
HUMANOID_TASKS = ("Lift",)  # tasks with a humanoid plan (Stack/PickPlaceCan: not yet)
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


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(quat_wxyz: np.ndarray) -> float:
    """Yaw (rotation about world z) of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = quat_wxyz
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def wrap(angle: float, period: float) -> float:
    """Wrap ``angle`` into [-period/2, period/2).

    >>> round(wrap(3.0, np.pi / 2), 4)
    -0.1416
    """
    return float((angle + period / 2) % period - period / 2)


def rot_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle (world frame) of the rotation taking ``current`` to ``target``."""
    r = target @ current.T
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-6:  # angle ~ pi: take the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        n = np.linalg.norm(axis)
    return axis / n * angle


class TaskPlan:
    """Where a task's waypoints are, from privileged state. Subclasses per task."""

    approach_height = 0.10
    lift_height = 0.15  # above the grasp height (Lift: final; others: at least the carry height)
    yaw_period: float | None = np.pi / 2  # object symmetry for yaw alignment (None: keep the yaw)
    places = False  # whether the object is carried to a goal and released
    wide_open = False  # open grippers fully (objects wider than a cube)
    drop_in_transport = False  # injected drops happen while carrying to the goal (else while lifting)

    def __init__(self, env: Any):
        self.env = env
        self.oracle = env.oracle

    def object_pos(self) -> np.ndarray:
        return self.oracle.object_pos()

    def grasp_pos(self) -> np.ndarray:
        return self.oracle.grasp_point()

    def object_yaw(self) -> float:
        return 0.0

    def over_goal(self) -> bool:
        """Whether the carried object is over a good enough release area (if the exact spot is not reached)."""
        return bool(np.linalg.norm(self.place_pos()[:2] - self.object_pos()[:2]) < 0.02)

    def avoid_dir(self) -> np.ndarray | None:
        """Unit x/y direction from the object to a neighbour the fingers must not hit (None: no neighbour)."""
        return None

    def place_pos(self) -> np.ndarray:
        """Where the object's reference point should be when released (tasks that place)."""
        raise NotImplementedError

    def carry_z(self) -> float:
        """Height of the grip site while transporting."""
        raise NotImplementedError


class LiftPlan(TaskPlan):
    def object_yaw(self) -> float:
        return yaw_of(self.env.sim_view.body_quat(self.oracle.cube_id))


class StackPlan(TaskPlan):
    places = True

    def avoid_dir(self) -> np.ndarray | None:
        d = self.oracle.view.body_pos(self.oracle.b_id)[:2] - self.object_pos()[:2]
        n = float(np.linalg.norm(d))
        return d / n if n > 1e-6 else None

    def object_yaw(self) -> float:
        return yaw_of(self.env.sim_view.body_quat(self.oracle.a_id))

    def place_pos(self) -> np.ndarray:
        return self.oracle.goal_pos() + np.array([0.0, 0.0, 0.005])

    def carry_z(self) -> float:
        return float(self.oracle.goal_pos()[2]) + 0.10


class PickPlaceCanPlan(TaskPlan):
    places = True
    wide_open = True
    drop_in_transport = True
    yaw_period = None  # a can is round

    def grasp_pos(self) -> np.ndarray:
        return self.oracle.grasp_point() + np.array([0.0, 0.0, 0.025])  # upper half: the palm clears the top

    def place_pos(self) -> np.ndarray:
        # the target quarter's centre is at the edge of the arms' reach: aim at its near part
        quarter_low = self.oracle.target[:2] - self.oracle.bin_size[:2] / 4
        xy = quarter_low + np.array([0.045, 0.05])  # can radius 3.3 cm + margin from the quarter's near edges
        return np.array([*xy, self.oracle.rest_z + 0.03])

    def carry_z(self) -> float:
        return self.oracle.rest_z + 0.15

    def over_goal(self) -> bool:
        quarter_low = self.oracle.target[:2] - self.oracle.bin_size[:2] / 4
        quarter_high = self.oracle.target[:2] + self.oracle.bin_size[:2] / 4
        xy = self.object_pos()[:2]
        return bool(np.all(xy > quarter_low + 0.035) and np.all(xy < quarter_high - 0.035))


PLANS: dict[str, type[TaskPlan]] = {"Lift": LiftPlan, "Stack": StackPlan, "PickPlaceCan": PickPlaceCanPlan}


def scripted_robots(task: str) -> tuple[str, ...]:
    """Robots with a scripted policy for ``task`` (all arms; the humanoids on HUMANOID_TASKS)."""
    return ARM_ROBOTS + (HUMANOID_ROBOTS if task in HUMANOID_TASKS else ())


def check_scripted(task: str, robot: str) -> None:
    """UnsupportedError if there is no scripted policy for ``robot`` on ``task``."""
    if robot in HUMANOID_ROBOTS and task not in HUMANOID_TASKS:
        raise UnsupportedError(
            f"No scripted policy for the humanoid {robot!r} on {task!r} yet (humanoid tasks: "
            f"{', '.join(HUMANOID_TASKS)}); scripted robots for {task}: {', '.join(scripted_robots(task))}. "
            f"Use make_policy('random', env) for humanoid rollouts.")


def check_plan(env: Any) -> TaskPlan:
    """The plan for ``env``'s task (UnsupportedError if there is no scripted policy for it)."""
    if env.task not in PLANS:
        raise UnsupportedError(f"No scripted policy for task {env.task!r}; scripted tasks: {', '.join(PLANS)}.")
    return PLANS[env.task](env)


class ScriptedPolicy:
    """Waypoint policy for ``env``'s task and robot, optionally injecting one failure.

    Args:
        env: a ``RobosuiteEnv`` (or a Gymnasium wrapper of one).
        failure: one of ``FAILURE_MODES`` or None for nominal episodes.
        seed: seeds the failure timing/offsets and the action noise.
        noise: std of Gaussian noise added to every action dimension (clipped to [-1, 1]).
        rotate: turn the hand (down, then to the object's yaw); False keeps its start orientation throughout,
            as actions without rotation do (:class:`envs.actions.PositionActions`).
    """

    def __init__(self, env: Any, failure: str | None = None, seed: int = 0, noise: float = 0.0,
                 rotate: bool = True):
        self.env = env.unwrapped
        self.failure = None if failure is None else check_choice("failure mode", failure, FAILURE_MODES)
        spec = self.env.spec_task
        if self.failure is not None and self.failure not in spec.failure_modes:
            raise UnsupportedError(f"Failure mode {self.failure!r} is not supported for task {spec.name!r}; "
                                   f"supported: {', '.join(spec.failure_modes)}.")
        check_scripted(self.env.task, self.env.robot)
        self.noise = float(noise)
        self.rotate = bool(rotate)
        self.plan = check_plan(self.env)
        self.arm = "right"
        self.view = self.env.sim_view
        self._controller = self.view.robot.part_controllers[self.arm]
        self.n_close = GRIP_STEPS.get(self.env.robot, 10) + 4
        self.seed = int(seed)
        self._seed_rngs(self.seed)
        self.reset()

    # ----- public API ------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (call after ``env.reset``); ``seed`` restarts the policy's random streams."""
        if seed is not None:
            self._seed_rngs(int(seed))
        self.plan = type(self.plan)(self.env)
        self.view = self.env.sim_view
        self._controller = self.view.robot.part_controllers[self.arm]
        self.phase = "approach"
        self._phase_t = 0
        self._mark: np.ndarray | None = None
        self._grip = -1.0
        self.failure_injected_at: int | None = None
        self._inject = self.failure is not None
        self._draw_failure()
        self._humanoid = len(self.view.arms) > 1
        self._r_ref = self.view.eef_mat(self.arm) if self._humanoid or not self.rotate else R_DOWN
        self._align_yaw = self.rotate and not self._humanoid and self.plan.yaw_period is not None

    def replan(self) -> None:
        """Go back to approach + grasp from wherever the robot is; no failure is injected after this."""
        self._inject = False
        self._set_phase("approach")
        self._grip = -1.0

    def act(self, obs: Any = None) -> np.ndarray:
        """The next action (``obs`` is not needed: the policy reads privileged state)."""
        action = self._act()
        if self.noise > 0:
            action = action + self._noise_rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # ----- internals -------------------------------------------------------------------------------------
    def _seed_rngs(self, seed: int) -> None:
        self._param_rng = np.random.default_rng([seed, 1])
        self._noise_rng = np.random.default_rng([seed, 2])

    def _draw_failure(self) -> None:
        r = self._param_rng
        self._drop_height = r.uniform(0.04, 0.10)
        self._drop_frac = r.uniform(0.3, 0.7)
        ang = r.uniform(0, 2 * np.pi)
        self._offset = r.uniform(0.04, 0.05) * np.array([np.cos(ang), np.sin(ang), 0.0])
        self._close_height = r.uniform(0.05, 0.09)
        push_ang = r.choice([-1.0, 1.0]) * r.uniform(np.pi / 3, 2 * np.pi / 3)  # sideways, within reach
        self._push_dir = np.array([np.cos(push_ang), np.sin(push_ang), 0.0])
        self._freeze_at = int(r.integers(10, 46))
        self._push_goal: np.ndarray | None = None
        self._yaw: float | None = None
        self._push_retries = 0

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._phase_t = 0
        self._mark = None

    def _injecting(self, mode: str) -> bool:
        return self._inject and self.failure == mode

    def _injected(self) -> None:
        if self.failure_injected_at is None:
            self.failure_injected_at = int(self.env.step_count)

    def _action(self, target: np.ndarray | None, grip: float, gain: float = 10.0, max_speed: float = 1.0,
                ) -> np.ndarray:
        """Action moving the grip site towards ``target`` (world; None = stay) with the gripper at ``grip``."""
        a = np.zeros(self.env.action_space.shape, dtype=np.float64)
        origin = np.asarray(self._controller.origin_ori)
        if target is not None:
            v = origin.T @ (gain * (target - self.view.eef_pos(self.arm)))
            m = np.max(np.abs(v))
            a[0:3] = v * (max_speed / m) if m > max_speed else v
        a[3:6] = np.clip(origin.T @ rot_error(self._r_target(), self.view.eef_mat(self.arm)) / ROT_SCALE, -1, 1)
        grip_slice = self.view._grip_slice[self.arm]
        a[grip_slice] = self._grip_command(grip)
        for other in self.view.arms:  # the humanoid's other hand stays open
            if other != self.arm and other in self.view._grip_slice:
                a[self.view._grip_slice[other]] = -1.0
        self._grip = grip
        return a

    def _grip_command(self, grip: float) -> float:
        """The gripper action for a wanted state (+1 closed, -1 open).

        robosuite's grippers integrate the sign of their command (Jaco's slowly: 0.01 per step). "Open" stops
        at the gripper's OPEN_LEVEL for small objects: Jaco's fingers would take ~100 steps to close again
        from fully open, and the Robotiq140's 14 cm span would hit a neighbouring cube.
        """
        gripper = self.view.robot.gripper[self.arm]
        name = type(gripper).__name__
        if grip > 0:
            if (name in CLOSE_LEVEL and not self.plan.wide_open
                    and CLOSEDNESS[name](np.ravel(gripper.current_action)) >= CLOSE_LEVEL[name]):
                return 0.0  # firm enough; closing further would make the release slower
            return grip
        level = self._open_level(name)
        ca = np.ravel(getattr(gripper, "current_action", np.zeros(1)))
        if name not in CLOSEDNESS or ca.size == 0 or level <= -1.0:
            return grip
        closed = CLOSEDNESS[name](ca)
        return -1.0 if closed > level else 0.0

    def _gripper_open(self) -> bool:
        """Whether the gripper is back at its open level (integrating grippers) -- always True for others."""
        gripper = self.view.robot.gripper[self.arm]
        name = type(gripper).__name__
        if name not in CLOSEDNESS or self._open_level(name) <= -1.0:
            return True
        return CLOSEDNESS[name](np.ravel(gripper.current_action)) <= self._open_level(name) + 0.05

    def _open_level(self, gripper_name: str) -> float:
        levels = WIDE_OPEN_LEVEL if self.plan.wide_open else OPEN_LEVEL
        return levels.get(gripper_name, -1.0)

    def _r_target(self) -> np.ndarray:
        if not self._align_yaw:
            return self._r_ref
        if self._yaw is None or self.phase in ("approach", "push_setup"):
            self._yaw = self._choose_yaw()
        return rot_z(self._yaw) @ self._r_ref

    def _choose_yaw(self) -> float:
        """Gripper yaw matching the object's faces; among the symmetric choices, the smallest turn that keeps
        the fingers (they close along the gripper's y axis, world y at yaw 0) off a neighbour."""
        period = self.plan.yaw_period
        base = wrap(self.plan.object_yaw(), period)
        choices = [base + k * period for k in range(-2, 3) if abs(base + k * period) <= np.pi / 2 + 1e-6]
        avoid = self.plan.avoid_dir()
        if avoid is None:
            return min(choices, key=abs)

        def cost(yaw: float) -> float:
            closing = np.array([-np.sin(yaw), np.cos(yaw)])
            return abs(float(closing @ avoid)) + 0.1 * abs(yaw)

        return min(choices, key=cost)

    def _err(self, target: np.ndarray) -> float:
        return float(np.linalg.norm(target - self.view.eef_pos(self.arm)))

    def _act(self) -> np.ndarray:
        self._phase_t += 1
        if self._injecting("freeze") and self.env.step_count >= self._freeze_at:
            self._injected()
            self.phase = "frozen"
        if self.phase == "frozen":
            a = self._action(None, self._grip)
            a[:6] = 0.0
            return a
        if self.phase == "dropped":
            a = self._action(None, -1.0)
            a[:6] = 0.0
            return a
        handler = getattr(self, f"_phase_{self.phase}")
        return handler()

    def _hand_offset(self) -> np.ndarray:
        """Grip site relative to the grasp point when grasping (world)."""
        if self.env.robot in HAND_OFFSET:
            return HAND_OFFSET[self.env.robot]
        return np.array([0.0, 0.0, GRASP_DZ.get(self.env.robot, -0.005)])

    def _grasp_target(self) -> np.ndarray:
        g = self.plan.grasp_pos() + self._hand_offset()
        if self._injecting("offset_grasp"):
            g += self._offset
        return g

    def _phase_approach(self) -> np.ndarray:
        if self._injecting("push_away"):
            self._set_phase("push_setup")
            return self._phase_push_setup()
        target = self._grasp_target() + np.array([0.0, 0.0, self.plan.approach_height])
        rot_ok = np.linalg.norm(rot_error(self._r_target(), self.view.eef_mat(self.arm))) < 0.1
        if (self._err(target) < 0.01 and rot_ok) or self._phase_t > 80:
            self._set_phase("descend")
        return self._action(target, -1.0)

    def _phase_descend(self) -> np.ndarray:
        target = self._grasp_target()
        if self._injecting("close_early"):
            if self.view.eef_pos(self.arm)[2] - target[2] < self._close_height:
                self._injected()
                self._set_phase("grasp")
                return self._phase_grasp()
        if self._err(target) < 0.007 or self._phase_t > 40:
            self._set_phase("grasp")
            return self._phase_grasp()
        return self._action(target, -1.0)

    def _phase_grasp(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm)
            if self._injecting("offset_grasp"):
                self._injected()
        if self._phase_t >= self.n_close:
            self._set_phase("lift")
        return self._action(self._mark if self._mark is not None else None, 1.0)

    def _phase_lift(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm) + np.array([0.0, 0.0, self.plan.lift_height])
            if self.plan.places:
                self._mark[2] = max(self._mark[2], self.plan.carry_z())
        if (self._injecting("drop") and not self.plan.drop_in_transport
                and self.plan.object_pos()[2] - self.env.oracle.rest_z > self._drop_height):
            return self._drop()
        if self.plan.places and self._err(self._mark) < 0.02:
            self._set_phase("transport")
            return self._phase_transport()
        return self._action(self._mark, 1.0)

    def _drop(self) -> np.ndarray:
        self._injected()
        self._set_phase("dropped")
        a = self._action(None, -1.0)
        a[:6] = 0.0
        return a

    def _phase_transport(self) -> np.ndarray:
        obj, goal = self.plan.object_pos(), self.plan.place_pos()
        eef = self.view.eef_pos(self.arm)
        if self._mark is None:
            self._mark = obj.copy()  # where the transport started
        target = np.array([eef[0] + goal[0] - obj[0], eef[1] + goal[1] - obj[1], self.plan.carry_z()])
        if self._injecting("drop") and self.plan.drop_in_transport:
            total = np.linalg.norm(goal[:2] - self._mark[:2])
            done = total - np.linalg.norm(goal[:2] - obj[:2])
            if total < 1e-3 or done / total > self._drop_frac:
                return self._drop()
        arrived = np.linalg.norm(goal[:2] - obj[:2]) < 0.02 and abs(target[2] - eef[2]) < 0.03
        if arrived or (self._phase_t > 60 and self.plan.over_goal()):  # the arm may not reach the exact spot
            self._set_phase("lower")
            return self._phase_lower()
        return self._action(target, 1.0)

    def _phase_lower(self) -> np.ndarray:
        obj, goal = self.plan.object_pos(), self.plan.place_pos()
        eef = self.view.eef_pos(self.arm)
        target = eef + (goal - obj)
        if abs(goal[2] - obj[2]) < 0.007 or self._phase_t > 40:
            self._set_phase("release")
            return self._phase_release()
        return self._action(target, 1.0, max_speed=0.5)

    def _phase_release(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm)
            self._released_for = 0
        self._released_for = 0 if self.env.oracle.grasping() else self._released_for + 1
        if (self._released_for >= 4 and self._phase_t >= 6 and self._gripper_open()) or self._phase_t >= 80:
            self._set_phase("retreat")
        return self._action(self._mark, -1.0)

    def _phase_retreat(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm) + np.array([0.0, 0.0, 0.10])
        if self._err(self._mark) < 0.01:
            self._set_phase("hold")
        return self._action(self._mark, -1.0)

    def _phase_hold(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm)
        return self._action(self._mark, self._grip)

    # push_away: closed gripper lowered beside the object, then pushed through its centre towards a point
    # 0.35 m away (re-aimed every step so the object does not slip off the side of the fingers)
    def _push_start(self) -> np.ndarray:
        g = self.plan.grasp_pos().copy()
        start = g - 0.07 * self._push_dir
        start[2] = g[2] + self._hand_offset()[2]
        return start

    def _phase_push_setup(self) -> np.ndarray:
        target = self._push_start() + np.array([0.0, 0.0, self.plan.approach_height])
        if self._err(target) < 0.01 or self._phase_t > 80:
            self._set_phase("push_descend")
        return self._action(target, 1.0)

    def _phase_push_descend(self) -> np.ndarray:
        target = self._push_start()
        if self._err(target) < 0.01 or self._phase_t > 40:
            self._set_phase("push")
        return self._action(target, 1.0)

    def _phase_push(self) -> np.ndarray:
        obj = self.plan.object_pos()
        if self._push_goal is None:
            self._push_goal = obj + 0.35 * self._push_dir  # where the object is pushed to
            self._injected()
        to_goal = self._push_goal[:2] - obj[:2]
        dist = float(np.linalg.norm(to_goal))
        if dist < 0.02 or self._phase_t > 100:
            self._set_phase("push_retreat")
            return self._phase_push_retreat()
        u = np.array([*(to_goal / dist), 0.0])
        behind = float(np.dot(self.view.eef_pos(self.arm) - obj, u))
        if behind > -0.01 and self._push_retries < 3:  # the object slipped past the fingers: go round again
            self._push_retries += 1
            self._push_dir = u
            self._set_phase("push_setup")
            return self._phase_push_setup()
        target = obj + 0.10 * u
        target[2] = self._push_start()[2]
        return self._action(target, 1.0, max_speed=0.6)

    def _phase_push_retreat(self) -> np.ndarray:
        if self._mark is None:
            self._mark = self.view.eef_pos(self.arm) + np.array([0.0, 0.0, 0.10])
        if self._err(self._mark) < 0.01:
            self._set_phase("hold")
        return self._action(self._mark, 1.0)


def evaluate(task: str, robot: str, episodes: int = 20, failure: str | None = None, seed: int = 0,
             horizon: int | None = None, noise: float = 0.0) -> dict[str, Any]:
    """Run the scripted policy for ``episodes`` episodes (env seeds ``seed .. seed+episodes-1``).

    Nominal episodes stop at the first success; episodes with an injected failure run the full horizon.

    Returns:
        dict with ``success_rate`` (success at the end of the episode), ``failure_flagged`` (fraction where
        the oracle flagged ``failed`` at some step), ``steps_to_success`` (mean, over successes) and
        ``steps_per_s``.
    """
    import time

    import envs

    env = envs.make_env(task, robot, horizon=horizon, terminate_on_success=failure is None)
    horizon = env.horizon
    policy = ScriptedPolicy(env, failure=failure, seed=seed, noise=noise)
    successes, flagged, steps_to_success, steps = 0, 0, [], 0
    t0 = time.perf_counter()
    try:
        for ep in range(episodes):
            env.reset(seed=seed + ep)
            policy.reset(seed=seed + ep)
            ever_failed = False
            info: dict[str, Any] = {}
            for t in range(horizon):
                _, _, terminated, truncated, info = env.step(policy.act())
                steps += 1
                ever_failed |= bool(info["oracle/failed"])
                if terminated or truncated:
                    break
            if info.get("is_success"):
                successes += 1
                steps_to_success.append(env.step_count)
            flagged += ever_failed
    finally:
        env.close()
    return {
        "task": task, "robot": robot, "failure": failure, "episodes": episodes, "horizon": horizon,
        "success_rate": successes / episodes, "failure_flagged": flagged / episodes,
        "steps_to_success": float(np.mean(steps_to_success)) if steps_to_success else None,
        "steps_per_s": steps / max(time.perf_counter() - t0, 1e-9),
    }
