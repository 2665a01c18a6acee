"""robosuite tasks as Gymnasium environments, with privileged-state oracles.

``import envs`` registers ``primo/<Task>-v0`` for every task in ``TASKS``; it does not import robosuite
(that happens when an env is made)::

    import gymnasium as gym, envs
    env = gym.make("primo/Lift-v0", robot="Sawyer", image_size=84)
    env = envs.make_env("Stack", "Panda", obs_mode="both")
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

from envs.robots import ROBOTS
from envs.tasks import SPECS, TASKS, TaskSpec
from primo_loop.errors import check_choice

if TYPE_CHECKING:
    from envs.adapter import RobosuiteEnv

__all__ = ["ROBOTS", "TASKS", "env_id", "make_env", "supported_robots", "task_spec"]


def task_spec(task: str) -> TaskSpec:
    """The spec of ``task`` (UnknownNameError if there is none)."""
    return SPECS[check_choice("task", task, TASKS)]


def supported_robots(task: str) -> tuple[str, ...]:
    """Robots that can do ``task``."""
    return task_spec(task).robots


def env_id(task: str) -> str:
    """The Gymnasium id of ``task``: ``primo/<Task>-v0``."""
    return f"primo/{task_spec(task).name}-v0"


def make_env(task: str, robot: str = "Panda", *, camera: str = "agentview", image_size: int = 128,
             horizon: int | None = None, obs_mode: str = "state", hard_reset: bool = False, control_freq: int = 20,
             reward_shaping: bool = False, terminate_on_success: bool = False, render_mode: str | None = None,
             **robosuite_kwargs: Any) -> RobosuiteEnv:
    """Build ``task`` with ``robot`` as a Gymnasium env (see :class:`envs.adapter.RobosuiteEnv`).

    Raises:
        UnknownNameError: unknown task, robot, obs_mode or camera.
        UnsupportedError: a task/robot pair that cannot work.
    """
    from envs.adapter import RobosuiteEnv

    return RobosuiteEnv(task, robot, camera=camera, image_size=image_size, horizon=horizon, obs_mode=obs_mode,
                        hard_reset=hard_reset, control_freq=control_freq, reward_shaping=reward_shaping,
                        terminate_on_success=terminate_on_success, render_mode=render_mode, **robosuite_kwargs)


def _register() -> None:
    for task in TASKS:
        gid = f"primo/{task}-v0"
        if gid not in gym.registry:
            gym.register(id=gid, entry_point="envs.adapter:RobosuiteEnv", kwargs={"task": task},
                         disable_env_checker=True)


_register()
