"""Lift: pick up the cube and lift it.

Stages and progress:
    reach  0.0 - 0.3   gripper distance to the cube, from its reset distance down to 2 cm
    grasp  0.3         gripper at the cube, closing
    lift   0.5 - 0.99  held; 0.5 + 0.49 * height / (success height), height = best this hold
    done   1.0         robosuite success: cube centre more than 4 cm above the table top
Failure events: dropped (after being lifted), grasp missed, pushed out of reach (unheld and more than
0.15 m from where it started, in x/y), fell off the table, robot stopped moving.
"""
from __future__ import annotations

import numpy as np

from envs.robots import ROBOTS
from envs.tasks.base import TaskOracle, TaskSpec, frac


class LiftOracle(TaskOracle):
    noun = "cube"
    reach_weight = 0.3
    grasp_level = 0.5
    lift_event_height = None  # the success event says it
    success_event = "the cube was lifted"

    def _setup(self) -> None:
        env = self.view.env
        self.cube = env.cube
        self.cube_id = env.cube_body_id
        self.table = np.array(env.model.mujoco_arena.table_offset)
        self.table_half = np.array(env.model.mujoco_arena.table_full_size[:2]) / 2

    def object_pos(self) -> np.ndarray:
        return self.view.body_pos(self.cube_id)

    def grasping(self) -> bool:
        return self.view.grasping(self.cube)

    def lift_fraction(self, height: float) -> float:
        need = self.table[2] + 0.04 - self.rest_z
        return frac(height / max(need, 1e-3))

    def carried_progress(self, lift: float) -> tuple[float, str]:
        return 0.5 + 0.49 * lift, "lift"

    def displaced_event(self) -> str | None:
        return workspace_event(self.noun, self.object_pos(), self.obj0, self.table, self.table_half, reach=0.15)


def workspace_event(noun: str, pos: np.ndarray, start: np.ndarray, table: np.ndarray, table_half: np.ndarray,
                    reach: float) -> str | None:
    """"fell off the table" / "pushed out of reach" (moved more than ``reach`` in x/y from ``start``)."""
    if pos[2] < table[2] - 0.05 or np.any(np.abs(pos[:2] - table[:2]) > table_half):
        return f"the {noun} fell off the table"
    if np.linalg.norm(pos[:2] - start[:2]) > reach:
        return f"the {noun} was pushed out of reach"
    return None


SPEC = TaskSpec(
    name="Lift",
    env_name="Lift",
    instruction="pick up the cube and lift it",
    canonical_steps=("move the gripper above the cube", "lower the gripper around the cube",
                     "close the gripper to grasp the cube", "lift the cube off the table"),
    robots=ROBOTS,
    oracle=LiftOracle,
    stages=("reach", "grasp", "lift", "done"),
)
