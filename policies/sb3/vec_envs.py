"""The envs of a training run: one task env per worker, the training VecEnv (workers, then the critic wrapper,
then the episode monitor on top) and the evaluation env (the task's own reward, no critic).

The monitor sits on top of the critic wrapper so the logged episode returns and lengths are the ones the agent
learns from: they include the critic's shaping and end where the critic ends an episode.
"""
from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from policies.sb3.config import CRITIC_REWARDS, AgentConfig
from primo_loop.errors import ConfigError


class BlankFrames(gym.Wrapper):
    """``render_frame()`` returns a black 8x8 frame: for critics that read privileged state only (the oracle
    would otherwise pay ~60 ms per rendered frame for pictures it never looks at)."""

    def render_frame(self) -> np.ndarray:
        return np.zeros((8, 8, 3), dtype=np.uint8)


def import_entry(entry: str) -> Callable[..., Any]:
    """The callable named by ``package.module:callable``."""
    module, _, attr = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"Expected `module:callable` for a custom env, actually: {entry!r} ({exc})") from exc


def _custom_env(entry: str, horizon: int) -> gym.Env:
    """A Gymnasium env from a factory: called with ``horizon=`` when it takes one, else wrapped in a TimeLimit
    of ``horizon`` steps (an env's own, shorter limit still ends its episodes first)."""
    factory = import_entry(entry)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes = "horizon" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    env = factory(horizon=horizon) if takes else factory()
    if not isinstance(env, gym.Env):
        raise ConfigError(f"Expected {entry!r} to return a gymnasium.Env, actually: {type(env).__name__}")
    return env if takes else gym.wrappers.TimeLimit(env, max_episode_steps=horizon)


def make_task_env(task: str, *, robot: str = "Panda", reward: str = "sparse", horizon: int = 200,
                  blank_frames: bool = False, terminate_on_success: bool = False, action: str = "pose",
                  demo_episodes: int = 0, demo_noise: float = 0.1, demo_seed: int = 0, **env_kwargs: Any):
    """One Gymnasium env for a reward kind (runs inside a worker process).

    Args:
        task: task name, or ``module:callable`` (see :func:`_custom_env`).
        robot: robosuite robot.
        reward: "dense" turns on robosuite's reward shaping; every other kind uses the sparse reward
            (the critic's shaping is added in the main process).
        horizon: episode length.
        blank_frames: make ``render_frame()`` free (for the oracle, which reads privileged state).
        terminate_on_success: end episodes on success (eval envs).
        action: "pose" or "position" (:class:`envs.actions.PositionActions`).
        demo_episodes, demo_noise, demo_seed: :class:`policies.warmup.ScriptedWarmup` settings (0: none).
        **env_kwargs: passed to ``envs.make_env``.
    """
    if ":" in task:
        env = _custom_env(task, horizon)
    else:
        import envs
        from envs.actions import PositionActions, check_action_space

        action = check_action_space(action, robot)
        env = envs.make_env(task, robot, horizon=horizon, obs_mode="state", reward_shaping=reward == "dense",
                            terminate_on_success=terminate_on_success, **env_kwargs)
        if action == "position":
            env = PositionActions(env)
        if demo_episodes:
            from policies.warmup import ScriptedWarmup

            env = ScriptedWarmup(env, demo_episodes, noise=demo_noise, seed=demo_seed)
    return BlankFrames(env) if blank_frames else env


def env_fns(cfg: AgentConfig, n: int, demos: bool = False, **kw: Any) -> list[Callable[[], Any]]:
    """``n`` env factories of a run (worker ``i`` records its own demonstrations when ``demos``)."""
    fns = []
    for i in range(n):
        if demos:
            kw.update(demo_episodes=cfg.demo_episodes, demo_noise=cfg.demo_noise,
                      demo_seed=1_000 * (cfg.seed * 100 + i))
        fns.append(functools.partial(make_task_env, cfg.env, robot=cfg.robot, horizon=cfg.horizon,
                                     action=cfg.action, **kw))
    return fns


def _info_keywords(cfg: AgentConfig) -> tuple[str, ...]:
    # our tasks report success in every info; a custom env may not (its runs are judged on return)
    return () if ":" in cfg.env else ("is_success",)


def make_vec_env(cfg: AgentConfig, critic: Any | None = None):
    """The training VecEnv: workers -> (VecCriticInTheLoop) -> VecMonitor.

    Args:
        cfg: the run's config.
        critic: a critic instance to use instead of building ``cfg.critic_name`` (tests inject fakes).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    blank_frames = False
    if cfg.reward in CRITIC_REWARDS:
        from primo_loop.critics import resolve_critic
        from primo_loop.critics.base import capabilities

        owned = critic is None  # built here: the wrapper closes it with the envs
        if owned:
            critic = resolve_critic(cfg.critic_name, **(cfg.critic_options or {}))
        # a critic that declares it reads no frames (the oracle) gets blank ones: no ~50 ms renders
        blank_frames = not capabilities(critic).needs_frames
    fns = env_fns(cfg, cfg.workers, demos=True, reward=cfg.reward, blank_frames=blank_frames)
    venv = SubprocVecEnv(fns, start_method="forkserver") if cfg.workers > 1 else DummyVecEnv(fns)
    if cfg.reward in CRITIC_REWARDS:
        from primo_loop.wrappers import VecCriticInTheLoop

        # the instruction is passed only when given: an env of ours carries its own
        extra = {} if cfg.instruction is None else {"instruction": cfg.instruction}
        try:
            venv = VecCriticInTheLoop(venv, critic, config=cfg.tracker_config(), on_critic_error=cfg.critic_on_error,
                                      **extra)
            venv.owns_critic = owned
        except BaseException:
            venv.close()
            raise
    return VecMonitor(venv, info_keywords=_info_keywords(cfg))


def make_eval_env(cfg: AgentConfig):
    """One env with the sparse reward and no critic, ending on success: eval measures the task itself."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    kw = {} if ":" in cfg.env else {"terminate_on_success": True}
    return VecMonitor(DummyVecEnv(env_fns(cfg, 1, reward="sparse", **kw)))


def find_critic_wrapper(venv: Any):
    """The :class:`VecCriticInTheLoop` inside a VecEnv stack, or None."""
    from primo_loop.wrappers import VecCriticInTheLoop

    while venv is not None:
        if isinstance(venv, VecCriticInTheLoop):
            return venv
        venv = getattr(venv, "venv", None)
    return None
