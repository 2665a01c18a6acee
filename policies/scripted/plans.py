"""Where each task's waypoints are, read from privileged sim state, and which task/robot pairs have a plan.

A :class:`TaskPlan` per task family answers the policy's questions (where to grasp, where to release, how high
to carry, which way the object faces); the waypoint state machine itself is the same for every task
(:class:`policies.scripted.policy.ScriptedPolicy`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envs.robots import ARM_ROBOTS, HUMANOID_ROBOTS
from policies.scripted.geometry import yaw_of
from primo_loop.errors import UnsupportedError

HUMANOID_TASKS = ("Lift",)  # tasks with a humanoid plan (Stack/PickPlaceCan: not yet)


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


class DoorPlan(TaskPlan):
    """The door's lever, latch and hinge, from the simulator (the policy is :class:`policies.scripted.door.DoorPolicy`).

    The gripper grasps the lever from the front (pointing into the door, fingers closing vertically across the
    lever), turns it about the latch axis, then pulls it round the hinge axis.
    """

    yaw_period = None
    front_distance = 0.10  # approach from this far in front of the lever

    def __init__(self, env: Any):
        super().__init__(env)
        import mujoco

        model = self.oracle.view.sim.model._model
        door = env.rs_env.door
        self._latch = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, door.naming_prefix + "latch_joint")
        self._hinge = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, door.hinge_joint)

    def _joint(self, jid: int) -> tuple[np.ndarray, np.ndarray]:
        data = self.oracle.view.sim.data._data
        return np.array(data.xanchor[jid]), np.array(data.xaxis[jid])

    def latch_axis(self) -> tuple[np.ndarray, np.ndarray]:
        """A point on the lever's turning axis and its direction (world), as the simulator has them now."""
        return self._joint(self._latch)

    def hinge_axis(self) -> tuple[np.ndarray, np.ndarray]:
        """A point on the door's hinge axis and its direction (world)."""
        return self._joint(self._hinge)

    def into_door(self) -> np.ndarray:
        """Unit horizontal direction from the lever into the door panel."""
        n = self.latch_axis()[1].copy()
        n[2] = 0.0
        return n / max(float(np.linalg.norm(n)), 1e-9)

    def grip_rotation(self) -> np.ndarray:
        """Grip site orientation for the front grasp: approach axis into the door, gripper x pointing down."""
        z = self.into_door()
        x = np.array([0.0, 0.0, -1.0])
        return np.stack([x, np.cross(z, x), z], axis=1)


class NutSquarePlan(TaskPlan):
    """The square nut, grasped by its handle (fingers closing across it) and carried over the square peg (the
    policy is :class:`policies.scripted.nut.NutSquarePolicy`, which also turns the nut square to the peg)."""

    yaw_period = np.pi  # a gripper closing across the handle either way round
    places = True
    drop_in_transport = True

    def object_yaw(self) -> float:
        # the gripper closes along its y axis: yaw = direction from the nut centre to the handle
        d = self.oracle.grasp_point()[:2] - self.object_pos()[:2]
        return float(np.arctan2(d[1], d[0]))

    def place_pos(self) -> np.ndarray:
        return np.array([*self.oracle.peg_pos()[:2], self.oracle.rest_z + 0.003])

    def carry_z(self) -> float:
        return self.oracle.carry_height() + 0.04  # a nut held by its handle tilts: its far side hangs lower

    def over_goal(self) -> bool:
        return bool(np.linalg.norm(self.place_pos()[:2] - self.object_pos()[:2]) < 0.006)


PLANS: dict[str, type[TaskPlan]] = {"Lift": LiftPlan, "Stack": StackPlan, "PickPlaceCan": PickPlaceCanPlan,
                                    "Door": DoorPlan, "NutAssemblySquare": NutSquarePlan}


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
