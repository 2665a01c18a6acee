"""Asynchronous critic queries: ask in the background, keep stepping, apply verdicts when they arrive.

For critics that take seconds (a 7B video-language model, a remote server), a synchronous loop waits far longer
than it simulates. Here due queries join a queue; one batch at a time runs in the background (every query
waiting when the previous batch returned, from all sub-envs, goes in the next ``assess`` call); the wrappers
poll once per step and apply the verdicts that have arrived, in the order the queries were made. At most
``max_pending`` queries wait or run at once: a step that would exceed the bound waits for the running batch
(back-pressure), so memory stays bounded whatever the critic's speed.

:class:`QueryPipeline` is the queue and its bound; :class:`AsyncCritic` adds the routing both wrappers share:
a verdict goes to its sub-env's tracker if its episode is still running, else to that episode's
:class:`~primo_loop.ledger.RewardLedger` only, and the rewards it settles are kept per sub-env until the
wrapper reports them (``info["critic/corrections"]``) or :meth:`AsyncCritic.drain` returns them.

How batches run is a :class:`Runner`: :class:`ThreadRunner` (the default) runs them on one background thread;
tests use a deterministic runner whose batches complete after a set number of polls
(:class:`primo_loop.testing.slow.PolledRunner`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from primo_loop.errors import check_counts
from primo_loop.ledger import RewardCorrection, RewardLedger
from primo_loop.types import CriticQuery, CriticVerdict

log = logging.getLogger(__name__)

BatchCall = Callable[[Sequence[CriticQuery]], list]


class Ticket(Protocol):
    """A batch on its way (``concurrent.futures.Future`` is one)."""

    def done(self) -> bool:
        """Whether the verdicts are there (never blocks)."""

    def result(self) -> list[CriticVerdict | None]:
        """The verdicts, in the queries' order (blocks until they are there; re-raises the critic's error)."""


class Runner(Protocol):
    """Runs a batch call in the background."""

    def submit(self, call: BatchCall, queries: list[CriticQuery]) -> Ticket: ...

    def close(self) -> None: ...


class ThreadRunner:
    """One background thread, one batch at a time (the critic lives in this process, as in synchronous mode)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="primo-critic")

    def submit(self, call: BatchCall, queries: list[CriticQuery]) -> Ticket:
        return self._pool.submit(call, queries)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Asked:
    """A query on its way and where its verdict goes."""

    key: int  # the sub-env (0 for a single env)
    ledger: RewardLedger  # the episode it belongs to
    step: int  # the env step it was made at
    query: CriticQuery


@dataclass
class PipelineStats:
    """Counters of a :class:`QueryPipeline`."""

    batches: int = 0
    queries: int = 0
    largest_batch: int = 0
    waits: int = 0  # times a step waited for the critic (back-pressure or drain)


class QueryPipeline:
    """Queries waiting and the one batch in flight, at most ``max_pending`` of them together.

    Args:
        call: the batch call (a :class:`~primo_loop.wrappers.common.CriticCaller`).
        max_pending: the most queries waiting or in flight.
        runner: how batches run (default: a :class:`ThreadRunner`).
    """

    def __init__(self, call: BatchCall, max_pending: int, runner: Runner | None = None):
        self.call, self.max_pending = call, max_pending
        check_counts(self, ("max_pending",), "asynchronous critic option")
        self.runner = runner if runner is not None else ThreadRunner()
        self.stats = PipelineStats()
        self._waiting: list[Asked] = []
        self._flight: tuple[list[Asked], Ticket] | None = None

    @property
    def pending(self) -> int:
        """Queries waiting or in flight."""
        return len(self._waiting) + (len(self._flight[0]) if self._flight else 0)

    def put(self, asked: Sequence[Asked]) -> list[tuple[Asked, CriticVerdict | None]]:
        """Queue queries; at the bound, wait for the batch in flight first. Returns the verdicts that came."""
        arrived = []
        for item in asked:
            while self.pending >= self.max_pending:
                arrived += self._wait()
            self._waiting.append(item)
        return arrived

    def poll(self) -> list[tuple[Asked, CriticVerdict | None]]:
        """The verdicts of the batch in flight if it has returned; then starts the next batch if any wait."""
        arrived = []
        if self._flight is not None and self._flight[1].done():
            arrived = self._collect()
        if self._flight is None and self._waiting:
            self._launch()
        return arrived

    def drain(self) -> list[tuple[Asked, CriticVerdict | None]]:
        """Wait for every query waiting or in flight; their verdicts, in order."""
        arrived = []
        while self._flight is not None or self._waiting:
            arrived += self._wait()
        return arrived

    def close(self) -> None:
        """Stop: queries waiting are dropped, a batch in flight is not waited for."""
        self._waiting, self._flight = [], None
        self.runner.close()

    def _wait(self) -> list[tuple[Asked, CriticVerdict | None]]:
        if self._flight is None:
            self._launch()
        self.stats.waits += 1
        return self._collect()

    def _launch(self) -> None:
        batch, self._waiting = self._waiting, []
        self.stats.batches += 1
        self.stats.queries += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self._flight = (batch, self.runner.submit(self.call, [a.query for a in batch]))

    def _collect(self) -> list[tuple[Asked, CriticVerdict | None]]:
        batch, ticket = self._flight
        self._flight = None
        return list(zip(batch, ticket.result()))  # the caller checked the count


class AsyncCritic:
    """The asynchronous side of both wrappers: queries go out through a :class:`QueryPipeline`, verdicts come
    back to their sub-env's tracker (:meth:`~primo_loop.tracker.EpisodeTracker.deliver`), and the rewards they
    settle wait per sub-env until :meth:`take` or :meth:`drain`.

    Args:
        call: the batch call (checks what the critic returns).
        trackers: one tracker per sub-env.
        max_pending: the most queries waiting or in flight.
        runner: how batches run (default: one background thread).
    """

    def __init__(self, call: BatchCall, trackers: Sequence[Any], max_pending: int, runner: Runner | None = None):
        self.trackers = list(trackers)
        self.pipeline = QueryPipeline(call, max_pending, runner)
        self._settled: list[list[RewardCorrection]] = [[] for _ in self.trackers]
        self._arrived: list[tuple[Asked, CriticVerdict | None]] = []  # came while asking; applied at the poll

    def ask(self, key: int, query: CriticQuery) -> None:
        """Send the query sub-env ``key``'s tracker just made (at the bound, waits for the batch in flight; its
        verdicts are applied at the next :meth:`poll`, the point of the step where verdicts apply)."""
        tracker = self.trackers[key]
        self._arrived += self.pipeline.put([Asked(key, tracker.ledger, query.step, query)])

    def poll(self) -> None:
        """Apply the verdicts that have arrived and start the next batch."""
        arrived, self._arrived = self._arrived, []
        self._route(arrived + self.pipeline.poll())

    def drain(self) -> list[RewardCorrection]:
        """Wait for every query on its way, apply the verdicts, and return every correction not yet taken
        (all sub-envs, oldest first per sub-env). A termination they decide shows on the next step."""
        arrived, self._arrived = self._arrived, []
        self._route(arrived + self.pipeline.drain())
        return [c for i in range(len(self.trackers)) for c in self.take(i)]

    def take(self, key: int) -> tuple[RewardCorrection, ...]:
        """The corrections of sub-env ``key`` settled since the last take (then forgotten here)."""
        out, self._settled[key] = tuple(self._settled[key]), []
        return out

    def close(self) -> None:
        self.pipeline.close()

    def _route(self, arrived: list[tuple[Asked, CriticVerdict | None]]) -> None:
        for asked, verdict in arrived:
            settled = self.trackers[asked.key].deliver(asked.ledger, verdict, asked.step)
            self._settled[asked.key].extend(settled)
