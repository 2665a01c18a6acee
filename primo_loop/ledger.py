"""Deferred rewards: turn verdicts that arrive late into the exact rewards a synchronous critic gives.

With an asynchronous critic (:mod:`primo_loop.asynchronous`) the verdict of the query made at step ``q`` arrives
some steps later. The reward of transition ``s`` (the step from ``s - 1`` to ``s``) depends on the potential at
``s - 1`` and at ``s``, and a potential at ``s`` is the latest readable progress among the episode's queries
made at or before ``s`` (held between queries, 0 before the first). So the reward of ``s`` is known once every
query of the episode up to step ``s`` has been answered, and not before.

A :class:`RewardLedger` keeps one episode's query steps, the potential after each answered query, and the
transitions still waiting. When a verdict arrives (in order), every waiting transition it completes is settled
with the same formulas the synchronous path uses (:func:`transition_reward`, :func:`shaping_term`) on the
same inputs, so the settled value equals the synchronous one bit for bit. Each settled transition is a
:class:`RewardCorrection`, which a learner applies to the reward it stored (``policies/sb3/deferred.py``).

Pure: numpy-free bookkeeping, no threads, no critic.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from primo_loop.types import CriticVerdict


class RewardCorrection(NamedTuple):
    """The final reward of a transition whose reward was pending when its step was returned.

    Attributes:
        transition_id: the id the step reported in ``info["critic/pending_id"]``.
        reward: the final reward (what a synchronous critic gives this transition).
        provisional: the reward the step returned (what a buffer holds until it applies this correction).
        shaping: the final critic term of the reward (``info["critic/shaping"]`` of a synchronous critic), which
            online critic refresh relabels from; None where not known.
    """

    transition_id: int
    reward: float
    provisional: float
    shaping: float | None = None


def shaping_term(mode: str, phi: float, phi_next: float, gamma: float) -> float:
    """The critic's reward term for one transition.

    ``delta`` is potential-based shaping (Ng et al. 1999): ``gamma * phi_next - phi``; its discounted
    sum over an episode telescopes to ``gamma**T * phi_T - phi_0``, so the optimal policy is unchanged.
    ``progress`` is the potential itself; ``none`` is zero.

    >>> shaping_term("delta", 0.2, 0.5, 1.0)
    0.3
    >>> shaping_term("progress", 0.2, 0.5, 0.99)
    0.5
    """
    if mode == "delta":
        return gamma * phi_next - phi
    if mode == "progress":
        return phi_next
    return 0.0


def next_potential(phi: float, verdict: CriticVerdict | None) -> float:
    """The potential after a verdict: its progress if readable, else ``phi`` held (a failed call is None).

    >>> next_potential(0.2, CriticVerdict(progress=0.5)), next_potential(0.2, CriticVerdict(progress=None))
    (0.5, 0.2)
    >>> next_potential(0.2, None)
    0.2
    """
    if verdict is None or verdict.progress is None or not math.isfinite(verdict.progress):
        return phi
    return float(verdict.progress)


def transition_reward(env_weight: float, env_reward: float, critic_weight: float, shaping: float,
                      penalty: float | None = None) -> float:
    """``env_weight * env_reward + critic_weight * shaping`` (+ ``penalty`` on the step the critic ended).

    The one formula of the shaped reward, for the synchronous and the deferred path alike: the same operations
    in the same order give the same float.

    >>> transition_reward(1.0, 1.0, 2.0, 0.25), transition_reward(1.0, 0.0, 1.0, 0.5, penalty=-1.0)
    (1.5, -0.5)
    """
    reward = env_weight * float(env_reward) + critic_weight * shaping
    if penalty is not None:
        reward += penalty
    return reward


@dataclass
class _Waiting:
    transition_id: int
    step: int
    env_reward: float
    penalty: float | None
    provisional: float


class RewardLedger:
    """One episode's potentials and the transitions whose rewards wait for verdicts.

    Args:
        shaping, gamma, env_weight, critic_weight: as in :class:`~primo_loop.tracker.TrackerConfig`.

    >>> from primo_loop.tracker import TrackerConfig
    >>> ledger = RewardLedger.from_config(TrackerConfig(shaping="progress", critic_every=2))
    >>> ledger.asked(0); ledger.asked(2)
    >>> ledger.answered(CriticVerdict(progress=0.1))  # step 0's verdict
    []
    >>> ledger.potentials(1), ledger.potentials(2)    # step 2's verdict is still out
    ((0.1, 0.1), None)
    >>> ledger.wait(7, step=2, env_reward=0.0, penalty=None, provisional=0.1)
    >>> ledger.answered(CriticVerdict(progress=0.4))
    [RewardCorrection(transition_id=7, reward=0.4, provisional=0.1, shaping=0.4)]
    """

    def __init__(self, shaping: str, gamma: float, env_weight: float, critic_weight: float):
        self.shaping, self.gamma = shaping, gamma
        self.env_weight, self.critic_weight = env_weight, critic_weight
        self._query_steps: list[int] = []
        self._phi_after: list[float] = []  # the potential after each answered query, in the order asked
        self._waiting: deque[_Waiting] = deque()

    @classmethod
    def from_config(cls, config) -> RewardLedger:
        """A ledger with a :class:`~primo_loop.tracker.TrackerConfig`'s reward settings."""
        return cls(config.shaping, config.gamma, config.env_weight, config.critic_weight)

    @property
    def unanswered(self) -> int:
        """Queries asked and not yet answered."""
        return len(self._query_steps) - len(self._phi_after)

    @property
    def waiting(self) -> int:
        """Transitions whose reward is still pending."""
        return len(self._waiting)

    def asked(self, step: int) -> None:
        """A query was made at ``step`` (steps never decrease within an episode)."""
        if self._query_steps and step < self._query_steps[-1]:
            raise ValueError(f"query steps must not decrease: {step} after {self._query_steps[-1]}")
        self._query_steps.append(int(step))

    def phi_at(self, step: int) -> float | None:
        """The potential at ``step`` as a synchronous critic would hold it, or None while not yet known."""
        k = bisect_right(self._query_steps, step)  # queries made at or before ``step``
        if k > len(self._phi_after):
            return None
        return self._phi_after[k - 1] if k else 0.0

    def potentials(self, step: int) -> tuple[float, float] | None:
        """``(phi(step - 1), phi(step))`` of transition ``step``, or None while a verdict it needs is out."""
        now = self.phi_at(step)
        return None if now is None else (self.phi_at(step - 1), now)  # known at ``step`` implies known before

    def reward(self, step: int, env_reward: float, penalty: float | None) -> float | None:
        """The final reward of transition ``step``, or None while a verdict it needs is out."""
        final = self.final(step, env_reward, penalty)
        return None if final is None else final[0]

    def final(self, step: int, env_reward: float, penalty: float | None) -> tuple[float, float] | None:
        """``(reward, shaping)`` of transition ``step`` once final, or None while a verdict it needs is out."""
        phis = self.potentials(step)
        if phis is None:
            return None
        shaping = shaping_term(self.shaping, phis[0], phis[1], self.gamma)
        return transition_reward(self.env_weight, env_reward, self.critic_weight, shaping, penalty), shaping

    def wait(self, transition_id: int, step: int, env_reward: float, penalty: float | None,
             provisional: float) -> None:
        """Keep transition ``step`` until the verdicts it needs arrive (its reward is None now)."""
        self._waiting.append(_Waiting(transition_id, int(step), float(env_reward), penalty, float(provisional)))

    def answered(self, verdict: CriticVerdict | None) -> list[RewardCorrection]:
        """The verdict of the oldest unanswered query (None: the critic call failed); returns the transitions
        it settles, oldest first."""
        if self.unanswered <= 0:
            raise ValueError("a verdict arrived for an episode with no query waiting for one")
        prev = self._phi_after[-1] if self._phi_after else 0.0
        self._phi_after.append(next_potential(prev, verdict))
        return self.settle()

    def settle(self) -> list[RewardCorrection]:
        """Settle the waiting transitions whose verdicts have all arrived, oldest first."""
        out = []
        while self._waiting:
            w = self._waiting[0]
            final = self.final(w.step, w.env_reward, w.penalty)
            if final is None:
                break
            self._waiting.popleft()
            out.append(RewardCorrection(w.transition_id, final[0], w.provisional, final[1]))
        return out
