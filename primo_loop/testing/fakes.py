"""Tiny fake envs and scripted critics for testing the tracker and wrappers without a simulator."""
from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from primo_loop.types import CriticQuery, CriticVerdict


class ProgressEnv(gym.Env):
    """A 1-D "task": the state moves by the action; progress is the state clipped to [0, 1].

    Frames encode the step number in pixel (0, 0) so tests can check which frames the critic saw.
    The episode ends (truncated) after ``horizon`` steps; ``success_at`` ends it (terminated) when
    progress reaches 1 if set.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, horizon: int = 50, size: int = 8, success_terminates: bool = False):
        self.horizon, self.size, self.success_terminates = horizon, size, success_terminates
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.instruction = "move the marker to the goal"
        self.renders = 0
        self.x = 0.0
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.t / self.horizon], dtype=np.float32)

    def _info(self) -> dict:
        p = float(np.clip(self.x, 0.0, 1.0))
        return {"oracle/progress": p, "oracle/failed": bool(self.x < -0.5), "is_success": p >= 1.0}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(0.0, 0.05))
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        self.x += 0.1 * float(np.asarray(action).reshape(-1)[0])
        self.t += 1
        info = self._info()
        terminated = bool(self.success_terminates and info["is_success"])
        truncated = self.t >= self.horizon and not terminated
        reward = 1.0 if info["is_success"] else 0.0
        return self._obs(), reward, terminated, truncated, info

    def render_frame(self) -> np.ndarray:
        self.renders += 1
        frame = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        frame[0, 0, 0] = min(self.t, 255)
        frame[0, 0, 1] = int(np.clip(self.x, 0, 1) * 255)
        return frame

    def render(self):
        return self.render_frame()


#: The info key under which a demonstration wrapper reports the action it executed (``policies.warmup.EXECUTED``
#: must equal it; tests check that they agree).
EXECUTED_ACTION = "executed_action"


class Demonstrated(gym.Wrapper):
    """A fake demonstration: for the first ``n`` steps after construction (all of them with None) the env executes
    ``action`` whatever the agent asks and reports it in ``info[EXECUTED_ACTION]``, as
    ``policies.warmup.ScriptedWarmup`` does; after that the agent's own action runs."""

    def __init__(self, env: gym.Env, n: int | None = None, action: float = 0.5):
        super().__init__(env)
        self.n, self.t, self.key = n, 0, EXECUTED_ACTION
        self.action = np.full(env.action_space.shape, action, dtype=np.float32)

    def step(self, action):
        self.t += 1
        if self.n is not None and self.t > self.n:
            return self.env.step(action)
        obs, r, term, trunc, info = self.env.step(self.action)
        return obs, r, term, trunc, {**info, self.key: self.action.copy()}


class PlainEnv(gym.Env):
    """A Gymnasium env with nothing of ours: no ``render_frame``, no ``instruction``, no privileged info; frames
    only through ``render()`` with ``render_mode="rgb_array"``. The state moves by the action; pixel (0, 0)
    holds the step number so tests can tell frames apart."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, size: int = 8):
        self.render_mode, self.size = render_mode, size
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.x, self.t = 0.0, 0
        self._frame = np.zeros((size, size, 3), dtype=np.uint8)  # reused, as some renderers reuse their buffer

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(0.0, 0.1)), 0
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.x += 0.1 * float(np.asarray(action).reshape(-1)[0])
        self.t += 1
        return np.array([self.x], dtype=np.float32), float(self.x), False, False, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        self._frame[0, 0, 0] = min(self.t, 255)
        return self._frame


class ScriptedCritic:
    """A critic whose answers come from a function of the query (default: the oracle's progress).

    Args:
        fn: query -> CriticVerdict; default reads privileged progress/failure.
        raise_on: steps at which ``assess`` raises (to test a critic that fails).
    """

    name = "scripted"

    def __init__(self, fn=None, raise_on: Sequence[int] = ()):
        self.fn = fn or (lambda q: CriticVerdict(progress=q.privileged["progress"],
                                                 failure_prob=float(q.privileged["failed"])))
        self.raise_on = set(raise_on)
        self.calls: list[list[CriticQuery]] = []

    @property
    def queries(self) -> list[CriticQuery]:
        """Every query it was asked, in order."""
        return [q for call in self.calls for q in call]

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        self.calls.append(list(queries))
        if any(q.step in self.raise_on for q in queries):
            raise RuntimeError("scripted critic failure")
        t0 = time.perf_counter()
        out = [self.fn(q) for q in queries]
        return [CriticVerdict(v.progress, v.failure_prob, v.reasoning, v.raw, time.perf_counter() - t0) for v in out]
