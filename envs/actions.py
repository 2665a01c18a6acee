"""Action-space variants of the tasks.

robosuite's BASIC controller for a single arm is OSC_POSE: 6 end-effector deltas (position, axis-angle) and
the gripper. ``PositionActions`` exposes only ``[dx, dy, dz, gripper]`` and sends zero rotation, so the
controller holds the hand's start orientation (pointing down). This is the OSC_POSITION setting most
state-based RL work on Lift uses: three fewer dimensions to explore.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ACTION_SPACES = ("pose", "position")


def check_action_space(action: str, robot: str | None = None) -> str:
    """Validate an action-space name for ``robot``; ``position`` is for single arms only.

    The position layout drops dims 3-6 of ``[pos3, rot3, grip...]``; a two-armed robot's action
    (GR1ArmsOnly: right arm 0-6, left arm 6-12, hands 12-24) does not have that layout.
    """
    from envs.robots import is_humanoid
    from primo_loop.errors import UnsupportedError, check_choice

    action = check_choice("action space", action, ACTION_SPACES)
    if action == "position" and robot is not None and is_humanoid(robot):
        raise UnsupportedError(f"`action='position'` is for single-arm robots; {robot!r} has two arms "
                               f"(use action='pose')")
    return action


class PositionActions(gym.ActionWrapper):
    """``[dx, dy, dz, grip...]`` in [-1, 1]; the rotation deltas of the wrapped OSC_POSE action are zero.

    ``to_position(full)`` maps a full action (e.g. a scripted policy's) to this space by dropping rotation.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        full = env.action_space
        if not isinstance(full, gym.spaces.Box) or full.shape[0] < 7:
            raise ValueError(f"Expected an OSC_POSE action space (>= 7 dims), actually: {full}")
        check_action_space("position", getattr(env.unwrapped, "robot", None))
        self._n_full = full.shape[0]
        n = self._n_full - 3
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)

    def action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        full = np.zeros(self._n_full, dtype=np.float32)
        full[:3] = a[:3]
        full[6:] = a[3:]
        return full

    @staticmethod
    def to_position(full: np.ndarray) -> np.ndarray:
        full = np.asarray(full, dtype=np.float32)
        return np.concatenate([full[:3], full[6:]])
