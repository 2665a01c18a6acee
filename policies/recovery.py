"""Critic-monitored failure recovery: replan when the critic says an attempt failed, within a retry budget.

The critic logic is not re-implemented here: the env is wrapped in :class:`~primo_loop.wrappers.CriticInTheLoop`
with ``terminate=True``, so the tracker's failure and regression rules decide when an attempt failed. When the
wrapper ends the episode with a ``critic/terminated_reason``, the executor does not reset the env: it re-arms
the tracker (:meth:`~primo_loop.tracker.EpisodeTracker.rearm`), calls ``policy.replan()`` (back to approach
and grasp from wherever the robot is) and goes on, up to ``max_retries`` times.

After a replan the critic may keep reporting the old failure until the new attempt shows progress (a dropped
cube stays "dropped" until it is grasped again), so signals within ``cooldown_steps`` of a replan re-arm the
tracker without spending a retry.

The experiment that compares success with and without monitoring under injected failures lives in
``benchmarks/recovery.py`` (``scripts/recovery.py`` is its command line).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from primo_loop.errors import ConfigError

log = logging.getLogger(__name__)

NOMINAL = "nominal"


class ReplanningPolicy(Protocol):
    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Any) -> np.ndarray: ...

    def replan(self) -> None: ...


@dataclass
class RecoveryConfig:
    """Options of the recovery executor.

    Attributes:
        max_retries: replans allowed per episode [3]; the next critic signal ends the episode.
        cooldown_steps: critic signals within this many steps after a replan re-arm the tracker without
            spending a retry (the new attempt needs time to show progress) [50].
        hold_steps: an episode succeeds once the task's success has held this many consecutive steps; this
            excludes a cube lifted past the success height and dropped moments later (60 steps = 3 s at 20 Hz) [60].
    """

    max_retries: int = 3
    cooldown_steps: int = 50
    hold_steps: int = 60

    def __post_init__(self) -> None:
        for name in ("max_retries", "cooldown_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Expected `{name}` >= 0, actually: {getattr(self, name)!r}")
        if self.hold_steps < 1:
            raise ConfigError(f"Expected `hold_steps` >= 1, actually: {self.hold_steps!r}")


@dataclass
class EpisodeOutcome:
    """What happened in one episode.

    Attributes:
        success: the task's success held for ``hold_steps`` consecutive steps.
        steps: env steps taken.
        replans: replans triggered by the critic (retries spent).
        signals: all critic termination signals, including those re-armed during a cooldown.
        signal_steps: the step of each signal.
        reasons: the reason of each signal ("failure" / "regression").
        first_signal_step: step of the first signal (None: the critic never fired).
        failure_injected_at: step at which the scripted failure happened (None: nominal, or not reached).
        ended_by: "success", "time_limit", "env_terminated" or "critic" (retries exhausted).
    """

    success: bool
    steps: int
    replans: int = 0
    signals: int = 0
    signal_steps: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    failure_injected_at: int | None = None
    ended_by: str = "time_limit"

    @property
    def first_signal_step(self) -> int | None:
        return self.signal_steps[0] if self.signal_steps else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "first_signal_step": self.first_signal_step}


class RecoveryExecutor:
    """Runs a replanning policy, monitored by a critic or not.

    Args:
        env: a :class:`~primo_loop.wrappers.CriticInTheLoop` (monitored; its tracker must have
            ``terminate=True``) or any Gymnasium env (unmonitored: the policy runs open-loop to the end).
        policy: a policy with ``reset(seed)``, ``act(obs)`` and ``replan()``.
        config: a :class:`RecoveryConfig`.
    """

    def __init__(self, env: Any, policy: ReplanningPolicy, config: RecoveryConfig | None = None):
        from primo_loop.wrappers import CriticInTheLoop

        self.env = env
        self.policy = policy
        self.config = config or RecoveryConfig()
        self.tracker = env.tracker if isinstance(env, CriticInTheLoop) else None
        if self.tracker is not None and not self.tracker.config.terminate:
            raise ConfigError("Expected a CriticInTheLoop with terminate=True: the executor replans on the "
                              "critic's termination signals, and with terminate=False there are none.")

    @property
    def monitored(self) -> bool:
        return self.tracker is not None

    def run(self, seed: int | None = None) -> EpisodeOutcome:
        """One episode from ``env.reset(seed=seed)``."""
        cfg = self.config
        obs, _ = self.env.reset(seed=seed)
        self.policy.reset(seed=seed)
        out = EpisodeOutcome(success=False, steps=0)
        held, last_replan = 0, None
        while True:
            obs, _reward, terminated, truncated, info = self.env.step(self.policy.act(obs))
            out.steps += 1
            held = held + 1 if info.get("is_success") else 0
            if held >= cfg.hold_steps:
                out.success, out.ended_by = True, "success"
                break
            reason = info.get("critic/terminated_reason") if self.monitored else None
            if terminated and reason and not truncated:
                out.signals += 1
                out.signal_steps.append(out.steps)
                out.reasons.append(str(reason))
                cooling = last_replan is not None and out.steps - last_replan <= cfg.cooldown_steps
                if not cooling and out.replans >= cfg.max_retries:
                    out.ended_by = "critic"
                    break
                self.tracker.rearm()
                if not cooling:
                    self.policy.replan()
                    out.replans += 1
                    last_replan = out.steps
                    log.debug("step %d: critic signalled %s; replan %d", out.steps, reason, out.replans)
                continue
            if terminated or truncated:
                out.ended_by = "time_limit" if truncated else "env_terminated"
                break
        out.failure_injected_at = getattr(self.policy, "failure_injected_at", None)
        return out
