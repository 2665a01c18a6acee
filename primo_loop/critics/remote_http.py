"""The transport pieces of the ``remote`` critic: a keep-alive connection pool, a circuit breaker, the time bound
of one request, and a verdict cache keyed by a query's content.

Stdlib only (``http.client``): the pool is a few dozen lines, needs no new dependency, and lets the client count
every attempt, retry and failure itself (what the circuit breaker and the logs need). See docs/vlm.md.
"""
from __future__ import annotations

import hashlib
import http.client
import math
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from primo_loop.errors import ConfigError
from primo_loop.types import CriticQuery, CriticVerdict

JITTER = 1.25
"""The largest factor by which a backoff wait is stretched (waits are jittered by +-25 %)."""


@dataclass(frozen=True)
class FailedVerdict(CriticVerdict):
    """A verdict for a query whose request failed (after its retries, or refused by an open circuit breaker):
    ``progress`` is None, ``raw`` says why. Callers tell it from an unreadable answer by its ``failed`` flag:
    the critic caller of the wrappers turns it into a failed query (or raises, with ``on_error="raise"``)."""

    failed: bool = True


def request_budget_s(timeout_s: float, max_retries: int, backoff_s: float, max_backoff_s: float) -> float:
    """The most wall time one request can take: every attempt times out and every backoff is at its longest.

    ``(max_retries + 1) * timeout_s + sum(min(max_backoff_s, backoff_s * 2**(i - 1)) * 1.25 for i in 1..max_retries)``

    >>> request_budget_s(2.0, 3, 0.5, 8.0)  # 4 attempts of 2 s, waits of 0.5, 1 and 2 s stretched by 1.25
    12.375
    """
    waits = sum(min(max_backoff_s, backoff_s * 2 ** (i - 1)) for i in range(1, max_retries + 1))
    return (max_retries + 1) * timeout_s + waits * JITTER


def batch_budget_s(n_queries: int, max_concurrency: int, request_s: float) -> float:
    """The most wall time a batch of ``n_queries`` can take: waves of ``max_concurrency`` requests, each wave at
    most ``request_s`` (:func:`request_budget_s`).

    >>> batch_budget_s(8, 8, 12.375), batch_budget_s(9, 8, 12.375)
    (12.375, 24.75)
    """
    return math.ceil(n_queries / max(1, max_concurrency)) * request_s if n_queries else 0.0


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one server, reused across requests (at most ``size`` kept idle).

    Args:
        base_url: ``http(s)://host:port/...``; the path is the prefix of every request path.
        size: the most idle connections kept (one per concurrent request is enough).
    """

    def __init__(self, base_url: str, size: int = 8):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Expected `base_url` like http://host:8000/v1, actually: {base_url!r}")
        self.scheme, self.host, self.prefix = parts.scheme, parts.hostname, parts.path.rstrip("/")
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.size = max(1, int(size))
        self.opened = 0  # connections opened over the pool's life (reuse keeps it small)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _take(self, timeout_s: float, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle and not fresh:
                conn = self._idle.pop()
                if conn.sock is not None:
                    conn.sock.settimeout(timeout_s)
                conn.timeout = timeout_s
                return conn, True
            self.opened += 1
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout_s), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                timeout_s: float) -> tuple[int, str, bytes]:
        """One HTTP exchange; returns (status, content type, body). A kept-alive connection the server closed
        meanwhile is replaced once, silently, by a newly opened one (another idle connection may be stale too);
        other network errors propagate (``OSError``,
        ``http.client.HTTPException``) for the caller's retry policy."""
        for fresh_try in (False, True):
            conn, reused = self._take(timeout_s, fresh=fresh_try)
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused and not fresh_try:
                    continue  # the server dropped an idle connection: not a failure of the request
                raise
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._give_back(conn)
            return resp.status, resp.getheader("Content-Type") or "", data
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class CircuitBreaker:
    """Stops paying the retry budget while a server is down: after ``failures`` consecutive failed batches it
    opens (requests are refused at once) for ``cooldown_s``; then one batch is let through as a probe (without
    retries): success closes it, failure opens it again. ``failures=0`` turns it off.

    >>> t = [0.0]
    >>> b = CircuitBreaker(failures=2, cooldown_s=10.0, clock=lambda: t[0])
    >>> b.record(False); b.record(False); b.state
    'open'
    >>> b.allow()
    False
    >>> t[0] = 11.0; b.allow(), b.state
    (True, 'half_open')
    >>> b.record(True); b.state
    'closed'
    """

    def __init__(self, failures: int = 3, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        if int(failures) < 0 or float(cooldown_s) < 0:
            raise ConfigError(f"Expected breaker_failures >= 0 and breaker_cooldown_s >= 0, actually: {failures}, "
                              f"{cooldown_s}")
        self.failures, self.cooldown_s, self.clock = int(failures), float(cooldown_s), clock
        self.state = "closed"
        self.streak = 0
        self.opened_at = 0.0
        self.trips = 0  # times it opened
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether a batch may be sent now (an open breaker past its cool-down lets one probe through)."""
        with self._lock:
            if self.state == "open" and self.clock() - self.opened_at >= self.cooldown_s:
                self.state = "half_open"
            return self.state != "open"

    @property
    def probing(self) -> bool:
        return self.state == "half_open"

    def record(self, ok: bool) -> None:
        """The outcome of a batch: ok when at least one of its requests was answered."""
        with self._lock:
            if ok:
                self.state, self.streak = "closed", 0
                return
            self.streak += 1
            if self.failures and (self.state == "half_open" or self.streak >= self.failures):
                if self.state != "open":
                    self.trips += 1
                self.state, self.opened_at = "open", self.clock()


def query_key(query: CriticQuery) -> str:
    """A digest of what a critic sees in a query: instruction, question and the bytes and shapes of its frames
    (the step and the privileged state are not part of it)."""
    h = hashlib.blake2b(digest_size=20)
    for text in (query.instruction, query.question or ""):
        h.update(text.encode())
        h.update(b"\0")
    for arr in (query.initial, query.clip, query.current):
        h.update(repr((arr.shape, str(arr.dtype))).encode())
        h.update(memoryview(arr).cast("B") if arr.flags.c_contiguous else arr.tobytes())
    return h.hexdigest()


class VerdictCache:
    """Verdicts of a deterministic critic by query content (least recently used dropped beyond ``size``)."""

    def __init__(self, size: int = 4096):
        self.size = max(1, int(size))
        self.hits = self.misses = 0
        self._items: OrderedDict[str, CriticVerdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CriticVerdict | None:
        with self._lock:
            verdict = self._items.get(key)
            if verdict is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return verdict

    def put(self, key: str, verdict: CriticVerdict) -> None:
        with self._lock:
            self._items[key] = verdict
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    @property
    def hit_rate(self) -> float | None:
        n = self.hits + self.misses
        return self.hits / n if n else None
