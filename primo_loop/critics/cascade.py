"""Teacher and student: a fast critic answers every query, a slow one answers a share of them in the background.

The student (the compact critic by default) answers every query synchronously, so the loop runs at the student's
speed. A chosen share of the queries also goes to the teacher (any backend: ``primo``, ``remote``, or the oracle for
experiments), which answers in the background (:class:`~primo_loop.asynchronous.QueryPipeline`, one batch at a
time). A query goes to the teacher when one of the share rules picks it (:func:`teacher_reason`):

- ``every``: every k-th query the cascade sees (the first one included; 0 turns the rule off);
- ``failure``: the student is unsure whether the attempt failed: its failure probability lies within
  ``failure_margin`` of ``failure_threshold`` (the tracker's threshold, where the student's answer decides a
  termination);
- ``jump``: the student's progress moved by more than ``progress_jump`` since its previous answer in the same
  episode (the episode is recognised by its initial frame: the same array on every query the tracker makes);
- ``unreadable``: the student's answer could not be read.

Each teacher verdict that arrives is kept as a :class:`Label`: the query (its privileged state removed, so a label
carries nothing a student may not see), the teacher's verdict and the student's verdict on the same query. The labels
refresh the student (:mod:`primo_loop.training.teacher_refresh`) and give the gap between the two
(:attr:`CascadeCritic.gaps`, teacher minus student progress on matched queries).

With ``override=True`` a query the teacher was asked about gets the teacher's verdict instead of the student's:
the batch waits for the teacher. Use it with the wrappers' asynchronous mode (``async_critic=True``), where the
wait is the verdict's delay and the rewards that depend on it are settled exactly when it arrives
(:mod:`primo_loop.ledger`); in synchronous mode every batch with a taught query blocks the loop for the teacher.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from primo_loop.asynchronous import QueryPipeline, Runner
from primo_loop.critics.base import Critic, capabilities, critic_name, critic_views
from primo_loop.errors import ConfigError, check_counts
from primo_loop.types import CriticQuery, CriticVerdict

log = logging.getLogger(__name__)

#: Why a query went to the teacher (:func:`teacher_reason`).
REASONS = ("every", "failure", "jump", "unreadable")


def teacher_reason(index: int, student: CriticVerdict, previous: float | None, *, every: int,
                   failure_threshold: float, failure_margin: float | None,
                   progress_jump: float | None) -> str | None:
    """Why the ``index``-th query (0-based) should go to the teacher, or None.

    Args:
        index: the query's place among all the queries the cascade has seen.
        student: the student's verdict on it.
        previous: the student's previous readable progress in the same episode (None: none yet).
        every: every k-th query goes (0: off).
        failure_threshold, failure_margin: the student is unsure when ``|failure_prob - threshold| <= margin``
            (None: off).
        progress_jump: the student's progress moved by more than this since ``previous`` (None: off).

    >>> v = CriticVerdict(progress=0.5, failure_prob=0.1)
    >>> rules = dict(every=10, failure_threshold=0.5, failure_margin=0.1, progress_jump=0.2)
    >>> teacher_reason(0, v, None, **rules), teacher_reason(3, v, 0.45, **rules), teacher_reason(3, v, 0.2, **rules)
    ('every', None, 'jump')
    >>> teacher_reason(3, CriticVerdict(progress=0.5, failure_prob=0.45), 0.5, **rules)
    'failure'
    """
    if every and index % every == 0:
        return "every"
    if student.progress is None or not math.isfinite(student.progress):
        return "unreadable"
    fp = student.failure_prob
    if failure_margin is not None and fp is not None and abs(fp - failure_threshold) <= failure_margin:
        return "failure"
    if progress_jump is not None and previous is not None and abs(student.progress - previous) > progress_jump:
        return "jump"
    return None


@dataclass(frozen=True)
class Label:
    """A teacher's verdict on a query the student also answered.

    Attributes:
        query: the query, with ``privileged=None`` (a label holds only what the student may see).
        teacher: the teacher's verdict (``progress`` None when unreadable or when the teacher's call failed).
        student: the student's verdict on the same query.
        reason: the share rule that sent it (:data:`REASONS`).
        delay_s: seconds from asking the teacher to the verdict reaching the cascade.
        delay_calls: cascade calls (``assess``/``poll``) from asking to arrival.
    """

    query: CriticQuery
    teacher: CriticVerdict
    student: CriticVerdict
    reason: str
    delay_s: float
    delay_calls: int

    @property
    def gap(self) -> float | None:
        """Teacher minus student progress, or None when either is unreadable."""
        t, s = self.teacher.progress, self.student.progress
        if t is None or s is None or not (math.isfinite(t) and math.isfinite(s)):
            return None
        return float(t) - float(s)


@dataclass
class CascadeStats:
    """Counters of a :class:`CascadeCritic` over its lifetime."""

    queries: int = 0  # answered by the student
    asked: int = 0  # sent to the teacher
    dropped: int = 0  # picked by a rule but not sent: max_pending teacher queries were already out
    answered: int = 0  # teacher verdicts that arrived
    unreadable: int = 0  # of which unreadable (or the teacher's call failed)
    overridden: int = 0  # verdicts returned from the teacher instead of the student
    reasons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def share(self) -> float:
        """Share of the queries sent to the teacher."""
        return self.asked / self.queries if self.queries else 0.0


@dataclass(frozen=True)
class _Asked:
    """A query on its way to the teacher (the pipeline reads ``query``)."""

    query: CriticQuery
    student: CriticVerdict
    reason: str
    t0: float
    call: int


class CascadeCritic:
    """A fast student that answers every query and a slow teacher that answers a share of them (module docstring).

    Args:
        student: the student critic: a registered name, ``"package.module:Factory"`` or an instance [compact].
        teacher: the teacher critic, given the same ways [oracle].
        every: every k-th query goes to the teacher (0: only the "unsure" rules).
        failure_threshold: the tracker's failure threshold (``TrackerConfig.failure_threshold``).
        failure_margin: the student is unsure when its failure probability is this close to the threshold
            (None: rule off).
        progress_jump: the student is unsure when its progress moved more than this since its previous answer
            in the episode (None: rule off).
        override: return the teacher's verdict for the queries it was asked about (the batch waits for it).
        max_pending: the most teacher queries out at once; a query picked beyond it is dropped (counted).
        max_labels: labels kept until :meth:`take_labels` (the oldest go first; counted in ``labels_lost``).
        teacher_delay_s: seconds added to each teacher batch (experiments with a slow teacher).
        student_options, teacher_options: options of the critics given by name.
        runner: how teacher batches run (default: one background thread; tests pass a
            :class:`~primo_loop.testing.slow.PolledRunner`).
        window: teacher verdicts the gap and delay statistics cover.

    Raises:
        ConfigError: an option out of range.
    """

    name = "cascade"
    needs_frames = True  # the student looks at frames
    refreshable = False  # the student is refreshed through primo_loop.training.teacher_refresh, not in place

    def __init__(self, student: str | Critic = "compact", teacher: str | Critic = "oracle", every: int = 10,
                 failure_threshold: float = 0.5, failure_margin: float | None = 0.1,
                 progress_jump: float | None = 0.2, override: bool = False, max_pending: int = 64,
                 max_labels: int = 1000, teacher_delay_s: float = 0.0,
                 student_options: Mapping[str, Any] | None = None, teacher_options: Mapping[str, Any] | None = None,
                 runner: Runner | None = None, window: int = 1000):
        from primo_loop.critics import resolve_critic
        from primo_loop.wrappers.common import CriticCaller

        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ConfigError(f"Expected cascade option `every` to be an integer >= 0 (0: off), actually: {every!r}")
        self.max_pending, self.max_labels, self.window = max_pending, max_labels, window
        check_counts(self, ("max_pending", "max_labels", "window"), "cascade option")
        for key, value in (("failure_threshold", failure_threshold), ("failure_margin", failure_margin),
                           ("progress_jump", progress_jump)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"Expected cascade option `{key}` in [0, 1], actually: {value!r}")
        if not (math.isfinite(teacher_delay_s) and teacher_delay_s >= 0):
            raise ConfigError(f"Expected cascade option `teacher_delay_s` >= 0, actually: {teacher_delay_s!r}")
        self.student = resolve_critic(student, **dict(student_options or {}))
        self.teacher = resolve_critic(teacher, **dict(teacher_options or {}))
        self.every, self.failure_threshold = every, float(failure_threshold)
        self.failure_margin, self.progress_jump = failure_margin, progress_jump
        self.override, self.teacher_delay_s = bool(override), float(teacher_delay_s)
        # frames are what the student reads; privileged state only where the teacher reads it
        self.needs_privileged = capabilities(self.teacher).needs_privileged
        self.views = critic_views(self.student)  # both are handed the student's frames
        self._student_call = CriticCaller(self.student, "raise")
        self._teacher_call = CriticCaller(self.teacher, "hold")  # a failed teacher batch is unreadable labels
        self.pipeline = QueryPipeline(self._ask_teacher, max_pending, runner)
        self.stats = CascadeStats()
        self.labels_lost = 0
        self.gaps: deque[float] = deque(maxlen=window)  # teacher minus student progress, matched queries
        self.delays_s: deque[float] = deque(maxlen=window)
        self._labels: deque[Label] = deque()
        self._last: OrderedDict[int, tuple[Any, float]] = OrderedDict()  # id(initial) -> (initial, progress)
        self._calls = 0
        self._lock = threading.RLock()  # assess may run on the wrappers' background thread

    # -- the critic protocol ------------------------------------------------------------------------
    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        """The student's verdicts on every query (with ``override``, the teacher's on those sent to it)."""
        with self._lock:
            self._calls += 1
            verdicts = list(self._student_call(queries))
            sent: list[tuple[int, _Asked]] = []
            for i, (q, v) in enumerate(zip(queries, verdicts)):
                reason = teacher_reason(self.stats.queries, v, self._previous(q), every=self.every,
                                        failure_threshold=self.failure_threshold,
                                        failure_margin=self.failure_margin, progress_jump=self.progress_jump)
                self.stats.queries += 1
                self._remember(q, v)
                if reason is None:
                    continue
                if self.pipeline.pending >= self.max_pending:
                    self.stats.dropped += 1
                    if self.stats.dropped == 1:
                        log.info("the teacher has %d queries out (max_pending): queries it would answer are dropped "
                                 "and counted (teacher_dropped) until it catches up", self.max_pending)
                    continue
                asked = _Asked(q, v, reason, time.perf_counter(), self._calls)
                self._collect(self.pipeline.put([asked]))
                self.stats.asked += 1
                self.stats.reasons[reason] += 1
                sent.append((i, asked))
            if self.override and sent:
                arrived = self.pipeline.drain()
                taught = {id(a): t for a, t in arrived}
                self._collect(arrived)
                for i, asked in sent:
                    t = taught.get(id(asked))
                    if t is not None and t.progress is not None and math.isfinite(t.progress):
                        verdicts[i] = t
                        self.stats.overridden += 1
            else:  # one poll per call: take what arrived, start the next batch (this call's) if the teacher is idle
                self._collect(self.pipeline.poll())
            return verdicts

    # -- the teacher's side -------------------------------------------------------------------------
    def poll(self) -> None:
        """Take the teacher verdicts that have arrived and start the next teacher batch (``assess`` does this
        too; call it between queries to keep labels flowing)."""
        with self._lock:
            self._calls += 1
            self._collect(self.pipeline.poll())

    def drain(self) -> None:
        """Wait for every teacher query on its way."""
        with self._lock:
            self._collect(self.pipeline.drain())

    def take_labels(self) -> list[Label]:
        """The labels that arrived since the last call, oldest first (then forgotten here)."""
        with self._lock:
            out, self._labels = list(self._labels), deque()
            return out

    def peek_labels(self) -> list[Label]:
        """The labels not yet taken, oldest first, left in place (what a checkpoint saves)."""
        with self._lock:
            return list(self._labels)

    def restore_labels(self, labels: Sequence[Label]) -> None:
        """Put saved labels back ahead of any arrived since (a resumed run's; see :meth:`peek_labels`)."""
        with self._lock:
            self._labels.extendleft(reversed(list(labels)))

    @property
    def pending_labels(self) -> int:
        """Labels arrived and not yet taken."""
        return len(self._labels)

    def close(self) -> None:
        self.pipeline.close()

    def _ask_teacher(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict | None]:
        if self.teacher_delay_s:
            time.sleep(self.teacher_delay_s)
        return self._teacher_call(queries)

    def _collect(self, arrived: list) -> None:
        now = time.perf_counter()
        for asked, verdict in arrived:
            if verdict is None:  # the teacher's call failed (held): no label to learn from
                verdict = CriticVerdict(progress=None, raw="teacher call failed")
            self.stats.answered += 1
            label = Label(query=dataclasses.replace(asked.query, privileged=None), teacher=verdict,
                          student=asked.student, reason=asked.reason, delay_s=now - asked.t0,
                          delay_calls=self._calls - asked.call)
            self.delays_s.append(label.delay_s)
            if label.gap is None:
                self.stats.unreadable += 1
                continue  # an unreadable teacher verdict teaches nothing
            self.gaps.append(label.gap)
            self._labels.append(label)
            if len(self._labels) > self.max_labels:
                self._labels.popleft()
                self.labels_lost += 1

    # -- episodes -----------------------------------------------------------------------------------
    def _previous(self, query: CriticQuery) -> float | None:
        if query.step == 0:
            return None
        found = self._last.get(id(query.initial))
        return found[1] if found is not None and found[0] is query.initial else None

    def _remember(self, query: CriticQuery, verdict: CriticVerdict) -> None:
        if verdict.progress is None or not math.isfinite(verdict.progress):
            return
        key = id(query.initial)
        self._last[key] = (query.initial, float(verdict.progress))  # the array is held, so its id stays unique
        self._last.move_to_end(key)
        while len(self._last) > 4 * self.max_pending + 64:  # episodes long gone
            self._last.popitem(last=False)

    def summary(self) -> dict[str, float | int | None]:
        """What the SB3 logger records (``critic/teacher_*``): share, counts, mean gap and delay over the window."""
        with self._lock:
            gaps, delays = list(self.gaps), list(self.delays_s)
        s = self.stats
        return {"teacher_share": s.share, "teacher_asked": s.asked, "teacher_answered": s.answered,
                "teacher_unreadable": s.unreadable, "teacher_dropped": s.dropped, "teacher_overridden": s.overridden,
                "teacher_student_gap": sum(gaps) / len(gaps) if gaps else None,
                "teacher_student_gap_abs": sum(abs(g) for g in gaps) / len(gaps) if gaps else None,
                "teacher_delay_s": sum(delays) / len(delays) if delays else None}

    def __repr__(self) -> str:
        return (f"CascadeCritic(student={critic_name(self.student)!r}, teacher={critic_name(self.teacher)!r}, "
                f"every={self.every})")
