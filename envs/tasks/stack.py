"""Stack: put the red cube on top of the green cube.

Stages and progress:
    reach  0.0 - 0.25  gripper distance to the red cube, from its reset distance down to 2 cm
    grasp  0.25        gripper at the red cube
    lift   0.35 - 0.5  red cube held; + 0.15 * lift, lift = best height this hold / green cube height (5 cm)
    align  0.5 - 0.85  + 0.35 * lift * align, align = 1 - (x/y distance to the green cube) / (that at reset)
    place  0.9         held red cube touching the green cube
    done   1.0         robosuite success: red cube on the green cube, touching, released
Failure events: red cube dropped (let go after a lift, not within 2.5 cm x/y and 2 cm above its
stacked place), grasp missed, red
cube pushed out of reach (unheld, more than 0.25 m from the table centre in x/y), green cube knocked
(moved more than 5 cm), a cube fell off the table, robot stopped moving.
"""
from __future__ import annotations

import numpy as np

from envs.robots import ROBOTS
from envs.tasks.base import TaskOracle, TaskSpec, frac


class StackOracle(TaskOracle):
    noun = "red cube"
    reach_weight = 0.25
    grasp_level = 0.35
    success_event = "the red cube was stacked on the green cube"

    def _setup(self) -> None:
        env = self.view.env
        self.cube_a, self.cube_b = env.cubeA, env.cubeB
        self.a_id, self.b_id = env.cubeA_body_id, env.cubeB_body_id
        self.table = np.array(env.model.mujoco_arena.table_offset)
        self.table_half = np.array(env.model.mujoco_arena.table_full_size[:2]) / 2
        self.half_a = float(self.cube_a.size[2])
        self.half_b = float(self.cube_b.size[2])

    def reset(self) -> None:
        self.b0 = self.view.body_pos(self.b_id)
        a0 = self.view.body_pos(self.a_id)
        self.align0 = max(float(np.linalg.norm(a0[:2] - self.b0[:2])), 0.05)
        super().reset()

    def object_pos(self) -> np.ndarray:
        return self.view.body_pos(self.a_id)

    def goal_pos(self) -> np.ndarray:
        """Where the red cube's centre is when stacked."""
        return self.view.body_pos(self.b_id) + np.array([0.0, 0.0, self.half_b + self.half_a])

    def grasping(self) -> bool:
        return self.view.grasping(self.cube_a)

    def lift_fraction(self, height: float) -> float:
        return frac(height / (2 * self.half_b))

    def align(self) -> float:
        d = float(np.linalg.norm(self.object_pos()[:2] - self.view.body_pos(self.b_id)[:2]))
        return 1.0 - frac(d / self.align0)

    def touching(self) -> bool:
        return bool(self.view.env.check_contact(self.cube_a, self.cube_b))

    def carried_progress(self, lift: float) -> tuple[float, str]:
        align = self.align()
        if self.touching() and align > 0.5:
            return 0.9, "place"
        stage = "lift" if lift < 1.0 else ("align" if align < 0.9 else "place")
        return 0.35 + 0.15 * lift + 0.35 * lift * align, stage

    def release_ok(self) -> bool:
        """Let go on top of the green cube: within 2.5 cm in x/y and at most 2 cm above it."""
        a, goal = self.object_pos(), self.goal_pos()
        return bool(np.linalg.norm(a[:2] - goal[:2]) < 0.025 and -0.01 < a[2] - goal[2] < 0.02)

    def displaced_event(self) -> str | None:
        a, b = self.object_pos(), self.view.body_pos(self.b_id)
        for noun, pos in (("red cube", a), ("green cube", b)):
            if pos[2] < self.table[2] - 0.05 or np.any(np.abs(pos[:2] - self.table[:2]) > self.table_half):
                return f"the {noun} fell off the table"
        if np.linalg.norm(b[:2] - self.b0[:2]) > 0.05:
            return "the green cube was knocked away"
        if np.any(np.abs(a[:2] - self.table[:2]) > 0.25):
            return "the red cube was pushed out of reach"
        return None

    def extra(self) -> dict:
        return {"align": self.align()}


SPEC = TaskSpec(
    name="Stack",
    env_name="Stack",
    instruction="stack the red cube on top of the green cube",
    canonical_steps=("move the gripper above the red cube", "lower the gripper around the red cube",
                     "close the gripper to grasp the red cube", "lift the red cube",
                     "move the red cube above the green cube", "lower the red cube onto the green cube",
                     "open the gripper to release the red cube"),
    robots=ROBOTS,
    oracle=StackOracle,
    stages=("reach", "grasp", "lift", "align", "place", "done"),
    horizon=250,
)
