"""Scripted warm-up for off-policy agents: the first episodes of each worker are driven by the scripted policy.

A common way to make RL on manipulation tasks sample-efficient is to learn from a few demonstrations.
:class:`ScriptedWarmup` records them inside the training env: for its first ``episodes`` episodes it ignores
the agent's action, executes the scripted policy's (with Gaussian noise) and reports the executed action as
``info["executed_action"]``; :mod:`policies.demo_sac` learns from them.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.actions import PositionActions

EXECUTED = "executed_action"


class ScriptedWarmup(gym.Wrapper):
    """Drive the first ``episodes`` episodes with :class:`policies.scripted.ScriptedPolicy`.

    Args:
        env: the task env, or :class:`envs.actions.PositionActions` around it.
        episodes: number of scripted episodes (0: a no-op wrapper).
        noise: std of the scripted policy's action noise (diversifies the demonstrations).
        seed: seeds the scripted policy (episode ``k`` uses ``seed + k``).
    """

    def __init__(self, env: gym.Env, episodes: int, noise: float = 0.1, seed: int = 0):
        super().__init__(env)
        if episodes < 0:
            raise ValueError(f"Expected `episodes` >= 0, actually: {episodes!r}")
        self.remaining = int(episodes)
        self.noise = float(noise)
        self.seed_ = int(seed)
        self.done_episodes = 0
        self._policy: Any = None
        self._active = False
        self._position = any(isinstance(e, PositionActions) for e in _chain(env))

    def end_warmup(self) -> None:
        """Hand control to the agent from now on (a resumed run has its demonstrations already)."""
        self.remaining = 0
        self._active = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._active = self.remaining > 0
        if self._active:
            from policies.scripted import ScriptedPolicy

            self.remaining -= 1
            episode_seed = self.seed_ + self.done_episodes
            if self._policy is None:
                self._policy = ScriptedPolicy(self.env, noise=self.noise, seed=episode_seed,
                                              rotate=not self._position)
            else:
                self._policy.reset(seed=episode_seed)
            self.done_episodes += 1
        return obs, info

    def step(self, action: Any):
        if not self._active:
            return self.env.step(action)
        full = self._policy.act()
        executed = PositionActions.to_position(full) if self._position else full
        obs, reward, terminated, truncated, info = self.env.step(executed)
        return obs, reward, terminated, truncated, {**info, EXECUTED: executed}


def _chain(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        yield env
        env = env.env
