"""The critic in the loop around an SB3 VecEnv (:class:`VecCriticInTheLoop`), a thin shell over one
:class:`primo_loop.tracker.EpisodeTracker` per sub-env; the vector twin of :mod:`primo_loop.wrappers.single`.

Works on any Gymnasium sub-envs: frames come from the sub-envs' ``render_frame()`` where they have one, else
their ``render()`` (make them with ``render_mode="rgb_array"``); the instruction from the ``instruction``
argument, else the sub-envs' ``instruction`` attribute. Privileged state is optional, as for the single env.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from primo_loop.asynchronous import AsyncCritic, Runner
from primo_loop.critics import Critic, resolve_critic
from primo_loop.errors import ConfigError
from primo_loop.tracker import EpisodeTracker, TrackerConfig
from primo_loop.wrappers.common import (
    AsyncQueries,
    CriticCaller,
    as_frame,
    critic_for_frames,
    merge_tracker_config,
    privileged_from_info,
    resolve_instruction,
    resolve_views,
)


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


class VecCriticInTheLoop(AsyncQueries, _vec_base()):  # type: ignore[misc]
    """The critic in the loop over an SB3 VecEnv (DummyVecEnv or SubprocVecEnv).

    All queries due on a step, across all sub-envs, go to the critic in one ``assess`` call; the critic
    lives in this (the main) process, never one per worker. A sub-env that the env itself ends is
    auto-reset by the VecEnv as usual (its new episode's baseline query joins the batch); a sub-env that
    the critic ends is reset here, with ``terminal_observation`` set and ``TimeLimit.truncated`` False,
    and its new baseline queries go out in a second batch. Same options as
    :class:`~primo_loop.wrappers.single.CriticInTheLoop`, except ``render_fn``; ``instruction`` is one string for
    all sub-envs (default: each sub-env's ``instruction`` attribute).

    Every episode gets an id (``info["critic/episode"]``, counting up from ``next_episode_id``); with
    ``episode_sink`` set, ``episode_sink(env_index, episode_id, tracker)`` is called with each finished episode's
    tracker (its frames, their steps and privileged state) before the tracker is reset. Online critic refresh
    (:mod:`primo_loop.training.online`) reads the episodes this way.

    With ``async_critic=True`` (a tracker option) queries of all sub-envs run in the background, one batch at a
    time, and stepping goes on (:mod:`primo_loop.asynchronous`); see
    :class:`~primo_loop.wrappers.single.CriticInTheLoop` for the info keys of deferred rewards. A sub-env the
    critic ends is reset on the step its verdict arrives; new episodes' baseline queries join the queue.
    ``async_runner``: how batches run (default: one background thread).
    """

    def __init__(self, venv, critic: Critic | str | None = None, config: TrackerConfig | None = None,
                 critic_options: Mapping[str, Any] | None = None, on_critic_error: str = "hold",
                 instruction: str | None = None, async_runner: Runner | None = None,
                 views: Sequence[str] | None = None, **tracker_options: Any):
        super().__init__(venv)
        self.critic = resolve_critic(critic, **dict(critic_options or {}))
        self.owns_critic = critic is None or isinstance(critic, str)  # built here: close() closes it too
        cfg = merge_tracker_config(config, tracker_options)
        self.trackers = [EpisodeTracker(cfg) for _ in range(self.num_envs)]
        if instruction is not None or not self.venv.has_attr("instruction"):
            self.instructions = [resolve_instruction(instruction, lambda: None, "VecEnv's sub-env")] * self.num_envs
        else:
            self.instructions = [resolve_instruction(None, lambda x=x: x, "VecEnv's sub-env")
                                 for x in self.venv.get_attr("instruction")]
        self._render_method = self._frame_method()
        cams = self.venv.get_attr("cameras") if views is None and self.venv.has_attr("cameras") else []
        self.views: tuple[str, ...] = resolve_views(views, cams)
        # cameras the critic reads and the sub-envs' frames lack: drawn one by one with render_frame(camera=...)
        draws = self._render_method == "render_frame"
        chosen = not self.owns_critic or "checkpoint" in (critic_options or {})
        self.critic, self._own_views = critic_for_frames(self.critic, chosen, views, self.views, draws)
        self.views = self._own_views or self.views
        for tracker in self.trackers:
            tracker.views = self.views
        self._call = CriticCaller(self.critic, on_critic_error)
        self._async = (AsyncCritic(self._call, self.trackers, cfg.max_pending, async_runner)
                       if cfg.async_critic else None)
        self.next_episode_id = 0
        self.episode_ids = [-1] * self.num_envs
        self.episode_sink: Callable[[int, int, EpisodeTracker], None] | None = None

    @property
    def raised_batches(self) -> int:
        """Batches on which the critic raised (each query of such a batch counts in the trackers' ``errors``)."""
        return self._call.errors

    def _frame_method(self) -> str:
        """The sub-env method that renders a frame: ``render_frame`` where the sub-envs have it, else ``render``."""
        if self.venv.has_attr("render_frame"):
            return "render_frame"
        modes = set(self.venv.get_attr("render_mode"))
        if modes != {"rgb_array"}:
            raise ConfigError(f"The critic needs frames, and the sub-envs render with render_mode="
                              f"{', '.join(map(repr, sorted(modes, key=str)))}; expected render_mode=\"rgb_array\" "
                              f"(e.g. make_vec_env(id, env_kwargs={{'render_mode': 'rgb_array'}})) or sub-envs with a "
                              f"render_frame() method")
        return "render"

    def _render(self, indices: Sequence[int]) -> list[np.ndarray]:
        if not indices:
            return []
        if self._own_views:
            from primo_loop.views import tile_views

            per_view = [self.venv.env_method("render_frame", camera=c, indices=list(indices)) for c in self._own_views]
            return [tile_views([as_frame(f, "sub-env render_frame(camera=...)") for f in views])
                    for views in zip(*per_view)]
        frames = self.venv.env_method(self._render_method, indices=list(indices))
        return [as_frame(f, f"sub-env {self._render_method}()") for f in frames]

    def _reset_infos(self) -> list[dict[str, Any]]:
        infos = getattr(self.venv, "reset_infos", None)
        return list(infos) if infos else [{} for _ in range(self.num_envs)]

    def _baseline(self, indices: Sequence[int], reset_infos: Sequence[Mapping[str, Any]]) -> None:
        """Step-0 queries of new episodes in ``indices``, scored in one batch (asynchronous: queued)."""
        frames = self._render(indices)
        for i in indices:
            self._new_episode(i)
        queries = [self.trackers[i].reset(self.instructions[i], frame, privileged_from_info(reset_infos[k]))
                   for k, (i, frame) in enumerate(zip(indices, frames))]
        if self._async is not None:
            for i, query in zip(indices, queries):
                self._async.ask(i, query)
            return
        for i, verdict in zip(indices, self._call(queries)):
            self.trackers[i].apply(verdict)

    def reset(self):
        obs = self.venv.reset()
        self._baseline(range(self.num_envs), self._reset_infos())
        if self._async is not None:
            self._async.poll()  # starts the baselines' batch at once if the critic is idle
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
        if self._async is not None:
            return self._step_async(obs, env_rewards, dones, infos, rewards, pending)
        # Episodes the env ended were auto-reset: finish them, then their new baselines join this batch.
        ended = [i for i in range(self.num_envs) if dones[i]]
        for i in ended:
            result = self.trackers[i].finish_step(env_rewards[i])
            rewards[i] = result.reward
            infos[i] = self._with_result(i, infos[i], result, env_rewards[i])
        reset_infos = self._reset_infos()
        frames = self._render(ended)
        for i, frame in zip(ended, frames):
            self._new_episode(i)
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
            infos[i] = self._with_result(i, infos[i], result, env_rewards[i])
            if result.terminated:
                stopped.append(i)
        self._stop(obs, dones, infos, stopped)
        for i in range(self.num_envs):
            infos[i]["critic/corrections"] = ()
        return obs, rewards, dones, infos

    def _step_async(self, obs, env_rewards, dones, infos, rewards, pending):
        """The rest of :meth:`step_wait` in asynchronous mode: queue this step's queries, apply the verdicts that
        have arrived, finish every sub-env's step, then reset the episodes that ended (the env's or the critic's)."""
        for i, query in pending:
            self._async.ask(i, query)
        self._async.poll()
        stopped = []
        for i, tr in enumerate(self.trackers):
            result = tr.finish_step(env_rewards[i])
            rewards[i] = result.reward
            infos[i] = self._with_result(i, infos[i], result, env_rewards[i])
            if result.terminated and not dones[i]:
                stopped.append(i)
        ended = [i for i in range(self.num_envs) if dones[i]]
        if ended:  # auto-reset by the VecEnv
            self._baseline(ended, self._reset_infos())
        self._stop(obs, dones, infos, stopped)
        for i in range(self.num_envs):
            infos[i]["critic/corrections"] = self._async.take(i)
        return obs, rewards, dones, infos

    def _stop(self, obs, dones, infos, stopped: list[int]) -> None:
        """Reset the sub-envs the critic ended, as the VecEnv does the ones their env ended."""
        if not stopped:
            return
        new = self.venv.env_method("reset", indices=stopped)
        for i, (new_obs, _info) in zip(stopped, new):
            infos[i]["terminal_observation"] = _get_obs(obs, i)
            infos[i]["TimeLimit.truncated"] = False
            _set_obs(obs, i, new_obs)
            dones[i] = True
        self._baseline(stopped, [info for _, info in new])

    def _new_episode(self, i: int) -> None:
        """Hand sub-env ``i``'s finished episode (if any) to the sink and give the next one its id."""
        if self.episode_sink is not None and self.episode_ids[i] >= 0:
            self.episode_sink(i, self.episode_ids[i], self.trackers[i])
        self.episode_ids[i] = self.next_episode_id
        self.next_episode_id += 1

    def _with_result(self, i: int, info: Mapping[str, Any], result, env_reward: float) -> dict[str, Any]:
        info = dict(info, **result.info)
        info["critic/episode"] = self.episode_ids[i]
        info["critic/shaping"] = result.shaping
        info["env/reward"] = float(env_reward)
        return info
