"""The critic in the loop: a Gymnasium wrapper and an SB3 VecEnv wrapper, both thin shells over
:class:`primo_loop.tracker.EpisodeTracker`.

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


def _set_obs(obs: Any, i: int, value: Any) -> None:
    if isinstance(obs, dict):
        for key in obs:
            obs[key][i] = value[key]
    else:
        obs[i] = value


def _get_obs(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {key: np.array(val[i]) for key, val in obs.items()}
    return np.array(obs[i])


def _vec_base():
    try:
        from stable_baselines3.common.vec_env import VecEnvWrapper
    except ImportError as exc:  # pragma: no cover - SB3 is pinned in requirements.txt
        from primo_loop.errors import MissingDependencyError

        raise MissingDependencyError("stable-baselines3", "VecCriticInTheLoop") from exc
    return VecEnvWrapper


class VecCriticInTheLoop(_vec_base()):  # type: ignore[misc]
    """The critic in the loop over an SB3 VecEnv (DummyVecEnv or SubprocVecEnv).

    All queries due on a step, across all sub-envs, go to the critic in one ``assess`` call; the critic
    lives in this (the main) process, never one per worker. A sub-env that the env itself ends is
    auto-reset by the VecEnv as usual (its new episode's baseline query joins the batch); a sub-env that
    the critic ends is reset here, with ``terminal_observation`` set and ``TimeLimit.truncated`` False,
    and its new baseline queries go out in a second batch. Same options as :class:`CriticInTheLoop`.
    """

    def __init__(self, venv, critic: Critic | str | None = None, config: TrackerConfig | None = None,
                 critic_options: Mapping[str, Any] | None = None, on_critic_error: str = "hold",
                 **tracker_options: Any):
        super().__init__(venv)
        self.critic = resolve_critic(critic, **dict(critic_options or {}))
        cfg = _tracker_config(config, tracker_options)
        self.trackers = [EpisodeTracker(cfg) for _ in range(self.num_envs)]
        self._call = CriticCaller(self.critic, on_critic_error)
        self.instructions: list[str] = list(self.venv.get_attr("instruction"))

    @property
    def raised_batches(self) -> int:
        """Batches on which the critic raised (each query of such a batch counts in the trackers' ``errors``)."""
        return self._call.errors

    def _render(self, indices: Sequence[int]) -> list[np.ndarray]:
        return self.venv.env_method("render_frame", indices=list(indices)) if indices else []

    def _reset_infos(self) -> list[dict[str, Any]]:
        infos = getattr(self.venv, "reset_infos", None)
        return list(infos) if infos else [{} for _ in range(self.num_envs)]

    def _baseline(self, indices: Sequence[int], reset_infos: Sequence[Mapping[str, Any]]) -> None:
        """Step-0 queries of new episodes in ``indices``, scored in one batch."""
        frames = self._render(indices)
        queries = [self.trackers[i].reset(self.instructions[i], frame, privileged_from_info(reset_infos[k]))
                   for k, (i, frame) in enumerate(zip(indices, frames))]
        for i, verdict in zip(indices, self._call(queries)):
            self.trackers[i].apply(verdict)

    def reset(self):
        obs = self.venv.reset()
        self._baseline(range(self.num_envs), self._reset_infos())
        return obs

    def step_wait(self):
        obs, env_rewards, dones, infos = self.venv.step_wait()
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.array(dones, dtype=bool)
        infos = list(infos)
        for i, tr in enumerate(self.trackers):
            tr.advance(privileged_from_info(infos[i]), ended=bool(dones[i]))
        need = [i for i, tr in enumerate(self.trackers) if tr.needs_frame]
        for i, frame in zip(need, self._render(need)):
            self.trackers[i].add_frame(frame)
        pending = [(i, q) for i, tr in enumerate(self.trackers) if (q := tr.make_query()) is not None]
        # Episodes the env ended were auto-reset: finish them, then their new baselines join this batch.
        ended = [i for i in range(self.num_envs) if dones[i]]
        for i in ended:
            result = self.trackers[i].finish_step(env_rewards[i])
            rewards[i] = result.reward
            infos[i] = self._with_result(infos[i], result, env_rewards[i])
        reset_infos = self._reset_infos()
        frames = self._render(ended)
        for i, frame in zip(ended, frames):
            pending.append((i, self.trackers[i].reset(self.instructions[i], frame,
                                                      privileged_from_info(reset_infos[i]))))
        for (i, _), verdict in zip(pending, self._call([q for _, q in pending])):
            self.trackers[i].apply(verdict)
        stopped = []
        for i, tr in enumerate(self.trackers):
            if dones[i]:
                continue
            result = tr.finish_step(env_rewards[i])
            rewards[i] = result.reward
            infos[i] = self._with_result(infos[i], result, env_rewards[i])
            if result.terminated:
                stopped.append(i)
        if stopped:
            new = self.venv.env_method("reset", indices=stopped)
            for i, (new_obs, _info) in zip(stopped, new):
                infos[i]["terminal_observation"] = _get_obs(obs, i)
                infos[i]["TimeLimit.truncated"] = False
                _set_obs(obs, i, new_obs)
                dones[i] = True
            self._baseline(stopped, [info for _, info in new])
        return obs, rewards, dones, infos

    @staticmethod
    def _with_result(info: Mapping[str, Any], result, env_reward: float) -> dict[str, Any]:
        info = dict(info, **result.info)
        info["critic/shaping"] = result.shaping
        info["env/reward"] = float(env_reward)
        return info
