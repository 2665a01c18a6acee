"""The critic protocol: one method, batched, same order, never raising for one bad answer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from primo_loop.types import CriticQuery, CriticVerdict


@runtime_checkable
class Critic(Protocol):
    """A progress critic.

    ``assess`` returns one verdict per query in the same order. An answer that cannot be read is a
    verdict with ``progress=None``; misconfiguration (missing checkpoint, unreachable server after
    retries) raises a :class:`primo_loop.errors.PrimoError` subclass.
    """

    name: str

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]: ...


def clamp01(x: float) -> float:
    """Clamp to [0, 1].

    >>> clamp01(1.7), clamp01(-0.2), clamp01(0.4)
    (1.0, 0.0, 0.4)
    """
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)
