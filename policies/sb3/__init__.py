"""Stable-Baselines3 agents on the robosuite tasks (or any Gymnasium env), rewarded sparsely, densely, by a
critic or by the oracle.

One readable path from an :class:`AgentConfig` to a trained agent (:func:`train`), split by concern:

* :mod:`~policies.sb3.config`: the run's settings, every one a dataclass field with a docstring (the command
  line of ``scripts/train_agent.py`` is generated from them), and the algorithm presets;
* :mod:`~policies.sb3.vec_envs`: ``SubprocVecEnv`` workers (``DummyVecEnv`` for one) build the task with the
  reward asked for: ``sparse`` (the task's success reward), ``dense`` (robosuite's ``reward_shaping=True``),
  ``critic`` / ``oracle`` (the sparse reward plus the critic's shaping, from a
  :class:`~primo_loop.wrappers.VecCriticInTheLoop` in the main process that scores all workers' queries in one
  batch); a ``VecMonitor`` sits on top, so episode statistics include the critic's rewards and terminations;
* :mod:`~policies.sb3.callbacks`: TensorBoard ``critic/*`` scalars, ``OUT/eval.csv`` (eval success rate, from
  ``info["is_success"]`` in a separate env with no critic; an env that reports none is evaluated on return),
  pruned checkpoints, seeded resumable evaluation, online critic refresh;
* :mod:`~policies.sb3.run_folder`: the run folder (``config.json``, logs, ``checkpoints/``, ``final_model.zip``,
  ``done.json``); an existing one is refused unless resumed (``resume``) or replaced (``overwrite``);
* :mod:`~policies.sb3.driver`: :func:`train`;
* :mod:`~policies.sb3.trained`: :class:`TrainedPolicy`, a trained agent as a policy.

Demonstrations (SAC, optional): ``demo_episodes`` scripted episodes per worker open the run
(:mod:`policies.warmup`); :class:`policies.demo_sac.DemoSAC` keeps them in the replay buffer, draws
``demo_fraction`` of each batch from them and can clone them (``bc_steps``, ``bc_regularize``).
"""
from __future__ import annotations

from policies.sb3.config import ALGOS, CRITIC_REWARDS, PRESETS, REWARDS, AgentConfig, SB3Options, algo_class
from policies.sb3.driver import train
from policies.sb3.run_folder import (
    CHECKPOINT_PREFIX,
    EVAL_FIELDS,
    append_eval_row,
    grow_replay_buffer,
    list_checkpoints,
    load_latest,
    load_model,
    prune_checkpoints,
    read_eval,
    refresh_state_path,
    run_files,
    truncate_eval,
)
from policies.sb3.trained import TrainedPolicy
from policies.sb3.vec_envs import find_critic_wrapper, make_eval_env, make_task_env, make_vec_env

__all__ = [
    "ALGOS", "CHECKPOINT_PREFIX", "CRITIC_REWARDS", "EVAL_FIELDS", "PRESETS", "REWARDS", "AgentConfig",
    "SB3Options", "TrainedPolicy", "algo_class", "append_eval_row", "find_critic_wrapper", "grow_replay_buffer",
    "list_checkpoints", "load_latest", "load_model", "make_eval_env", "make_task_env", "make_vec_env",
    "prune_checkpoints", "read_eval", "refresh_state_path", "run_files", "train", "truncate_eval",
]
