"""Stable-Baselines3 agents on the robosuite tasks, rewarded sparsely, densely, by a critic or by the oracle.

One readable path from an :class:`AgentConfig` to a trained agent (:func:`train`):

* **envs**: ``SubprocVecEnv`` workers (``DummyVecEnv`` for one worker) build the task with the reward asked
  for: ``sparse`` (the task's success reward), ``dense`` (robosuite's hand-crafted ``reward_shaping=True``),
  ``critic`` / ``oracle`` (the sparse reward plus the critic's shaping). For the last two a
  :class:`~primo_loop.wrappers.VecCriticInTheLoop` in the main process scores all workers' queries in one
  batch, and a ``VecMonitor`` sits on top so episode statistics include the critic's early terminations.
* **logs**: TensorBoard under ``OUT/tb`` with ``critic/*`` scalars (:class:`CriticStatsCallback`), and
  ``OUT/eval.csv``: eval success rate (``info["is_success"]``, the task's own success, never the shaped
  reward) against env steps, from a separate env with no critic; its ``wall_s`` counts the run's seconds across
  resumes (a resumed run goes on from its last evaluation's, so time lost to a kill after it is not counted).
* **checkpoints** under ``OUT/checkpoints`` (the SAC replay buffer with the newest ``keep_checkpoints``; every
  checkpoint's policy stays), ``resume=True`` continues from the newest readable one after a kill,
  ``OUT/final_model.zip`` and ``OUT/done.json`` at the end.
* **demonstrations** (SAC, optional): ``demo_episodes`` scripted episodes per worker open the run
  (:mod:`policies.warmup`); :class:`policies.demo_sac.DemoSAC` keeps them in the replay buffer, draws
  ``demo_fraction`` of each batch from them and can clone them (``bc_steps``, ``bc_regularize``).
  ``action="position"`` gives the agent ``[dx, dy, dz, gripper]`` (:mod:`envs.actions`).

The oracle reads privileged state only, so with ``reward="oracle"`` workers hand the tracker a blank 8x8 frame
instead of paying ~60 ms per rendered frame; the critic sees what a camera would see.
"""
from __future__ import annotations

import copy
import csv
import functools
import importlib
import json
import logging
import math
import re
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError, check_choice, check_counts
from primo_loop.training.online import STATE_PREFIX  # light (numpy only): checkpoint names need it

log = logging.getLogger(__name__)

ALGOS = ("sac", "ppo")
REWARDS = ("sparse", "dense", "critic", "oracle")
CRITIC_REWARDS = ("critic", "oracle")

#: Algorithm presets for state-based robosuite manipulation (our defaults; override with ``algo_kwargs``).
#: SAC follows robosuite's benchmark settings (256x256 MLPs, lr 3e-4, batch 256, tau 5e-3); PPO uses
#: SB3's continuous-control settings with a larger rollout. ``gamma`` is shared with the critic's shaping.
PRESETS: dict[str, dict[str, Any]] = {
    "sac": dict(learning_rate=3e-4, buffer_size=1_000_000, learning_starts=1_000, batch_size=256, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=-1, ent_coef="auto",
                policy_kwargs=dict(net_arch=[256, 256])),
    "ppo": dict(learning_rate=3e-4, n_steps=1024, batch_size=256, n_epochs=10, gamma=0.99, gae_lambda=0.95,
                clip_range=0.2, ent_coef=0.0, policy_kwargs=dict(net_arch=dict(pi=[256, 256], vf=[256, 256]),
                                                                 log_std_init=-0.5)),
}

CHECKPOINT_PREFIX = "model"
_CKPT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)_steps\.zip$")
EVAL_FIELDS = ("timesteps", "success_rate", "mean_reward", "episodes", "wall_s")


@dataclass
class AgentConfig:
    """Everything one training run needs.

    Attributes:
        env: task name (``Lift``), or ``module:callable`` building a Gymnasium env (called with
            ``horizon=``), which is how tests train on a fake env without a simulator.
        robot: robosuite robot.
        algo: "sac" or "ppo".
        reward: "sparse", "dense" (robosuite's shaping), "critic" or "oracle" (sparse + critic shaping).
        critic: critic backend for ``reward="critic"`` [compact]; ``reward="oracle"`` always uses the oracle.
        critic_options: options for ``make_critic``.
        critic_every: query the critic every N env steps [10].
        critic_weight: weight of the critic's shaping term [1.0].
        shaping: "delta" (potential-based, default) or "progress".
        action: "pose" (robosuite's OSC_POSE: 6 deltas + gripper) or "position" (``[dx, dy, dz, gripper]``,
            orientation held; see :mod:`envs.actions`).
        demo_episodes: scripted episodes each worker runs first, stored in the replay buffer as ordinary
            transitions with the run's reward (SAC only; :mod:`policies.warmup`) [0]. They count as env steps.
            A resumed run does not repeat them (keep ``checkpoint_every`` above their length).
        demo_noise: action-noise std of those scripted episodes.
        demo_fraction: share of every SAC batch drawn from the demonstrations [0.5] (:mod:`policies.demo_sac`).
        bc_steps: behaviour-cloning steps of the actor on the demonstrations before the first update [0].
        bc_regularize: a behaviour-cloning step on the demonstrations after every SAC update [False].
        tracker_options: any other :class:`~primo_loop.tracker.TrackerConfig` field (e.g. ``terminate``).
        refresh_every: online critic refresh (:mod:`primo_loop.training.online`): every this many env steps,
            fine-tune the compact critic on the agent's episodes (labelled from privileged sim state) and relabel
            the replay buffer [0: off]. SAC with ``reward="critic"`` only.
        refresh_options: any other :class:`~primo_loop.training.online.RefreshConfig` field (e.g. ``grad_steps``).
        steps: total env steps (over all workers).
        seed: random seed (workers get ``seed + i``; each evaluation :func:`eval_seed`).
        workers: simulation worker processes.
        horizon: episode length in env steps.
        eval_every: evaluate every this many env steps (0: never).
        eval_episodes: episodes per evaluation.
        checkpoint_every: save a checkpoint every this many env steps (0: only at the end).
        keep_checkpoints: newest checkpoints whose replay buffers are kept (they are large); older checkpoints
            keep only their policy (``TrainedPolicy(run, steps=N)``). Resuming needs a buffer, so it uses these.
        out: output folder.
        resume: continue from the newest readable checkpoint in ``out``.
        progress_bar: show a progress bar.
        algo_kwargs: overrides of :data:`PRESETS`.
        device: torch device for the agent.
    """

    env: str = "Lift"
    robot: str = "Panda"
    algo: str = "sac"
    reward: str = "sparse"
    critic: str = "compact"
    critic_options: dict[str, Any] = field(default_factory=dict)
    critic_every: int = 10
    critic_weight: float = 1.0
    shaping: str = "delta"
    action: str = "pose"
    demo_episodes: int = 0
    demo_noise: float = 0.1
    demo_fraction: float = 0.5
    bc_steps: int = 0
    bc_regularize: bool = False
    tracker_options: dict[str, Any] = field(default_factory=dict)
    refresh_every: int = 0
    refresh_options: dict[str, Any] = field(default_factory=dict)
    steps: int = 100_000
    seed: int = 0
    workers: int = 2
    horizon: int = 200
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    out: str = "runs/agent"
    resume: bool = False
    progress_bar: bool = True
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.algo = check_choice("algorithm", self.algo, ALGOS)
        self.reward = check_choice("reward", self.reward, REWARDS)
        from envs.actions import check_action_space

        self.action = check_action_space(self.action, self.robot)
        if not isinstance(self.demo_episodes, (int, np.integer)) or self.demo_episodes < 0:
            raise ConfigError(f"Expected `demo_episodes` to be an integer >= 0, actually: {self.demo_episodes!r}")
        if self.demo_episodes and self.algo != "sac":
            raise ConfigError("Scripted demonstrations (`demo_episodes`) need an off-policy algorithm: use sac")
        if ":" in self.env and (self.demo_episodes or self.action != "pose"):
            raise ConfigError(f"`action` and `demo_episodes` apply to the robosuite tasks, not to {self.env!r}")
        if not (math.isfinite(self.demo_noise) and self.demo_noise >= 0):
            raise ConfigError(f"Expected `demo_noise` >= 0, actually: {self.demo_noise!r}")
        if not 0.0 <= self.demo_fraction < 1.0:
            raise ConfigError(f"Expected 0 <= `demo_fraction` < 1, actually: {self.demo_fraction!r}")
        if not isinstance(self.bc_steps, (int, np.integer)) or self.bc_steps < 0:
            raise ConfigError(f"Expected `bc_steps` to be an integer >= 0, actually: {self.bc_steps!r}")
        check_counts(self, ("steps", "workers", "horizon", "critic_every", "eval_episodes", "keep_checkpoints"))
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Expected `{name}` >= 0 (0: off), actually: {getattr(self, name)!r}")
        if not math.isfinite(self.critic_weight):
            raise ConfigError(f"Expected a finite `critic_weight`, actually: {self.critic_weight!r}")
        unknown = set(self.algo_kwargs) - _algo_params(self.algo)
        if unknown:
            from primo_loop.errors import UnknownNameError

            raise UnknownNameError(f"{self.algo.upper()} option", sorted(unknown)[0], _algo_params(self.algo))
        n_steps = self.algo_kwargs.get("n_steps", 1)
        if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ConfigError(f"Expected `n_steps` to be an integer >= 1, actually: {n_steps!r}")
        self.tracker_config()  # bad tracker options fail here, before any worker starts
        if self.refresh_every or self.refresh_options:
            if self.reward != "critic" or self.algo != "sac" or self.demo_episodes:
                raise ConfigError("Online critic refresh (`refresh_every`) relabels a SAC replay buffer of critic "
                                  "rewards: it needs --reward critic, --algo sac and no --demo-episodes")
            self.refresh_config()

    def refresh_config(self):
        """The :class:`~primo_loop.training.online.RefreshConfig` of online critic refresh (seeded by the run)."""
        from primo_loop.training.online import RefreshConfig

        return RefreshConfig.from_options(**{"every": self.refresh_every, "seed": self.seed, **self.refresh_options})

    def tracker_config(self):
        """The :class:`~primo_loop.tracker.TrackerConfig` of the critic rewards (gamma shared with the agent)."""
        from primo_loop.tracker import TrackerConfig

        return TrackerConfig.from_options(**{
            "critic_every": self.critic_every, "critic_weight": self.critic_weight, "shaping": self.shaping,
            "gamma": float(self.hyperparameters().get("gamma", 0.99)), **self.tracker_options})

    @property
    def critic_name(self) -> str | None:
        """The critic used for the reward (None for sparse/dense)."""
        if self.reward == "oracle":
            return "oracle"
        return self.critic if self.reward == "critic" else None

    def hyperparameters(self) -> dict[str, Any]:
        """The algorithm's keyword arguments: the preset, then ``algo_kwargs``."""
        # a deep copy: SB3 writes into the policy_kwargs it is given (``use_sde``), which must not reach the
        # presets or this config (a resume compares algo_kwargs with the saved ones)
        params = copy.deepcopy({**PRESETS[self.algo], **self.algo_kwargs})
        if self.algo == "sac":
            params["buffer_size"] = int(min(params["buffer_size"], self.steps))
            if params.get("gradient_steps") == -1:  # one update per env step, whatever the worker count
                params["gradient_steps"] = self.workers * int(params.get("train_freq", 1))
            if self.demo_episodes:
                from policies.demo_sac import DemoReplayBuffer

                params.setdefault("replay_buffer_class", DemoReplayBuffer)
                # n-step returns go through our buffer (SB3 ignores ``n_steps`` with a custom buffer class)
                n_steps = int(params.pop("n_steps", 1))
                params.setdefault("replay_buffer_kwargs", {"demo_fraction": self.demo_fraction, "n_steps": n_steps,
                                                           "gamma": float(params.get("gamma", 0.99))})
                params.setdefault("bc_steps", self.bc_steps)
                params.setdefault("bc_regularize", self.bc_regularize)
        return params

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_training_arguments(p: Any) -> None:
    """The command-line options of an :class:`AgentConfig` shared by ``scripts/train_agent.py`` and
    ``benchmarks/shaping.py`` (each adds its reward/seed/output options); :func:`training_config_kwargs`
    reads them back."""
    p.add_argument("--env", default="Lift", help="task name, or module:callable building a Gymnasium env")
    p.add_argument("--algo", default="sac", help="sac | ppo")
    p.add_argument("--critic", default="compact", help="critic backend for the `critic` reward")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE", help="critic option")
    p.add_argument("--critic-every", type=int, default=10, help="query the critic every N env steps")
    p.add_argument("--critic-weight", type=float, default=1.0, help="weight of the critic's shaping term")
    p.add_argument("--shaping", default="delta", help="delta (potential-based) | progress")
    p.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrackerConfig field, e.g. terminate=false")
    p.add_argument("--action", default="pose", help="pose (OSC_POSE, 7-D) | position ([dx, dy, dz, gripper])")
    p.add_argument("--demo-episodes", type=int, default=0,
                   help="scripted episodes per worker seeding the SAC replay buffer (rewarded like the rest)")
    p.add_argument("--demo-noise", type=float, default=0.1, help="action-noise std of the scripted episodes")
    p.add_argument("--demo-fraction", type=float, default=0.5, help="share of each SAC batch from the demonstrations")
    p.add_argument("--bc-steps", type=int, default=0, help="behaviour-cloning steps on the demonstrations first")
    p.add_argument("--bc-regularize", action="store_true",
                   help="a behaviour-cloning step on the demonstrations after every SAC update")
    p.add_argument("--refresh-every", type=int, default=0,
                   help="online critic refresh: fine-tune the critic on the agent's episodes every N env steps and "
                        "relabel the replay buffer (0: off)")
    p.add_argument("--refresh-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any RefreshConfig field, e.g. grad_steps=200")
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between evaluations (0: off)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an algorithm hyperparameter, e.g. learning_starts=5000")


def training_config_kwargs(args: Any) -> dict[str, Any]:
    """:class:`AgentConfig` keyword arguments from the options :func:`add_training_arguments` added."""
    from primo_loop.cli import parse_options

    names = ("env", "algo", "critic", "critic_every", "critic_weight", "shaping", "action", "demo_episodes",
             "demo_noise", "demo_fraction", "bc_steps", "bc_regularize", "workers", "horizon", "eval_every",
             "eval_episodes", "checkpoint_every", "refresh_every")
    return {**{n: getattr(args, n) for n in names}, "critic_options": parse_options(args.critic_option),
            "tracker_options": parse_options(args.tracker_option), "algo_kwargs": parse_options(args.set),
            "refresh_options": parse_options(args.refresh_option)}


def _algo_params(algo: str) -> set[str]:
    """Keyword arguments the algorithm class accepts (its own and those of the SB3 class it extends)."""
    import inspect

    from stable_baselines3.common.base_class import BaseAlgorithm

    params: set[str] = set()
    for klass in _algo_class(algo).__mro__:
        if klass is BaseAlgorithm or not issubclass(klass, BaseAlgorithm):
            break
        if "__init__" in vars(klass):
            params |= {name for name, p in inspect.signature(klass.__init__).parameters.items()
                       if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return params - {"self", "policy", "env"}


def _algo_class(algo: str):
    from stable_baselines3 import PPO

    from policies.demo_sac import DemoSAC

    return {"sac": DemoSAC, "ppo": PPO}[algo]


# ---------------------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------------------
def _blank_frame_wrapper():
    import gymnasium as gym

    class BlankFrames(gym.Wrapper):
        """``render_frame()`` returns a black 8x8 frame: for critics that read privileged state only."""

        def render_frame(self) -> np.ndarray:
            return np.zeros((8, 8, 3), dtype=np.uint8)

    return BlankFrames


def _import_entry(entry: str) -> Callable[..., Any]:
    module, _, attr = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Expected `module:callable` for a custom env, actually: {entry!r} ({exc})") from exc


def make_task_env(task: str, *, robot: str = "Panda", reward: str = "sparse", horizon: int = 200,
                  blank_frames: bool = False, terminate_on_success: bool = False, action: str = "pose",
                  demo_episodes: int = 0, demo_noise: float = 0.1, demo_seed: int = 0, **env_kwargs: Any):
    """One Gymnasium env for a reward kind (runs inside a worker process).

    Args:
        task: task name, or ``module:callable`` (called with ``horizon=``).
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
        env = _import_entry(task)(horizon=horizon)
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
    return _blank_frame_wrapper()(env) if blank_frames else env


def _env_fns(cfg: AgentConfig, n: int, demos: bool = False, **kw: Any) -> list[Callable[[], Any]]:
    fns = []
    for i in range(n):
        if demos:  # each worker records its own demonstrations
            kw.update(demo_episodes=cfg.demo_episodes, demo_noise=cfg.demo_noise,
                      demo_seed=1_000 * (cfg.seed * 100 + i))
        fns.append(functools.partial(make_task_env, cfg.env, robot=cfg.robot, horizon=cfg.horizon,
                                     action=cfg.action, **kw))
    return fns


def make_vec_env(cfg: AgentConfig, critic: Any | None = None):
    """The training VecEnv: workers -> (VecCriticInTheLoop) -> VecMonitor.

    Args:
        cfg: the run's config.
        critic: a critic instance to use instead of building ``cfg.critic_name`` (tests inject fakes).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    fns = _env_fns(cfg, cfg.workers, demos=True, reward=cfg.reward,
                   blank_frames=cfg.reward == "oracle" and critic is None)
    venv = (SubprocVecEnv(fns, start_method="forkserver") if cfg.workers > 1 else DummyVecEnv(fns))
    if cfg.reward in CRITIC_REWARDS:
        from primo_loop.wrappers import VecCriticInTheLoop

        venv = VecCriticInTheLoop(venv, critic if critic is not None else cfg.critic_name,
                                  config=cfg.tracker_config(),
                                  critic_options=None if critic is not None else cfg.critic_options)
    return VecMonitor(venv, info_keywords=("is_success",))


def make_eval_env(cfg: AgentConfig):
    """One env with the sparse reward and no critic, ending on success: eval measures the task itself."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    return VecMonitor(DummyVecEnv(_env_fns(cfg, 1, reward="sparse", terminate_on_success=True)))


def find_critic_wrapper(venv: Any):
    """The :class:`VecCriticInTheLoop` inside a VecEnv stack, or None."""
    from primo_loop.wrappers import VecCriticInTheLoop

    while venv is not None:
        if isinstance(venv, VecCriticInTheLoop):
            return venv
        venv = getattr(venv, "venv", None)
    return None


# ---------------------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------------------
def eval_seed(seed: int, timesteps: int) -> int:
    """The seed of a run's evaluation at ``timesteps`` env steps: it differs between runs and between a run's
    evaluations, and a resumed run evaluates on the same initial states as one that was never stopped.

    Unseeded, every robosuite env draws its initial states from the seed it was built with (0 for all, see
    ``envs.adapter``), so every run of every seed would be evaluated on the same sequence of states.
    """
    return int(np.random.SeedSequence([seed + 10_000, timesteps]).generate_state(1)[0])


def _callbacks():
    from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback

    from primo_loop.wrappers import privileged_from_info

    class CriticStatsCallback(BaseCallback):
        """Records ``critic/*`` in the SB3 logger: query, unreadable, error and termination counts, mean
        latency per query (ms) and mean progress over the last ``window`` answered queries.

        Where the env reports its privileged progress (``info["oracle/progress"]``, as every robosuite task
        does), it also records how the critic's answers stand against it over the same window:
        ``critic/oracle_mae`` (mean absolute difference, progress in [0, 1]) and ``critic/oracle_bias``
        (critic minus oracle). A bias that climbs during training is the agent finding states the critic
        overrates: the learned reward is being exploited, whatever the training return says."""

        def __init__(self, window: int = 1000):
            super().__init__()
            self.progress: deque[float] = deque(maxlen=window)
            self.latency: deque[float] = deque(maxlen=window)
            self.gap: deque[float] = deque(maxlen=window)  # critic minus oracle progress, answered queries
            self.wrapper = None

        def _on_training_start(self) -> None:
            self.wrapper = find_critic_wrapper(self.training_env)

        def _on_step(self) -> bool:
            if self.wrapper is None:
                return True
            for info in self.locals.get("infos", ()):
                if info.get("critic/queried"):
                    if info.get("critic/progress") is not None:
                        progress = float(info["critic/progress"])
                        self.progress.append(progress)
                        oracle = privileged_from_info(info)
                        if oracle is not None:
                            self.gap.append(progress - oracle["progress"])
                    self.latency.append(float(info.get("critic/latency_s") or 0.0))
            self.record()
            return True

        def record(self) -> None:
            stats = [t.stats for t in self.wrapper.trackers]
            rec = self.logger.record
            rec("critic/queries", sum(s.queries for s in stats))
            rec("critic/unreadable", sum(s.unreadable for s in stats))
            rec("critic/errors", sum(s.errors for s in stats))
            rec("critic/raised_batches", self.wrapper.raised_batches)
            rec("critic/terminations", sum(s.terminations for s in stats))
            rec("critic/frames_rendered", sum(s.frames_rendered for s in stats))
            if self.latency:
                rec("critic/latency_ms", 1000.0 * float(np.mean(self.latency)))
            if self.progress:
                rec("critic/progress_mean", float(np.mean(self.progress)))
            if self.gap:
                rec("critic/oracle_mae", float(np.mean(np.abs(self.gap))))
                rec("critic/oracle_bias", float(np.mean(self.gap)))

    class PrunedCheckpoints(CheckpointCallback):
        """SB3's CheckpointCallback that also deletes the replay buffers of all but the newest ``keep``."""

        def __init__(self, *args: Any, keep: int = 2, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.keep = keep

        def _on_step(self) -> bool:
            saved = self.n_calls % self.save_freq == 0
            ok = super()._on_step()
            if saved:
                prune_checkpoints(Path(self.save_path), self.keep)
            return ok

    class EvalLog(BaseCallback):
        """Appends one row per evaluation to ``eval.csv`` (called by EvalCallback after each eval)."""

        def __init__(self, path: Path, t0: float):
            super().__init__()
            self.path, self.t0 = path, t0

        def _on_step(self) -> bool:
            ev = self.parent
            success = float(np.mean(ev._is_success_buffer)) if ev._is_success_buffer else float("nan")
            append_eval_row(self.path, {"timesteps": self.num_timesteps, "success_rate": success,
                                        "mean_reward": float(ev.last_mean_reward), "episodes": ev.n_eval_episodes,
                                        "wall_s": round(time.time() - self.t0, 1)})
            self.logger.record("eval/success_rate", success)
            return True

    class ResumableEval(EvalCallback):
        """SB3's EvalCallback that seeds every evaluation with :func:`eval_seed` and, on a resumed run, first
        does the evaluation due at the resume step when ``eval.csv`` lacks it: a run killed between a checkpoint
        and the evaluation of the same step (the evaluation comes second) would otherwise resume past it and
        leave a hole in its curve."""

        def __init__(self, *args: Any, evaluate_at_start: bool = False, seed: int = 0, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.evaluate_at_start = evaluate_at_start
            self.seed = seed

        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:  # SB3's own test for "evaluate now"
                self.eval_env.seed(eval_seed(self.seed, self.num_timesteps))  # applied at evaluate_policy's reset
            return super()._on_step()

        def _on_training_start(self) -> None:
            super()._on_training_start()
            if self.evaluate_at_start:
                log.info("evaluating at %d steps: the evaluation due there was lost to the kill", self.num_timesteps)
                self._on_step()  # n_calls is 0 here, so the evaluation fires

    class CriticRefreshCallback(BaseCallback):
        """Drives online critic refresh (:class:`~primo_loop.training.online.CriticRefresher`): tells it which
        buffer row each step's transitions go to, lets it refresh and relabel when due, records ``refresh/*``
        (and a row of ``OUT/refresh.csv``) per refresh, and saves its state next to each checkpoint. It must
        run before the checkpoint callback, so a saved buffer and a saved state agree."""

        def __init__(self, refresher: Any, csv_path: Path, save_freq: int, save_path: Path):
            super().__init__()
            self.refresher, self.csv_path = refresher, csv_path
            self.save_freq, self.save_path = save_freq, save_path
            self.wrapper = None

        def _on_training_start(self) -> None:
            self.wrapper = find_critic_wrapper(self.training_env)

        def _on_step(self) -> bool:
            rb = self.model.replay_buffer
            stats = self.refresher.on_step(self.num_timesteps, rb.pos, list(self.locals["infos"]), rb.rewards,
                                           running=list(self.wrapper.episode_ids))
            if stats is not None:
                for key, value in stats.items():
                    self.logger.record(f"refresh/{key}", value)
                append_eval_row(self.csv_path, {"timesteps": self.num_timesteps, **stats}, fields=None)
            if self.save_freq and self.n_calls % self.save_freq == 0:
                self.save_path.mkdir(parents=True, exist_ok=True)
                self.refresher.save(refresh_state_path(self.save_path, self.num_timesteps))
            return True

        def _on_training_end(self) -> None:
            # the critic as the agent last saw it, loadable like any compact checkpoint
            self.refresher.export(self.csv_path.parent / "critic", run=str(self.csv_path.parent),
                                  timesteps=int(self.num_timesteps))

    return CriticStatsCallback, PrunedCheckpoints, EvalLog, CriticRefreshCallback, ResumableEval


def append_eval_row(path: Path, row: Mapping[str, Any], fields: Sequence[str] | None = EVAL_FIELDS) -> None:
    """Append a row to an eval CSV (header written on creation).

    ``fields=None``: the columns are the file's own plus any new key of ``row`` (the file is rewritten with the
    wider header then, so a run resumed by a newer version that logs more keeps one readable table)."""
    if fields is None:
        old: list[dict[str, str]] = []
        header: list[str] = []
        if path.exists():
            with path.open() as f:
                reader = csv.DictReader(f)
                header, old = list(reader.fieldnames or []), list(reader)
        fields = header + [k for k in row if k not in header]
        if header and fields != header:
            path.unlink()
            for r in old:
                append_eval_row(path, r, fields)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k) for k in fields})


def read_eval(path: str | Path) -> list[dict[str, float]]:
    """Rows of an eval CSV as floats (empty if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


def truncate_eval(path: Path, timesteps: int) -> None:
    """Drop rows of an eval (or refresh) CSV after ``timesteps`` (they came from steps lost to a kill and will
    be redone). Values are rewritten as read (float text)."""
    if not path.exists():
        return
    with path.open() as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or EVAL_FIELDS)
        rows = [r for r in reader if float(r["timesteps"]) <= timesteps]
    path.unlink()
    for r in rows:
        append_eval_row(path, r, fields)


# ---------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------
def _buffer_path(ckpt: Path) -> Path:
    steps = _CKPT_RE.match(ckpt.name).group(1)
    return ckpt.with_name(f"{CHECKPOINT_PREFIX}_replay_buffer_{steps}_steps.pkl")


def refresh_state_path(folder: Path, steps: int) -> Path:
    """Where the online-refresh state saved with the checkpoint of ``steps`` env steps lives."""
    return Path(folder) / f"{STATE_PREFIX}_{int(steps)}_steps.pt"


def _refresh_path(ckpt: Path) -> Path:
    return refresh_state_path(ckpt.parent, int(_CKPT_RE.match(ckpt.name).group(1)))


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(timesteps, path)`` of the checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete the replay buffers of all but the newest ``keep`` checkpoints. The policies stay (a few MB each
    against ~70 MB for a buffer): a run's earlier agents remain there to watch or to collect episodes from."""
    for _, path in list_checkpoints(folder)[keep:]:
        _buffer_path(path).unlink(missing_ok=True)
        _refresh_path(path).unlink(missing_ok=True)


def load_model(cls: Any, path: str | Path, **kwargs: Any) -> Any:
    """``cls.load(path, **kwargs)`` without SB3's false warning about n-step SAC models.

    SB3 (2.9 here) warns on every load of an n-step SAC that its ``n_steps`` "is ignored" next to the replay buffer
    class it chose itself; the saved buffer kwargs (and a saved buffer loaded after) keep the n-step returns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom")
        return cls.load(path, **kwargs)


def load_latest(cfg: AgentConfig, env: Any):
    """The newest checkpoint that loads (with its replay buffer for SAC), or None if there is none.

    A checkpoint half-written when the run was killed fails to load and the previous one is used.
    """
    cls = _algo_class(cfg.algo)
    for steps, path in list_checkpoints(Path(cfg.out) / "checkpoints"):
        buffer = _buffer_path(path)
        if cfg.algo == "sac" and not buffer.exists():
            log.warning("checkpoint %s has no replay buffer; trying an older one", path.name)
            continue
        if cfg.refresh_every and not _refresh_path(path).exists():
            log.warning("checkpoint %s has no critic-refresh state; trying an older one", path.name)
            continue
        try:
            model = load_model(cls, path, env=env, device=cfg.device)
            if cfg.algo == "sac":
                model.load_replay_buffer(buffer)
                _grow_replay_buffer(model, int(cfg.hyperparameters()["buffer_size"]))
        except Exception as exc:  # noqa: BLE001 - a truncated zip/pickle raises many kinds
            log.warning("cannot load checkpoint %s (%r); trying an older one", path.name, exc)
            continue
        log.info("resuming from %s (%d env steps)", path.name, model.num_timesteps)
        return model
    return None


def _grow_replay_buffer(model: Any, size: int) -> None:
    """Give a resumed SAC the buffer its (longer) run needs, oldest transitions first.

    The buffer is sized to the run's steps; a run resumed with more ``steps`` would otherwise overwrite its
    oldest transitions (the demonstrations among them) once it passes the old size.
    """
    rb = model.replay_buffer
    if rb.buffer_size >= size:
        return
    new = type(rb)(size, rb.observation_space, rb.action_space, device=rb.device, n_envs=rb.n_envs,
                   optimize_memory_usage=rb.optimize_memory_usage,
                   handle_timeout_termination=rb.handle_timeout_termination)
    n = rb.buffer_size if rb.full else rb.pos
    order = (np.arange(rb.pos, rb.pos + n) % rb.buffer_size) if rb.full else np.arange(n)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        getattr(new, name)[:n] = getattr(rb, name)[order]
    new.pos, new.full = n, False
    for name in ("demos", "demo_fraction", "_pending", "n_steps", "gamma"):  # DemoReplayBuffer, SB3 NStepReplayBuffer
        if hasattr(rb, name):
            setattr(new, name, getattr(rb, name))
    model.replay_buffer = new
    model.buffer_size = size


def _check_resume_config(out: Path, cfg: AgentConfig) -> None:
    saved_path = out / "config.json"
    if not saved_path.exists():
        return
    saved = {"refresh_every": 0, **json.loads(saved_path.read_text())}  # runs from before refresh existed had none
    # algo_kwargs: a checkpoint loads with the hyperparameters it was saved with, so a changed `--set` would be
    # recorded in config.json yet not trained with
    for key in ("env", "robot", "algo", "reward", "critic", "workers", "horizon", "seed", "action", "refresh_every",
                "algo_kwargs"):
        if key in saved and saved[key] != getattr(cfg, key):
            raise ConfigError(f"--resume with a different `{key}`: the run in {str(out)!r} used {saved[key]!r}, "
                              f"this command asks for {getattr(cfg, key)!r}; use a new --out or the same options.")


def run_files(run_dir: str | Path, steps: int | None = None) -> tuple[Path, Path]:
    """A training run's model zip and replay buffer: the final ones, or the checkpoint at ``steps``.

    Raises:
        ConfigError: no such checkpoint (naming the ones there are), or no finished run in ``run_dir``.
    """
    run_dir = Path(run_dir)
    if steps is None:
        model, buffer = run_dir / "final_model.zip", run_dir / "final_replay_buffer.pkl"
    else:
        found = dict(list_checkpoints(run_dir / "checkpoints"))
        if steps not in found:
            raise ConfigError(f"no checkpoint at {steps} steps in {run_dir}; there are: {sorted(found) or 'none'}")
        model, buffer = found[steps], _buffer_path(found[steps])
    if not model.exists():
        raise ConfigError(f"{model} not found: is {run_dir} a finished run of scripts/train_agent.py?")
    return model, buffer


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
        self.config = json.loads(config.read_text())
        if ":" in self.config["env"]:
            raise ConfigError(f"{run_dir} was trained on {self.config['env']!r}, not a robosuite task")
        self.run_dir = Path(run_dir)
        self.path, _ = run_files(run_dir, steps)
        self.model = load_model(_algo_class(self.config["algo"]), self.path, device="cpu")
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


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------
def _refresher(cfg: AgentConfig, venv: Any, model: Any, resumed: bool):
    """The online critic refresher of a run, restored from the checkpoint the model was loaded from."""
    from primo_loop.training.online import CriticRefresher

    wrapper = find_critic_wrapper(venv)
    rb = model.replay_buffer
    refresher = CriticRefresher(wrapper.critic, wrapper.trackers[0].config, cfg.refresh_config(),
                                buffer_size=rb.buffer_size, n_envs=rb.n_envs)
    if resumed:
        path = refresh_state_path(Path(cfg.out) / "checkpoints", model.num_timesteps)
        refresher.load(path)
        truncate_eval(Path(cfg.out) / "refresh.csv", model.num_timesteps)
        log.info("critic refresh state restored from %s (%d refreshes, %d episodes)", path.name,
                 refresher.refreshes, len(refresher.episodes))
    else:
        (Path(cfg.out) / "refresh.csv").unlink(missing_ok=True)
    wrapper.next_episode_id = max(wrapper.next_episode_id, refresher.next_episode_id)
    wrapper.episode_sink = refresher.add_episode
    return refresher


def train(cfg: AgentConfig, critic: Any | None = None) -> dict[str, Any]:
    """Train (or resume) an agent; returns the run summary also written to ``OUT/done.json``.

    Args:
        cfg: the run's config.
        critic: a critic instance to use instead of building one by name (tests inject fakes).
    """
    import torch
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import set_random_seed

    from primo_loop.cli import writable_dir
    from primo_loop.outputs import write_text_atomic

    torch.set_num_threads(1)
    out = writable_dir(cfg.out)
    ckpt_dir = out / "checkpoints"
    eval_csv = out / "eval.csv"
    done_path = out / "done.json"
    if cfg.resume:
        _check_resume_config(out, cfg)
        if done_path.exists():
            summary = json.loads(done_path.read_text())
            if summary.get("timesteps", 0) >= cfg.steps:
                log.info("%s already finished %d steps; nothing to do", out, summary["timesteps"])
                return summary
            # going on past an earlier budget: the file means "ended here", so it goes until this run ends
            done_path.unlink()
    elif list_checkpoints(ckpt_dir) or done_path.exists():
        raise ConfigError(f"{str(out)!r} already holds a run; pass --resume to continue it or use a new --out")
    write_text_atomic(out / "config.json", json.dumps(cfg.as_dict(), indent=2, default=str))

    set_random_seed(cfg.seed)
    venv = make_vec_env(cfg, critic)
    eval_env = make_eval_env(cfg) if cfg.eval_every else None
    model = load_latest(cfg, venv) if cfg.resume else None
    t0 = eval_t0 = time.time()
    try:
        if model is None:
            if cfg.resume:
                log.info("no checkpoint in %s; starting from scratch", ckpt_dir)
            eval_csv.unlink(missing_ok=True)
            model = _algo_class(cfg.algo)("MlpPolicy", venv, seed=cfg.seed, device=cfg.device,
                                          tensorboard_log=str(out / "tb"), verbose=0, **cfg.hyperparameters())
        else:
            truncate_eval(eval_csv, model.num_timesteps)
            # wall_s in eval.csv goes on from where the kept rows left it, not from zero at every resume
            eval_t0 -= max((row.get("wall_s", 0.0) for row in read_eval(eval_csv)), default=0.0)
            if cfg.demo_episodes and model.num_timesteps > 0:  # the buffer already holds the demonstrations
                venv.env_method("end_warmup")
        start = model.num_timesteps
        CriticStats, Checkpoints, EvalLog, Refresh, Eval = _callbacks()
        callbacks = [CriticStats()]
        if cfg.refresh_every:
            refresher = _refresher(cfg, venv, model, resumed=start > 0)
            callbacks.append(Refresh(refresher, out / "refresh.csv",
                                     max(1, cfg.checkpoint_every // cfg.workers) if cfg.checkpoint_every else 0,
                                     ckpt_dir))
        if cfg.checkpoint_every:
            callbacks.append(Checkpoints(save_freq=max(1, cfg.checkpoint_every // cfg.workers),
                                         save_path=str(ckpt_dir), name_prefix=CHECKPOINT_PREFIX,
                                         save_replay_buffer=cfg.algo == "sac", keep=cfg.keep_checkpoints))
        if eval_env is not None:
            eval_freq = max(1, cfg.eval_every // cfg.workers)
            lost = (start > 0 and start % (eval_freq * cfg.workers) == 0
                    and all(row["timesteps"] != start for row in read_eval(eval_csv)))
            callbacks.append(Eval(eval_env, n_eval_episodes=cfg.eval_episodes, eval_freq=eval_freq,
                                  deterministic=True, callback_after_eval=EvalLog(eval_csv, eval_t0), verbose=0,
                                  evaluate_at_start=lost, seed=cfg.seed))  # fires only if learn() runs
        remaining = cfg.steps - start
        t_learn = time.time()
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=CallbackList(callbacks), reset_num_timesteps=start == 0,
                        tb_log_name=f"{cfg.algo}_{cfg.reward}", progress_bar=cfg.progress_bar)
        wall = time.time() - t0
        model.save(out / "final_model.zip")
        if cfg.algo == "sac":
            model.save_replay_buffer(out / "final_replay_buffer.pkl")
        wrapper = find_critic_wrapper(venv)
        summary = {
            "timesteps": int(model.num_timesteps),
            "resumed_from": int(start),
            "wall_s": round(wall, 1),
            "steps_per_s": (round((model.num_timesteps - start) / (time.time() - t_learn), 1)  # learning only
                            if model.num_timesteps > start else None),
            "eval": read_eval(eval_csv)[-1:] or None,
            "critic": None if wrapper is None else {
                "queries": sum(t.stats.queries for t in wrapper.trackers),
                "unreadable": sum(t.stats.unreadable for t in wrapper.trackers),
                "errors": sum(t.stats.errors for t in wrapper.trackers),
                "raised_batches": wrapper.raised_batches,
                "terminations": sum(t.stats.terminations for t in wrapper.trackers),
            },
        }
        write_text_atomic(done_path, json.dumps(summary, indent=2))
        return summary
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()

