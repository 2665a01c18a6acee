"""The critic in the loop: a Gymnasium wrapper and an SB3 VecEnv wrapper, both thin shells over
:class:`primo_loop.tracker.EpisodeTracker`.

``VecCriticInTheLoop`` is defined on first use, so importing this module does not import SB3 (and torch).

The wrapped env must expose (through ``get_wrapper_attr`` or plain attributes) ``render_frame()``
returning an upright uint8 RGB frame and ``instruction``; its info may carry ``oracle/progress`` and
``oracle/failed`` (the privileged state that only the oracle critic reads). ``envs.make_env`` provides
all of these.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from primo_loop.critics import Critic, resolve_critic
from primo_loop.errors import check_choice
from primo_loop.tracker import EpisodeTracker, TrackerConfig
from primo_loop.types import CriticQuery, CriticVerdict

log = logging.getLogger(__name__)

ON_ERROR = ("hold", "raise")


def privileged_from_info(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The privileged state the oracle critic reads, taken from an env's info dict."""
    if "oracle/progress" not in info:
        return None
    return {"progress": float(info["oracle/progress"]), "failed": bool(info.get("oracle/failed", False))}


class CriticCaller:
    """Calls a critic on a batch of queries, turning a raising critic into ``None`` verdicts.

    Args:
        critic: the critic.
        on_error: "hold" (log, count and return None for each query so shaping is held) or "raise".
    """

    def __init__(self, critic: Critic, on_error: str = "hold"):
        self.critic = critic
        self.on_error = check_choice("on_error policy", on_error, ON_ERROR)
        self.errors = 0

    def __call__(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict | None]:
        if not queries:
            return []
        try:
            verdicts = self.critic.assess(list(queries))
        except Exception as exc:  # noqa: BLE001 - a critic failure must not kill a long run
            if self.on_error == "raise":
                raise
            self.errors += 1
            log.warning("critic %s raised on a batch of %d queries (%d so far); shaping held: %r",
                        getattr(self.critic, "name", type(self.critic).__name__), len(queries), self.errors, exc,
                        exc_info=self.errors == 1)
            return [None] * len(queries)
        if len(verdicts) != len(queries):
            raise RuntimeError(f"critic returned {len(verdicts)} verdicts for {len(queries)} queries")
        return list(verdicts)


def _tracker_config(config: TrackerConfig | None, options: Mapping[str, Any]) -> TrackerConfig:
    if config is not None and options:
        raise TypeError("pass either `config` or tracker options, not both")
    return config if config is not None else TrackerConfig.from_options(**options)


class CriticInTheLoop(gym.Wrapper):
    """Query a critic every N steps; shape rewards with its progress; end episodes it judges failed.

    Args:
        env: a Gymnasium env exposing ``render_frame()`` and ``instruction`` (see module docstring).
        critic: a critic, a registered name, or None for the default (the embedded compact critic).
        config: a :class:`TrackerConfig`; or give its fields as keyword ``tracker_options``.
        critic_options: options for ``make_critic`` when ``critic`` is a name.
        on_critic_error: "hold" (default: log and hold shaping) or "raise".
        render_fn: how to get a frame from the env (default: its ``render_frame``).

    Adds the ``critic/*`` info keys of :meth:`EpisodeTracker.info` plus ``critic/shaping`` and
    ``env/reward``; the reward returned is the shaped one.
    """

    def __init__(self, env: gym.Env, critic: Critic | str | None = None, config: TrackerConfig | None = None,
                 critic_options: Mapping[str, Any] | None = None, on_critic_error: str = "hold",
                 render_fn: Callable[[], np.ndarray] | None = None, **tracker_options: Any):
        super().__init__(env)
        self.critic = resolve_critic(critic, **dict(critic_options or {}))
        self.tracker = EpisodeTracker(_tracker_config(config, tracker_options))
        self._call = CriticCaller(self.critic, on_critic_error)
        self._render = render_fn or env.get_wrapper_attr("render_frame")
        self.instruction: str = env.get_wrapper_attr("instruction")

    @property
    def stats(self):
        return self.tracker.stats

    @property
    def raised_batches(self) -> int:
        """Batches on which the critic raised (each query of such a batch counts in ``stats.errors``)."""
        return self._call.errors

    @property
    def frames(self) -> list[np.ndarray]:
        """Frames the critic has seen this episode (what rollout videos show)."""
        return self.tracker.frames

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        query = self.tracker.reset(self.instruction, self._render(), privileged_from_info(info))
        self.tracker.apply(self._call([query])[0])
        info = dict(info, **self.tracker.info())
        return obs, info

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        tr = self.tracker
        tr.advance(privileged_from_info(info), ended=terminated or truncated)
        if tr.needs_frame:
            tr.add_frame(self._render())
        query = tr.make_query()
        if query is not None:
            tr.apply(self._call([query])[0])
        result = tr.finish_step(env_reward)
        info = dict(info, **result.info)
        info["critic/shaping"] = result.shaping
        info["env/reward"] = float(env_reward)
        return obs, result.reward, bool(terminated or result.terminated), truncated, info


def __getattr__(name: str):
    if name == "VecCriticInTheLoop":
        from primo_loop._vec_wrapper import VecCriticInTheLoop

        return VecCriticInTheLoop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
