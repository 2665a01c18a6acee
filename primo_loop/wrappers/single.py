"""The critic in the loop around one Gymnasium env (:class:`CriticInTheLoop`), a thin shell over
:class:`primo_loop.tracker.EpisodeTracker`.

Works on any Gymnasium env: frames come from ``render_fn`` if given, else the env's ``render_frame()`` (our
robosuite envs have one), else ``env.render()`` (make the env with ``render_mode="rgb_array"``); the instruction
from the ``instruction`` argument, else the env's ``instruction`` attribute. Privileged state
(``info["oracle/progress"]``, ``info["oracle/failed"]``) is optional: only a critic that declares
``needs_privileged`` (the oracle) needs it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
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


def frame_source(env: gym.Env, render_fn: Callable[[], np.ndarray] | None = None) -> Callable[[], np.ndarray]:
    """Where the wrapper's frames come from: ``render_fn``, the env's ``render_frame``, or ``env.render()``."""
    if render_fn is not None:
        return lambda: as_frame(render_fn(), "render_fn()")
    if env.has_wrapper_attr("render_frame"):
        return env.get_wrapper_attr("render_frame")
    if env.render_mode != "rgb_array":
        raise ConfigError(f"The critic needs frames, and the env renders with render_mode={env.render_mode!r}; "
                          f"expected render_mode=\"rgb_array\" (gymnasium.make(id, render_mode=\"rgb_array\")) "
                          f"or pass render_fn= (a callable returning a uint8 [H, W, 3] frame)")
    return lambda: as_frame(env.render(), "env.render()")


def views_frame_source(render_frame: Callable[..., np.ndarray], views: tuple[str, ...]) -> Callable[[], np.ndarray]:
    """Frames tiling ``views`` left to right, each drawn by ``render_frame(camera=name)``."""
    from primo_loop.views import tile_views

    return lambda: tile_views([as_frame(render_frame(camera=c), "render_frame(camera=...)") for c in views])


class CriticInTheLoop(AsyncQueries, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Query a critic every N steps; shape rewards with its progress; end episodes it judges failed.

    Args:
        env: a Gymnasium env (see the module docstring for what it must provide).
        critic: a critic, a registered name, or None for the default (the embedded compact critic).
        config: a :class:`TrackerConfig`; or give its fields as keyword ``tracker_options``.
        critic_options: options for ``make_critic`` when ``critic`` is a name.
        on_critic_error: "hold" (default: log and hold shaping) or "raise".
        render_fn: how to get a frame (default: the env's ``render_frame``, else ``env.render()``).
        instruction: the task in words (default: the env's ``instruction`` attribute).
        async_runner: how batches run with ``async_critic=True`` (default: one background thread).
        views: camera names tiled left to right in each frame (:mod:`primo_loop.views`), carried by every query;
            default: the env's ``cameras`` attribute (our robosuite envs), or one unnamed view with ``render_fn``.

    Adds the ``critic/*`` info keys of :meth:`EpisodeTracker.info` plus ``critic/shaping``,
    ``critic/corrections`` and ``env/reward``; the reward returned is the shaped one.

    With ``async_critic=True`` (a tracker option) queries run in the background and verdicts apply when they
    arrive (:mod:`primo_loop.asynchronous`): a step whose reward waits for a verdict returns a provisional
    reward and ``info["critic/pending_id"]``; the final reward comes later in ``info["critic/corrections"]``
    (:class:`~primo_loop.ledger.RewardCorrection`), or from :meth:`drain`. Verdicts of an episode that ended
    before they arrived still settle its rewards (counted in ``stats.late``); nothing is dropped.

    The wrapper records its arguments, so the env can be recreated from ``env.spec`` (a critic instance is shared
    with the recreated env, not copied).
    """

    def __init__(self, env: gym.Env, critic: Critic | str | None = None, config: TrackerConfig | None = None,
                 critic_options: Mapping[str, Any] | None = None, on_critic_error: str = "hold",
                 render_fn: Callable[[], np.ndarray] | None = None, instruction: str | None = None,
                 async_runner: Runner | None = None, views: Sequence[str] | None = None, **tracker_options: Any):
        gym.utils.RecordConstructorArgs.__init__(
            self, critic=critic, config=config, critic_options=critic_options, on_critic_error=on_critic_error,
            render_fn=render_fn, instruction=instruction, async_runner=async_runner, views=views, **tracker_options,
            _disable_deepcopy=True)
        gym.Wrapper.__init__(self, env)
        self.critic = resolve_critic(critic, **dict(critic_options or {}))
        self.owns_critic = critic is None or isinstance(critic, str)  # built here: close() closes it too
        self.tracker = EpisodeTracker(merge_tracker_config(config, tracker_options))
        self._render = frame_source(env, render_fn)
        self.instruction: str = resolve_instruction(instruction, lambda: env.get_wrapper_attr("instruction"))
        cams = [env.get_wrapper_attr("cameras")] if render_fn is None and env.has_wrapper_attr("cameras") else []
        self.views: tuple[str, ...] = resolve_views(views, cams)
        draws = render_fn is None and env.has_wrapper_attr("render_frame")
        chosen = not self.owns_critic or "checkpoint" in (critic_options or {})
        self.critic, own = critic_for_frames(self.critic, chosen, views, self.views, draws)
        if own:  # the critic reads cameras the env's frames lack: draw them for it
            self._render, self.views = views_frame_source(env.get_wrapper_attr("render_frame"), own), own
        self.tracker.views = self.views
        self._call = CriticCaller(self.critic, on_critic_error)
        cfg = self.tracker.config
        self._async = (AsyncCritic(self._call, [self.tracker], cfg.max_pending, async_runner)
                       if cfg.async_critic else None)

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
        self._ask(query)
        if self._async is not None:
            self._async.poll()  # starts the baseline's batch at once if the critic is idle
        info = dict(info, **self.tracker.info())
        return obs, info

    def _ask(self, query) -> None:
        if self._async is None:
            self.tracker.apply(self._call([query])[0])
        else:
            self._async.ask(0, query)  # the verdict applies when it arrives

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        tr = self.tracker
        tr.advance(privileged_from_info(info), ended=terminated or truncated)
        if tr.needs_frame:
            tr.add_frame(self._render())
        query = tr.make_query()
        if query is not None:
            self._ask(query)
        if self._async is not None:
            self._async.poll()
        result = tr.finish_step(env_reward)
        info = dict(info, **result.info)
        info["critic/corrections"] = self._async.take(0) if self._async is not None else ()
        info["critic/shaping"] = result.shaping
        info["env/reward"] = float(env_reward)
        return obs, result.reward, bool(terminated or result.terminated), truncated, info
