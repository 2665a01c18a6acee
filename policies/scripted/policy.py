"""The scripted waypoint policy: one state machine for every task, robot and injected failure.

Phases: approach above the grasp point -> descend -> grasp (close) -> lift -> (transport -> lower -> release ->
retreat) -> hold, and for ``push_away`` push_setup -> push_descend -> push -> push_retreat. Each phase is a
``_phase_<name>`` method that returns the action and moves on when its waypoint is reached or its time is up.
Where the waypoints are comes from the task's plan (:mod:`policies.scripted.plans`), how to drive the gripper or
hand from :mod:`policies.scripted.hands`, the orientation math from :mod:`policies.scripted.geometry`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envs.robots import GRIP_STEPS
from policies.scripted.geometry import R_DOWN, ROT_SCALE, choose_yaw, rot_error, rot_z
from policies.scripted.hands import grip_command, gripper_is_open, hand_offset
from policies.scripted.plans import check_plan, check_scripted
from primo_loop.errors import UnsupportedError, check_choice

FAILURE_MODES = ("drop", "offset_grasp", "close_early", "push_away", "freeze")


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

    _task_policies: dict[str, type[ScriptedPolicy]] = {}  # tasks with phases of their own (e.g. Door)

    def __init_subclass__(cls, task: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if task is not None:
            ScriptedPolicy._task_policies[task] = cls

    def __new__(cls, env: Any = None, *args: Any, **kwargs: Any):
        if cls is ScriptedPolicy and env is not None:  # build the task's own subclass where it has one
            cls = ScriptedPolicy._task_policies.get(getattr(getattr(env, "unwrapped", env), "task", None), cls)
        return super().__new__(cls)

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
        a[grip_slice] = grip_command(self.view.robot.gripper[self.arm], grip, self.plan.wide_open)
        for other in self.view.arms:  # the humanoid's other hand stays open
            if other != self.arm and other in self.view._grip_slice:
                a[self.view._grip_slice[other]] = -1.0
        self._grip = grip
        return a

    def _r_target(self) -> np.ndarray:
        if not self._align_yaw:
            return self._r_ref
        if self._yaw is None or self.phase in ("approach", "push_setup"):
            self._yaw = choose_yaw(self.plan.object_yaw(), self.plan.yaw_period, self.plan.avoid_dir())
        return rot_z(self._yaw) @ self._r_ref

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

    def _grasp_target(self) -> np.ndarray:
        g = self.plan.grasp_pos() + hand_offset(self.env.robot)
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
        released = (self._released_for >= 4 and self._phase_t >= 6
                    and gripper_is_open(self.view.robot.gripper[self.arm], self.plan.wide_open))
        if released or self._phase_t >= 80:
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
        start[2] = g[2] + hand_offset(self.env.robot)[2]
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

