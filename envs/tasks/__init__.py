"""Task registry: one module per task, each exporting ``SPEC`` (a :class:`TaskSpec`)."""
from __future__ import annotations

from envs.tasks.base import SimView, TaskOracle, TaskSpec
from envs.tasks.door import SPEC as DOOR
from envs.tasks.lift import SPEC as LIFT
from envs.tasks.nut_square import SPEC as NUT_SQUARE
from envs.tasks.pick_place_can import SPEC as PICK_PLACE_CAN
from envs.tasks.stack import SPEC as STACK

SPECS: dict[str, TaskSpec] = {s.name: s for s in (LIFT, STACK, PICK_PLACE_CAN, DOOR, NUT_SQUARE)}
TASKS: tuple[str, ...] = tuple(SPECS)

__all__ = ["SPECS", "TASKS", "SimView", "TaskOracle", "TaskSpec"]
