"""A slow critic whose timing a test controls: batches that complete after a set number of polls.

The wrappers poll their :class:`~primo_loop.asynchronous.AsyncCritic` once per env step, so a batch that needs
``k >= 1`` polls arrives ``k`` steps after the one it was launched on (or sooner, when back-pressure or a drain waits
for it). No threads and no sleeps: a run is the same every time.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import cycle

from primo_loop.types import CriticQuery, CriticVerdict


class PolledTicket:
    """A batch that is done at the ``polls``-th call of :meth:`done` (0 or 1: the first); its verdicts are computed
    when asked for."""

    def __init__(self, call, queries: list[CriticQuery], polls: int):
        self.call, self.queries, self.left = call, queries, polls
        self._verdicts: list[CriticVerdict | None] | None = None

    def done(self) -> bool:
        self.left -= 1
        return self.left <= 0

    def result(self) -> list[CriticVerdict | None]:
        if self._verdicts is None:
            self._verdicts = self.call(self.queries)
        return self._verdicts


class PolledRunner:
    """Batch ``k`` completes after ``delays[k]`` polls (the delays repeat when there are fewer than batches).

    Args:
        delays: polls per batch, e.g. ``[3, 0, 7, 1]`` for verdicts that arrive late and out of step.
    """

    def __init__(self, delays: Iterable[int] = (1,)):
        self.delays = list(delays)
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError(f"Expected a non-empty list of delays >= 0, actually: {self.delays!r}")
        self._next = cycle(self.delays)
        self.batches: list[int] = []  # the size of each batch submitted
        self.closed = False

    def submit(self, call, queries: Sequence[CriticQuery]) -> PolledTicket:
        self.batches.append(len(queries))
        return PolledTicket(call, list(queries), next(self._next))

    def close(self) -> None:
        self.closed = True
