"""Per-episode critic state machine: frames, clip sampling, rewards, termination.

Both wrappers (:mod:`primo_loop.wrappers`) are thin shells over :class:`EpisodeTracker`, so the
per-episode logic lives here once. The tracker never talks to a critic itself: it says when a query
is due and builds it, the caller batches queries (one env or many) into ``critic.assess`` and hands
each verdict back. That split is what lets the vector wrapper score all sub-envs in one call.

Life of an episode::

    query = tracker.reset(instruction, frame, privileged)       # step 0: the baseline query
    tracker.apply(critic.assess([query])[0])
    while running:
        obs, r, term, trunc, info = env.step(action)
        tracker.advance(privileged, ended=term or trunc)
        if tracker.needs_frame:                                  # only then pay ~60 ms for a render
            tracker.add_frame(env.render_frame())
        if (q := tracker.make_query()) is not None:
            tracker.apply(critic.assess([q])[0])
        result = tracker.finish_step(r)                          # shaped reward, termination, info

Asynchronous critics (:mod:`primo_loop.asynchronous`) answer later: ``apply(verdict, step=q)`` takes the verdict
of the query made at step ``q`` on a later step, and :meth:`EpisodeTracker.deliver` routes one that arrives
after its episode ended to that episode's :class:`~primo_loop.ledger.RewardLedger`. A step whose reward still
waits for a verdict returns a provisional reward and a ``pending_id``; the ledger settles it later, exactly.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from primo_loop.clips import replay_schedule, sample_clip_indices
from primo_loop.errors import ConfigError
from primo_loop.ledger import RewardCorrection, RewardLedger, shaping_term, transition_reward
from primo_loop.tracker_config import SHAPING_MODES, TrackerConfig  # noqa: F401 - re-exported
from primo_loop.types import CriticQuery, CriticVerdict, Frame

__all__ = ["SHAPING_MODES", "EpisodeTracker", "StepResult", "TrackerConfig", "TrackerStats", "failure_streak",
           "regression_streak",
           "replay_schedule", "sample_clip_indices", "shaping_term"]

#: Ids of transitions whose reward is pending, unique in the process (so several single-env wrappers in one
#: DummyVecEnv never give two transitions the same id).
_TRANSITION_IDS = itertools.count()

# Termination reasons (info["critic/terminated_reason"]).
REASON_FAILURE = "failure"
REASON_REGRESSION = "regression"


def failure_streak(streak: int, failure_prob: float | None, threshold: float) -> int:
    """Consecutive queries whose failure probability reached ``threshold`` (None: no opinion, reset).

    >>> failure_streak(1, 0.9, 0.5), failure_streak(1, 0.1, 0.5), failure_streak(2, None, 0.5)
    (2, 0, 0)
    """
    return streak + 1 if failure_prob is not None and failure_prob >= threshold else 0


def regression_streak(streak: int, progress: float, running_max: float, delta: float) -> int:
    """Consecutive queries whose progress sits at least ``delta`` below the running maximum.

    >>> regression_streak(0, 0.3, 0.8, 0.25), regression_streak(1, 0.7, 0.8, 0.25)
    (1, 0)
    """
    return streak + 1 if running_max - progress >= delta - 1e-12 else 0


@dataclass(frozen=True)
class StepResult:
    """What the tracker decided for one env step."""

    reward: float
    shaping: float
    terminated: bool
    reason: str | None
    info: dict[str, Any]
    pending_id: int | None = None


@dataclass
class TrackerStats:
    """Counters over the tracker's lifetime (all episodes)."""

    queries: int = 0
    unreadable: int = 0
    errors: int = 0
    frames_rendered: int = 0
    latency_s: float = 0.0
    terminations: int = 0
    late: int = 0  # verdicts that arrived after their episode had ended (they still settle its rewards)
    delay_steps: int = 0  # env steps between queries and their verdicts, summed


class EpisodeTracker:
    """The critic's view of one env's episodes.

    Args:
        config: a :class:`TrackerConfig` (or None for defaults).
    """

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.stats = TrackerStats()
        self.instruction = ""
        self.views: tuple[str, ...] = ()  # camera names tiled in each frame (set by the wrapper; CriticQuery.views)
        self.step = 0
        self.frames: list[Frame] = []
        self.frame_steps: list[int] = []
        self.frame_privileged: list[Mapping[str, Any] | None] = []  # the env's privileged state at each frame
        self.phi = 0.0
        self._phi_prev = 0.0
        self.running_max = 0.0
        self.progress: float | None = None
        self.failure_prob: float | None = None
        self.latency_s = 0.0
        self.queried = False
        self.verdict: str | None = None  # "read", "unreadable" or "failed": the last verdict of this step
        self.query_oracle: float | None = None  # privileged progress at that verdict's query step, if reported
        self.done = False
        self.reason: str | None = None
        self._privileged: Mapping[str, Any] | None = None
        self._ended = False
        self._fail_streak = 0
        self._regress_streak = 0
        self.ledger = RewardLedger.from_config(self.config)
        self.delays: list[int] = []  # delays (env steps) of the verdicts applied on this step
        self._asked = -1  # the step of the last query made
        self._reported = False  # the termination was returned by finish_step
        self._finished = -1  # the step finish_step last ran on
        self._carry: list[tuple] = []  # (delay, latency, verdict, query_oracle) applied after it: next step's

    # -- episode boundaries -------------------------------------------------------------------------
    def reset(self, instruction: str, frame: Frame, privileged: Mapping[str, Any] | None = None) -> CriticQuery:
        """Start an episode from its first frame; returns the step-0 baseline query (always due)."""
        self.instruction = instruction
        self.step = 0
        self.frames, self.frame_steps, self.frame_privileged = [], [], []
        self.phi = self._phi_prev = 0.0
        self.running_max = 0.0
        self.progress = self.failure_prob = None
        self.latency_s = 0.0
        self.verdict = self.query_oracle = None
        self.done, self.reason = False, None
        self._ended = False
        self._fail_streak = self._regress_streak = 0
        self._privileged = privileged
        self.ledger = RewardLedger.from_config(self.config)  # the old one lives on where verdicts are still out
        self.delays, self._asked, self._reported, self._finished, self._carry = [], -1, False, -1, []
        self.add_frame(frame)
        query = self.make_query()
        assert query is not None  # step 0 is always due
        return query

    def rearm(self) -> None:
        """Clear an early termination so the same episode can go on (e.g. after the policy replans).

        Frames, phi and the step count are kept. The failure and regression streaks restart, and the running
        maximum of progress restarts from the current progress, so regression is judged against the new
        attempt rather than the one that failed.
        """
        self.done, self.reason, self._reported = False, None, False
        self._fail_streak = self._regress_streak = 0
        self.running_max = self.phi

    def advance(self, privileged: Mapping[str, Any] | None = None, ended: bool = False) -> None:
        """Record that the env took one step. ``ended``: the env itself ended the episode on this step."""
        if self.done and self._reported:
            raise RuntimeError("advance() after the tracker ended the episode; call reset() first")
        self.step += 1
        self._privileged = privileged
        self._ended = ended
        self._phi_prev = self.phi
        # verdicts applied between steps (an asynchronous drain) are this step's news
        self.delays = [c[0] for c in self._carry]
        self.queried = bool(self._carry)
        self.latency_s, self.verdict, self.query_oracle = self._carry[-1][1:] if self._carry else (0.0, None, None)
        self._carry = []

    # -- frames and queries -------------------------------------------------------------------------
    @property
    def query_due(self) -> bool:
        """A query is due on multiples of ``critic_every``, but not on a step where the env ended the
        episode: its frame may already be gone (vector envs reset at once), and the episode is over."""
        return self.step % self.config.critic_every == 0 and not self._ended

    @property
    def needs_frame(self) -> bool:
        """Whether the caller must render a frame for this step (before :meth:`make_query`)."""
        if self._ended:
            return False
        have = bool(self.frame_steps) and self.frame_steps[-1] == self.step
        return not have and (self.query_due or self.step % self.config.frame_every == 0)

    def add_frame(self, frame: Frame) -> None:
        """Keep the frame rendered for the current step."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
            raise ConfigError(f"Expected a uint8 frame [H, W, 3], actually: {getattr(frame, 'dtype', type(frame))} "
                              f"{getattr(frame, 'shape', None)}")
        self.frames.append(frame)
        self.frame_steps.append(self.step)
        self.frame_privileged.append(self._privileged)
        self.stats.frames_rendered += 1

    def make_query(self) -> CriticQuery | None:
        """The query for this step if one is due (the frame must have been added), else None.

        The query is entered in the episode's ledger: its verdict must come back, through :meth:`apply` (or
        :meth:`deliver`), or the rewards from this step on stay pending."""
        if not self.query_due:
            return None
        if not self.frame_steps or self.frame_steps[-1] != self.step:
            raise RuntimeError(f"no frame for step {self.step}: render one when `needs_frame` is True")
        idx = sample_clip_indices(len(self.frames), self.config.clip_len, self.config.window)
        clip = np.stack([self.frames[i] for i in idx])
        if self._asked != self.step:
            self.ledger.asked(self.step)
            self._asked = self.step
        return CriticQuery(instruction=self.instruction, initial=self.frames[0], clip=clip,
                           current=self.frames[-1], step=self.step, privileged=self._privileged, views=self.views)

    def _oracle_at(self, step: int) -> float | None:
        """The privileged progress the env reported at ``step`` (a query step: it has a frame), or None."""
        for i in range(len(self.frame_steps) - 1, -1, -1):
            if self.frame_steps[i] == step:
                p = self.frame_privileged[i]
                return float(p["progress"]) if p is not None and p.get("progress") is not None else None
        return None

    def deliver(self, ledger: RewardLedger, verdict: CriticVerdict | None, step: int) -> list[RewardCorrection]:
        """A verdict for the query made at ``step`` of the episode ``ledger`` belongs to: applied if that is the
        current episode, else (the episode ended before it arrived) counted and used to settle its rewards only."""
        if ledger is self.ledger:
            return self.apply(verdict, step)
        self.stats.late += 1
        self._count(verdict)
        return ledger.answered(verdict)

    def _count(self, verdict: CriticVerdict | None) -> bool:
        """Count a verdict in the stats; True when it is readable."""
        self.stats.queries += 1
        if verdict is None:
            self.stats.errors += 1
            return False
        self.stats.latency_s += verdict.latency_s
        if verdict.progress is None or not math.isfinite(verdict.progress):
            self.stats.unreadable += 1  # an unreadable answer changes nothing: phi is held
            return False
        return True

    def apply(self, verdict: CriticVerdict | None, step: int | None = None) -> list[RewardCorrection]:
        """Take the critic's verdict for the query made at ``step`` (default: this step); None means the critic
        call itself failed. Verdicts must come in the order the queries were made. Returns the pending
        rewards it settles (none in synchronous use)."""
        step = self.step if step is None else step
        self.stats.delay_steps += self.step - step
        corrections = self.ledger.answered(verdict)
        latency = verdict.latency_s if verdict is not None else 0.0
        readable = self._count(verdict)
        status = "read" if readable else "failed" if verdict is None else "unreadable"
        oracle = self._oracle_at(step)
        if self._finished == self.step:  # after this step's info: the next step reports it
            self._carry.append((self.step - step, latency, status, oracle))
        else:
            self.queried, self.verdict, self.query_oracle = True, status, oracle
            self.delays.append(self.step - step)
            self.latency_s = latency if verdict is not None else self.latency_s
        if not readable:
            return corrections
        cfg = self.config
        # On the 0-1 scale: the wrappers' critic caller refuses other verdicts (never a silent clamp).
        self.progress = float(verdict.progress)
        self.failure_prob = verdict.failure_prob
        self.phi = self.progress
        if step == 0:  # the baseline: no rule applies yet
            self.running_max = self.progress
            return corrections
        self.running_max = max(self.running_max, self.progress)
        self._fail_streak = failure_streak(self._fail_streak, self.failure_prob, cfg.failure_threshold)
        peaked = self.running_max >= cfg.min_peak
        self._regress_streak = (regression_streak(self._regress_streak, self.progress, self.running_max,
                                                  cfg.regression_delta) if peaked else 0)
        if not cfg.terminate or self.done or self._ended:  # a late verdict on the env's last step ends nothing
            return corrections
        if self._fail_streak >= cfg.failure_patience:
            self.done, self.reason = True, REASON_FAILURE
        elif self._regress_streak >= cfg.regression_patience:
            self.done, self.reason = True, REASON_REGRESSION
        return corrections

    # -- rewards ------------------------------------------------------------------------------------
    def finish_step(self, env_reward: float) -> StepResult:
        """Shaped reward, the critic's termination decision and the info entries for this step.

        The reward is final when every verdict it depends on has arrived (always, in synchronous use); else it
        is provisional (from the potentials known now) and ``pending_id`` names it until the ledger settles it.
        """
        cfg = self.config
        # A termination is decided only when a verdict is applied, never on a step where the env ended the
        # episode, so ``done`` here is always the critic's own early termination.
        penalty = cfg.termination_penalty if self.done else None
        if self.done:
            self.stats.terminations += 1
            self._reported = True
        self._finished = self.step
        phis = self.ledger.potentials(self.step)
        pending_id = None
        if phis is None:  # a verdict this reward needs is still out
            shaping = shaping_term(cfg.shaping, self._phi_prev, self.phi, cfg.gamma)
            reward = transition_reward(cfg.env_weight, env_reward, cfg.critic_weight, shaping, penalty)
            pending_id = next(_TRANSITION_IDS)
            self.ledger.wait(pending_id, self.step, env_reward, penalty, reward)
        else:
            shaping = shaping_term(cfg.shaping, phis[0], phis[1], cfg.gamma)
            reward = transition_reward(cfg.env_weight, env_reward, cfg.critic_weight, shaping, penalty)
        info = self.info()
        info["critic/pending_id"] = pending_id
        return StepResult(reward=reward, shaping=shaping, terminated=self.done, reason=self.reason, info=info,
                          pending_id=pending_id)

    def info(self) -> dict[str, Any]:
        """The ``critic/*`` info entries for the current step."""
        return {
            "critic/progress": self.progress,
            "critic/failure_prob": self.failure_prob,
            "critic/queried": self.queried,
            "critic/verdict": self.verdict,  # None, or how this step's verdict went: read, unreadable, failed
            # the oracle's progress at that verdict's query step (asynchronous: an earlier step), None if unknown
            "critic/oracle_at_query": self.query_oracle,
            "critic/latency_s": self.latency_s,
            "critic/terminated_reason": self.reason,
            "critic/phi": self.phi,
            "critic/step": self.step,
            "critic/delay_steps": tuple(self.delays),
        }
