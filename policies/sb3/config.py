"""The settings of one training run: :class:`AgentConfig`, its nested tracker and refresh configs, and the SB3
hyperparameters (:class:`SB3Options`, :data:`PRESETS`).

Every setting is a dataclass field with a docstring; ``scripts/train_agent.py`` builds its command line from these
fields (:mod:`primo_loop.config_cli`), so each has one name and one route: ``--steps``, ``--tracker.critic-every``,
``--refresh.every``, ``--sb3.learning-starts``. The tracker's ``gamma`` is the agent's (``--sb3.gamma``) and the
refresh's ``seed`` is the run's (``--seed``): neither is an option of its own.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from primo_loop.errors import ConfigError, UnknownNameError, check_choice, check_counts
from primo_loop.tracker import TrackerConfig
from primo_loop.training.refresh_config import RefreshConfig

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
#: AgentConfig fields that DemoSAC also takes as keyword arguments: set through the field, never algo_kwargs.
_OWN_FIELDS = ("bc_steps", "bc_regularize")


@dataclass
class SB3Options:
    """The algorithm hyperparameters a command line may override (``--sb3.NAME``); unset ones keep the preset
    (:data:`PRESETS`). From Python, ``AgentConfig.algo_kwargs`` takes any keyword of the algorithm class."""

    learning_rate: float | None = None
    """optimizer learning rate (preset: 3e-4)"""
    buffer_size: int | None = None
    """SAC replay buffer size, capped at the run's steps (preset: 1000000)"""
    learning_starts: int | None = None
    """SAC: env steps of random actions before the first update (preset: 1000)"""
    batch_size: int | None = None
    """minibatch size (preset: 256)"""
    tau: float | None = None
    """SAC target-network update rate (preset: 0.005)"""
    gamma: float | None = None
    """discount, shared with the critic's potential-based shaping (preset: 0.99)"""
    train_freq: int | None = None
    """SAC: env steps per worker between updates (preset: 1)"""
    gradient_steps: int | None = None
    """SAC: gradient steps per update; -1: one per env step over all workers (preset: -1)"""
    ent_coef: str | None = None
    """entropy coefficient: a number, or 'auto' (SAC's learned one; preset: auto for SAC, 0 for PPO)"""
    n_steps: int | None = None
    """SAC: n-step returns (preset: 1); PPO: rollout length per worker (preset: 1024)"""
    n_epochs: int | None = None
    """PPO: epochs per rollout (preset: 10)"""
    gae_lambda: float | None = None
    """PPO: GAE lambda (preset: 0.95)"""
    clip_range: float | None = None
    """PPO: clipping range (preset: 0.2)"""
    net_arch: tuple[int, ...] | None = None
    """hidden layer sizes of the actor and critic networks (preset: 256 256)"""

    @staticmethod
    def to_kwargs(given: dict[str, Any]) -> dict[str, Any]:
        """The ``algo_kwargs`` of the options given (``net_arch`` goes into ``policy_kwargs``)."""
        out = dict(given)
        if "ent_coef" in out:
            value = str(out["ent_coef"])
            try:
                out["ent_coef"] = float(value)
            except ValueError:
                if not value.startswith("auto"):
                    raise ConfigError(f"Expected --sb3.ent-coef to be a number or 'auto', actually: {value!r}") \
                        from None
        if "net_arch" in out:
            out["policy_kwargs"] = {"net_arch": [int(n) for n in out.pop("net_arch")]}
        return out


@dataclass
class AgentConfig:
    """Everything one training run needs (see :func:`policies.sb3.train`)."""

    env: str = "Lift"
    """task name, or module:callable returning a Gymnasium env (called with horizon= when it takes it)"""
    robot: str = "Panda"
    """robosuite robot"""
    instruction: str | None = None
    """the task instruction the critic reads, for an env that carries none (our tasks carry their own)"""
    algo: Literal["sac", "ppo"] = "sac"
    """algorithm"""
    reward: Literal["sparse", "dense", "critic", "oracle"] = "sparse"
    """sparse (the task's success), dense (robosuite's shaping), critic or oracle (sparse + the critic's shaping)"""
    critic: str | None = None
    """critic backend (a registered name, or module:Factory) for --reward critic [compact]; the oracle reward
    always uses the oracle"""
    critic_options: dict[str, Any] = field(default_factory=dict, metadata={"key_value": "critic-option"})
    """an option of the critic backend, e.g. checkpoint=runs/critic"""
    critic_on_error: Literal["hold", "raise"] = "hold"
    """a failed critic query: hold (log, count it as failed, hold the shaping) or raise (stop training)"""
    action: Literal["pose", "position"] = "pose"
    """pose (OSC_POSE: 6 deltas + gripper) or position ([dx, dy, dz, gripper], orientation held)"""
    demo_episodes: int = 0
    """scripted episodes each worker runs first, stored in the SAC replay buffer with the run's reward"""
    demo_noise: float = 0.1
    """action-noise std of the scripted episodes"""
    demo_fraction: float = 0.5
    """share of every SAC batch drawn from the demonstrations"""
    bc_steps: int = 0
    """behaviour-cloning steps of the actor on the demonstrations before the first update"""
    bc_regularize: bool = False
    """a behaviour-cloning step on the demonstrations after every SAC update"""
    steps: int = 100_000
    """total env steps (over all workers)"""
    seed: int = 0
    """random seed (workers get seed + i; online refresh uses it too)"""
    workers: int = 2
    """simulation worker processes"""
    horizon: int = 200
    """episode length in env steps"""
    eval_every: int = 10_000
    """env steps between evaluations on the task's own success (0: never)"""
    eval_episodes: int = 10
    """episodes per evaluation"""
    checkpoint_every: int = 10_000
    """env steps between checkpoints (0: only at the end)"""
    keep_checkpoints: int = 2
    """newest checkpoints that keep their replay buffers (older ones keep only the policy)"""
    out: str = "runs/agent"
    """output folder"""
    resume: bool = False
    """continue the run in --out from its newest readable checkpoint"""
    overwrite: bool = False
    """delete what --out holds and start anew"""
    progress_bar: bool = True
    """show a progress bar"""
    device: str = "cpu"
    """torch device of the agent"""
    tracker: TrackerConfig = field(default_factory=TrackerConfig, metadata={"exclude": ("gamma",)})
    """the critic in the loop (critic and oracle rewards); its gamma is the agent's"""
    refresh: RefreshConfig = field(default_factory=lambda: RefreshConfig(every=0), metadata={"exclude": ("seed",)})
    """online critic refresh (--refresh.every > 0 turns it on; SAC with the critic reward only)"""
    algo_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"options": SB3Options, "prefix": "sb3"})
    """overrides of the algorithm's preset (any keyword of the algorithm class)"""

    def __post_init__(self) -> None:
        self.algo = check_choice("algorithm", self.algo, ALGOS)
        self.reward = check_choice("reward", self.reward, REWARDS)
        if self.critic is not None and self.reward != "critic":
            raise ConfigError(f"--critic {self.critic} has no effect with --reward {self.reward}: the critic "
                              "shapes the reward only with --reward critic (the oracle reward always uses the "
                              "oracle); add --reward critic or drop --critic")
        from envs.actions import check_action_space

        self.action = check_action_space(self.action, self.robot)
        for name in ("demo_episodes", "bc_steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"Expected `{name}` to be an integer >= 0, actually: {value!r}")
        if self.demo_episodes and self.algo != "sac":
            raise ConfigError("Scripted demonstrations (`demo_episodes`) need an off-policy algorithm: use sac")
        if ":" in self.env and (self.demo_episodes or self.action != "pose"):
            raise ConfigError(f"`action` and `demo_episodes` apply to the robosuite tasks, not to {self.env!r}")
        if not (math.isfinite(self.demo_noise) and self.demo_noise >= 0):
            raise ConfigError(f"Expected `demo_noise` >= 0, actually: {self.demo_noise!r}")
        if not 0.0 <= self.demo_fraction < 1.0:
            raise ConfigError(f"Expected 0 <= `demo_fraction` < 1, actually: {self.demo_fraction!r}")
        check_counts(self, ("steps", "workers", "horizon", "eval_episodes", "keep_checkpoints"))
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Expected `{name}` >= 0 (0: off), actually: {getattr(self, name)!r}")
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
        self._check_algo_kwargs()
        self._check_nested()

    def _check_algo_kwargs(self) -> None:
        twice = [k for k in _OWN_FIELDS if k in self.algo_kwargs]
        if twice:
            name = twice[0]
            raise ConfigError(f"`{name}` is a setting of its own: pass {name}=... (--{name.replace('_', '-')}), "
                              "not in algo_kwargs")
        unknown = set(self.algo_kwargs) - _algo_params(self.algo)
        if unknown:
            raise UnknownNameError(f"{self.algo.upper()} option", sorted(unknown)[0], _algo_params(self.algo))
        n_steps = self.algo_kwargs.get("n_steps", 1)
        if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ConfigError(f"Expected `n_steps` to be an integer >= 1, actually: {n_steps!r}")

    def _check_nested(self) -> None:
        if isinstance(self.tracker, dict):  # from a saved config.json
            self.tracker = TrackerConfig.from_options(**self.tracker)
        if isinstance(self.refresh, dict):
            self.refresh = RefreshConfig.from_options(**self.refresh)
        gamma = float(self.hyperparameters().get("gamma", 0.99))
        default_gamma = TrackerConfig.__dataclass_fields__["gamma"].default
        if self.tracker.gamma not in (gamma, default_gamma):
            raise ConfigError(f"The tracker's gamma ({self.tracker.gamma}) differs from the agent's ({gamma}): "
                              "potential-based shaping needs the agent's; set the agent's gamma in algo_kwargs "
                              "(--sb3.gamma)")
        self.tracker = dataclasses.replace(self.tracker, gamma=gamma)
        self._check_cascade()
        self.refresh = dataclasses.replace(self.refresh, seed=self.seed)
        if self.reward not in CRITIC_REWARDS:  # settings a sparse or dense run would silently ignore
            if self.instruction is not None:
                raise ConfigError(f"--instruction has no effect with --reward {self.reward}: only the critic "
                                  "reads it; drop it or change --reward")
            if self.critic_options:
                raise ConfigError(f"--critic-option has no effect with --reward {self.reward}: critic options "
                                  "apply to --reward critic or oracle; drop them or change --reward")
            if self.tracker != dataclasses.replace(TrackerConfig(), gamma=gamma):
                raise ConfigError(f"--tracker.* options have no effect with --reward {self.reward}: the tracker "
                                  "shapes critic and oracle rewards only; drop them or change --reward")
        off = dataclasses.replace(RefreshConfig(every=0), seed=self.seed)
        if self.refresh.every or self.refresh != off:
            if not self.refresh.every:
                raise ConfigError("Refresh options need online refresh on: pass --refresh.every N (N > 0)")
            if self.reward != "critic" or self.algo != "sac" or self.demo_episodes:
                raise ConfigError("Online critic refresh (--refresh.every) relabels a SAC replay buffer of critic "
                                  "rewards: it needs --reward critic, --algo sac and no --demo-episodes")

    def _check_cascade(self) -> None:
        """A cascade critic (``--critic cascade``) judges its student unsure near the tracker's failure threshold
        (passed on unless given), and its ``override`` waits for the teacher: only in asynchronous mode."""
        if self.critic != "cascade":
            return
        self.critic_options.setdefault("failure_threshold", self.tracker.failure_threshold)
        if str(self.critic_options.get("override", "")).lower() in ("true", "1") and not self.tracker.async_critic:
            raise ConfigError("--critic-option override=true makes every batch with a teacher query wait for the "
                              "teacher; expected it with --tracker.async-critic (the wait becomes a deferred reward)")

    @property
    def critic_name(self) -> str | None:
        """The critic used for the reward (None for sparse/dense)."""
        if self.reward == "oracle":
            return "oracle"
        return (self.critic or "compact") if self.reward == "critic" else None

    def tracker_config(self) -> TrackerConfig:
        """The :class:`~primo_loop.tracker.TrackerConfig` of the critic rewards (gamma shared with the agent)."""
        return self.tracker

    def refresh_config(self) -> RefreshConfig:
        """The :class:`~primo_loop.training.online.RefreshConfig` of online critic refresh (seeded by the run)."""
        return self.refresh

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
                params["bc_steps"] = self.bc_steps
                params["bc_regularize"] = self.bc_regularize
        if self.tracker.async_critic and self.reward in CRITIC_REWARDS:  # rewards settle late: policies.sb3.deferred
            from policies.sb3 import deferred

            key = "rollout_buffer_class" if self.algo == "ppo" else "replay_buffer_class"
            given = params.get(key)
            if self.algo == "sac" and given is None and int(params.get("n_steps", 1)) > 1:
                # SB3 sets up n-step returns only for its own default buffer: name the n-step one here
                from stable_baselines3.common.buffers import NStepReplayBuffer

                given = NStepReplayBuffer
                kwargs = params.setdefault("replay_buffer_kwargs", {})
                kwargs.setdefault("n_steps", int(params.pop("n_steps")))
                kwargs.setdefault("gamma", float(params.get("gamma", 0.99)))
            params[key] = deferred.deferred_buffer_class(self.algo, given)
        return params

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _algo_params(algo: str) -> set[str]:
    """Keyword arguments the algorithm class accepts (its own and those of the SB3 class it extends)."""
    import inspect

    from stable_baselines3.common.base_class import BaseAlgorithm

    params: set[str] = set()
    for klass in algo_class(algo).__mro__:
        if klass is BaseAlgorithm or not issubclass(klass, BaseAlgorithm):
            break
        if "__init__" in vars(klass):
            params |= {name for name, p in inspect.signature(klass.__init__).parameters.items()
                       if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return params - {"self", "policy", "env"}


def algo_class(algo: str):
    """The SB3 class of an algorithm name (SAC is :class:`policies.demo_sac.DemoSAC`)."""
    from stable_baselines3 import PPO

    from policies.demo_sac import DemoSAC

    return {"sac": DemoSAC, "ppo": PPO}[algo]
