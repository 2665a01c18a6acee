"""A trained agent loaded from its run folder (:class:`TrainedPolicy`), a policy for rollouts and collection."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from policies.sb3.config import algo_class
from policies.sb3.run_folder import load_model, run_files
from primo_loop.errors import ConfigError


class TrainedPolicy:
    """A trained agent from a run folder (``scripts/train_agent.py --out``), acting deterministically; a policy
    for :func:`primo_loop.rollout.run_episode`.

    Args:
        run_dir: the run folder; its ``config.json`` says the task, robot, action space and algorithm.
        steps: use the checkpoint at this many env steps (default: the final model).
        noise: std of Gaussian noise added to every action dimension (clipped to the action bounds), e.g. to
            collect varied episodes of one agent; 0 acts deterministically.
        seed: seeds the noise (``reset(seed)`` reseeds it).
    """

    def __init__(self, run_dir: str | Path, steps: int | None = None, noise: float = 0.0, seed: int = 0):
        config = Path(run_dir) / "config.json"
        if not config.exists():
            raise ConfigError(f"{config} not found: is {run_dir} a run folder of scripts/train_agent.py?")
        if noise < 0:
            raise ConfigError(f"Expected `noise` >= 0, actually: {noise}")
        try:
            self.config = json.loads(config.read_text())
        except ValueError as exc:
            raise ConfigError(f"{config} is not readable JSON ({exc}): is {run_dir} a complete run folder?") from exc
        if ":" in self.config["env"]:
            raise ConfigError(f"{run_dir} was trained on {self.config['env']!r}, not a robosuite task")
        self.run_dir = Path(run_dir)
        self.path, _ = run_files(run_dir, steps)
        self.model = load_model(algo_class(self.config["algo"]), self.path, device="cpu")
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)

    def check_task(self, task: str, robot: str) -> None:
        """Raise ConfigError unless the agent was trained on ``task`` with ``robot``."""
        env, own = self.config["env"], self.config.get("robot", "Panda")
        for name, asked, trained in (("env", task, env), ("robot", robot, own)):
            if asked != trained:
                raise ConfigError(f"{self.run_dir} was trained with --{name} {trained}: it was trained on {env} "
                                  f"with {own}; pass --env {env} --robot {own}")

    def wrap_env(self, env: Any) -> Any:
        """The env with the action space the agent was trained in (position actions or the robot's own)."""
        if self.config.get("action", "pose") == "position":
            from envs.actions import PositionActions

            return PositionActions(env)
        return env

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, obs: Any) -> np.ndarray:
        action = self.model.predict(obs, deterministic=True)[0]
        if self.noise > 0:
            space = self.model.action_space
            action = np.clip(action + self._rng.normal(0.0, self.noise, size=action.shape), space.low, space.high)
        return action

