"""The ``remote`` critic: an OpenAI-compatible ``/v1/chat/completions`` client (vLLM, SGLang, our loopback server).

One GPU server scores for many simulation workers. Each query is one chat request with the same prompt as the
``primo`` backend: [system], then a user turn [initial image, video clip, current image, question]:

- the two anchors are ``image_url`` parts holding ``data:image/jpeg;base64,...`` URLs;
- the clip is one ``video_url`` part holding ``data:video/jpeg;base64,<frame1>,<frame2>,...``: base64 JPEG frames
  joined by commas. This is the form vLLM decodes as a frame list without re-sampling
  (``VideoMediaIO.load_base64`` for media type ``video/jpeg``; vLLM assumes 1 fps for such lists unless started
  with ``--media-io-kwargs '{"video": {"fps": 2}}'``, see docs/vlm.md). ``video_as="images"`` sends the frames as
  separate ``image_url`` parts instead, for servers without video input.

**Failure probability over the wire.** A chat-completions answer has no place for it, so our server
(:mod:`primo_loop.critics.serving`) adds one documented extra field to its response, beside ``choices``:
``"primo_loop": {"failure_prob": <float in [0, 1] or null>}``. The client puts it into the verdict; a server
that does not send the field (vLLM, SGLang: a model that gives only progress) leaves ``failure_prob`` None by
design, and a value outside [0, 1] is dropped with a warning.

**Faults** (docs/vlm.md, "Remote faults"). A batch is sent as concurrent requests over kept-alive connections.
Connection errors, time-outs, 429 and 5xx answers are retried ``max_retries`` times with exponential backoff;
then the query is a :class:`FailedVerdict` (``progress=None``, counted as failed, never as unreadable). After
``breaker_failures`` failed batches in a row a circuit breaker refuses requests at once for ``breaker_cooldown_s``.
A malformed answer or a number outside 0-100 is an unreadable verdict, with one warning line per kind.
401/403/404 mean misconfiguration and always raise.

>>> critic = make_critic("remote", base_url="http://gpu-box:8000/v1", max_concurrency=16)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from primo_loop.answers import ANSWER_MODES
from primo_loop.critics.remote_codec import (  # noqa: F401 - the codec's names, importable from here as before
    EXTRA_FIELD, decode_data_url, encode_jpeg, failure_prob_of, image_data_url, json_or_none, query_messages,
    read_response, video_data_url)
from primo_loop.critics.remote_http import (CircuitBreaker, ConnectionPool, FailedVerdict, VerdictCache,
                                            batch_budget_s, query_key, request_budget_s)
from primo_loop.errors import ConfigError, CriticUnavailableError, check_choice
from primo_loop.prompting import DEFAULT_PROFILE, PromptTemplate, resolve_template
from primo_loop.types import CriticQuery, CriticVerdict

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000/v1"
DEFAULT_API_KEY_ENV = "PRIMO_CRITIC_API_KEY"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
HOW_TO_SERVE = ("start a server, e.g. `vllm serve LeonOverload/PRIMO-R1-7B --limit-mm-per-prompt "
                "'{\"image\": 2, \"video\": 1}'` (docs/vlm.md) or `python scripts/serve_critic.py --critic primo "
                "--critic-option model=PATH`, or fix `base_url`")


# --------------------------------------------------------------------------------------------------- client

class _RequestFailed(Exception):
    """A request that failed after its retries (``status`` None) or with a non-retryable HTTP status."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def normalize_base_url(url: str) -> str:
    """``http://host:port``, ``.../v1`` or ``.../v1/chat/completions`` -> ``.../v1``.

    >>> normalize_base_url("http://h:8000"), normalize_base_url("http://h:8000/v1/chat/completions")
    ('http://h:8000/v1', 'http://h:8000/v1')
    """
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url if url.endswith("/v1") else url + "/v1"


class RemoteCritic:
    """Progress from an OpenAI-compatible chat-completions server.

    Args:
        base_url: the server's API root (``http://host:8000/v1``; ``/v1`` is added if missing).
        model: the model name to request; default: the first model the server lists at ``/v1/models``.
        api_key_env: name of the environment variable holding the API key (sent as a Bearer token when set).
            Not ``OPENAI_API_KEY`` by default, so a personal key is never sent to a lab server by accident.
        timeout_s: time-out of one attempt (connect, then each wait for the answer).
        max_retries: retries after the first attempt (connection errors, time-outs, 408/425/429/5xx).
        backoff_s: the first retry's wait; it doubles each retry (with +-25 % jitter), capped at
            ``max_backoff_s``.
        max_backoff_s: the longest wait between retries.
        max_concurrency: the most requests in flight at once (a batch is sent as concurrent requests), and the
            most keep-alive connections kept open.
        max_tokens: token budget of one answer (default 4096, the release's).
        temperature: sampling temperature (default 0.1, the release's; 0 = greedy).
        top_p: nucleus mass sent with the request (default 0.001, the release's; None sends none).
        on_error: ``"none"`` (default): a query whose request fails gets a :class:`FailedVerdict`
            (``progress=None``), counted in ``stats["failed"]``; the wrappers' ``on_critic_error`` then holds or
            raises. ``"raise"``: raise CriticUnavailableError here.
        breaker_failures: consecutive failed batches (every request failed) after which the circuit breaker opens
            and requests are refused at once (default 3; 0: never).
        breaker_cooldown_s: how long an open breaker refuses before one probe batch (no retries) is let through.
        cache: keep verdicts by query content (instruction and frames) and answer repeats from memory: only for
            a deterministic critic (temperature 0). Off by default; hit rate in ``stats``.
        cache_size: the most verdicts kept by the cache.
        video_as: ``"video_url"`` (default, vLLM's frame-list form) or ``"images"`` (clip frames as images).
        jpeg_quality: JPEG quality of the frames sent.
        frame_size: resize every frame to this side (int) or (H, W) before encoding; default keeps each frame's.
        max_pixels: the most pixels of an anchor image (default 401408, the release's).
        prompt_profile: ``primo-sft`` (default) or ``primo-rl`` (see :mod:`primo_loop.prompting`).
        prompt_file: the prompt wording file or release checkout (default ours); ``prompt_template`` is an
            older name for it.
        answer_parsing: ``lenient`` (default) or ``official`` (see :mod:`primo_loop.answers`).
        check_server: ask ``/v1/models`` at construction, so an unreachable server fails at once with a clear
            error (and the model name is discovered).
        extra_body: extra JSON fields for every request (e.g. ``{"mm_processor_kwargs": {"fps": 2}}``).

    A batch takes at most :attr:`batch_budget_s` (``ceil(n / max_concurrency) * request_budget_s``, see
    :func:`~primo_loop.critics.remote_http.request_budget_s`); requests still out then are failed verdicts.

    Raises:
        CriticUnavailableError: the server cannot be reached at construction (``check_server``), answers
            401/403/404, or (with ``on_error="raise"``) a request fails after its retries.
    """

    name = "remote"

    def __init__(self, base_url: str = DEFAULT_URL, model: str | None = None, *,
                 api_key_env: str = DEFAULT_API_KEY_ENV, timeout_s: float = 120.0, max_retries: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, max_concurrency: int = 8,
                 max_tokens: int = 4096, temperature: float = 0.1, top_p: float | None = 0.001,
                 on_error: str = "none", breaker_failures: int = 3, breaker_cooldown_s: float = 30.0,
                 cache: bool = False, cache_size: int = 4096, video_as: str = "video_url", jpeg_quality: int = 90,
                 frame_size: int | tuple[int, int] | str | None = None, max_pixels: int | None = 401408,
                 prompt_profile: str = DEFAULT_PROFILE, prompt_file: str | Path | PromptTemplate | None = None,
                 prompt_template: str | Path | PromptTemplate | None = None, answer_parsing: str = "lenient",
                 check_server: bool = True, extra_body: dict[str, Any] | None = None):
        from primo_loop.critics.primo import _frame_size_option, _int_option

        self.base_url = normalize_base_url(str(base_url))
        self.api_key_env = api_key_env
        self.timeout_s, self.backoff_s, self.max_backoff_s = float(timeout_s), float(backoff_s), float(max_backoff_s)
        if self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(f"Expected timeout_s > 0 and backoffs >= 0, actually: {timeout_s}, {backoff_s}, "
                              f"{max_backoff_s}")
        self.max_retries = _int_option("max_retries", max_retries, 0)
        self.max_concurrency = _int_option("max_concurrency", max_concurrency, 1)
        self.max_tokens = _int_option("max_tokens", max_tokens, 1)
        self.jpeg_quality = _int_option("jpeg_quality", jpeg_quality, 1)
        self.temperature = float(temperature)
        self.top_p = None if top_p is None else float(top_p)
        if on_error not in ("none", "raise"):
            raise ConfigError(f"Expected `on_error` to be 'none' or 'raise', actually: {on_error!r}")
        if video_as not in ("video_url", "images"):
            raise ConfigError(f"Expected `video_as` to be 'video_url' or 'images', actually: {video_as!r}")
        self.on_error, self.video_as = on_error, video_as
        self.frame_size = _frame_size_option(frame_size)
        self.max_pixels = None if max_pixels in (None, "", "none") else _int_option("max_pixels", max_pixels, 784)
        self.template = resolve_template(prompt_file if prompt_file is not None else prompt_template, prompt_profile)
        self.answer_parsing = check_choice("answer_parsing", str(answer_parsing), ANSWER_MODES)
        self.extra_body = dict(extra_body or {})
        self.breaker = CircuitBreaker(_int_option("breaker_failures", breaker_failures, 0), float(breaker_cooldown_s))
        self.cache = VerdictCache(_int_option("cache_size", cache_size, 1)) if _flag(cache) else None
        self.stats: dict[str, Any] = {"queries": 0, "requests": 0, "retries": 0, "failed": 0, "unreadable": 0,
                                      "short_circuited": 0, "breaker_trips": 0, "cache_hits": 0,
                                      "cache_hit_rate": None, "connections_opened": 0}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._pool = ConnectionPool(self.base_url, self.max_concurrency)
        self._workers: ThreadPoolExecutor | None = None
        self.last_verdicts: list[CriticVerdict] = []
        self.model = model
        if check_server:
            self.model = self._discover_model(model)
        if self.model is None:
            from primo_loop.critics.primo import DEFAULT_MODEL

            self.model = DEFAULT_MODEL

    @property
    def request_budget_s(self) -> float:
        """The most wall time one request takes (every attempt timing out, every backoff at its longest)."""
        return request_budget_s(self.timeout_s, self.max_retries, self.backoff_s, self.max_backoff_s)

    def batch_budget_s(self, n_queries: int) -> float:
        """The most wall time a batch of ``n_queries`` takes (waves of ``max_concurrency`` requests)."""
        return batch_budget_s(n_queries, self.max_concurrency, self.request_budget_s)

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _fatal(self, status: int, body: str) -> CriticUnavailableError:
        what = {401: f"unauthorized: set the API key in ${self.api_key_env} (option `api_key_env` names the "
                     f"variable)",
                403: f"forbidden: check the API key in ${self.api_key_env}",
                404: f"not found: check `base_url` ({self.base_url}) and `model` ({self.model!r})"}[status]
        return CriticUnavailableError(f"Critic server {self.base_url} answered HTTP {status}, {what}. "
                                      f"Server said: {body[:200]}")

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        """One warning line per kind of malformed answer (later ones are debug lines)."""
        with self._lock:
            first = kind not in self._warned
            self._warned.add(kind)
        logger.log(logging.WARNING if first else logging.DEBUG, message + ("" if not first else
                   " (further answers of this kind are logged at debug level)"), *args)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                 retries: int | None = None) -> tuple[str, bytes]:
        """One request with retries; returns (content type, body) of a 2xx answer."""
        data = None if payload is None else json.dumps(payload).encode()
        retries = self.max_retries if retries is None else retries
        last = "no attempt"
        for attempt in range(retries + 1):
            if attempt:
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
                self._count("retries")
                logger.debug("retrying %s%s in %.2fs after: %s", self.base_url, path, wait, last)
                time.sleep(wait)
            self._count("requests")
            try:
                status, ctype, body = self._pool.request(method, path, data, self._headers(), self.timeout_s)
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut off
                last = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                with self._lock:
                    self.stats["connections_opened"] = self._pool.opened
            if 200 <= status < 300:
                return ctype, body
            text = body.decode(errors="replace")
            if status in FATAL_STATUS:
                raise self._fatal(status, text)
            last = f"HTTP {status}: {text[:200]}"
            if status not in RETRY_STATUS and status < 500:
                raise _RequestFailed(last, status)  # a bad request: retrying cannot help
        raise _RequestFailed(f"{self.base_url}{path} failed after {retries + 1} attempts; last error: {last}")

    def _discover_model(self, model: str | None) -> str | None:
        try:
            ctype, body = self._request("GET", "/models", retries=min(self.max_retries, 2))
        except _RequestFailed as exc:
            if exc.status is not None:
                return model  # the server answers but has no /models route: keep the given name
            raise CriticUnavailableError(f"Cannot reach the critic server at {self.base_url} ({exc}); "
                                         f"{HOW_TO_SERVE}.") from exc
        listing = json_or_none(body)
        if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
            what = (f"JSON {type(listing).__name__}" if listing is not None
                    else f"{ctype or 'no content type'} ({body[:60]!r})")
            self._warn_once("models", "The server at %s answered /v1/models with %s, not an OpenAI model list "
                            "{'data': [{'id': ...}]}; is base_url an OpenAI-compatible API root?",
                            self.base_url, what)
            if model is None:
                raise CriticUnavailableError(
                    f"The critic server at {self.base_url} answered /v1/models with {what}, not an OpenAI model "
                    f"list, so the model name is unknown: pass `model=` explicitly, or point `base_url` at the "
                    f"API root of an OpenAI-compatible server")
            return model
        ids = [m.get("id") for m in listing["data"] if isinstance(m, dict)]
        if model is None:
            if not ids:
                raise CriticUnavailableError(f"The critic server at {self.base_url} lists no models; pass "
                                             f"`model=` explicitly.")
            return ids[0]
        if ids and model not in ids:
            logger.warning("model %r is not among the server's models %s", model, ids)
        return model

    # -- critic ----------------------------------------------------------------------------------------------

    def payload(self, query: CriticQuery) -> dict[str, Any]:
        """The JSON body of the chat request for one query."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": query_messages(query, self.template, quality=self.jpeg_quality, video_as=self.video_as,
                                       frame_size=self.frame_size, max_pixels=self.max_pixels),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.top_p is not None:
            body["top_p"] = self.top_p
        body.update(self.extra_body)
        return body

    def _failed(self, why: str) -> FailedVerdict:
        if self.on_error == "raise":
            raise CriticUnavailableError(f"Critic request to {self.base_url} failed: {why}; {HOW_TO_SERVE}.")
        self._count("failed")
        return FailedVerdict(progress=None, raw=f"request failed: {why}")

    def _one(self, query: CriticQuery, retries: int | None = None) -> CriticVerdict:
        try:
            _, body = self._request("POST", "/chat/completions", self.payload(query), retries)
        except _RequestFailed as exc:
            logger.warning("critic request failed, verdict progress=None: %s", exc)
            return self._failed(str(exc))
        return read_response(body, self.answer_parsing, self._warn_once)

    def _send(self, queries: list[CriticQuery], retries: int | None) -> list[CriticVerdict]:
        """Send the queries as concurrent requests; any still out after the batch's time bound fail."""
        if self._workers is None:
            self._workers = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="remote-critic")
        futures = [self._workers.submit(self._one, q, retries) for q in queries]
        deadline = time.monotonic() + self.batch_budget_s(len(queries)) + 1.0  # + 1 s for encoding the frames
        out: list[CriticVerdict] = []
        for fut in futures:
            try:
                out.append(fut.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                fut.cancel()
                out.append(self._failed(f"no answer within the batch's time bound of "
                                        f"{self.batch_budget_s(len(queries)):.1f} s"))
        return out

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        """One verdict per query, same order; the queries are sent as concurrent requests."""
        if not queries:
            return []
        t0 = time.perf_counter()
        keys = [query_key(q) for q in queries] if self.cache is not None else None
        cached = [self.cache.get(k) for k in keys] if keys is not None else [None] * len(queries)
        todo = [i for i, v in enumerate(cached) if v is None]
        results: list[CriticVerdict | None] = list(cached)
        if todo and not self.breaker.allow():
            if self.on_error == "raise":
                raise CriticUnavailableError(f"Critic server {self.base_url} failed {self.breaker.streak} batches "
                                             f"in a row (circuit breaker open); {HOW_TO_SERVE}.")
            self._count("short_circuited", len(todo))
            for i in todo:
                results[i] = self._failed(f"circuit breaker open after {self.breaker.streak} failed batches; next "
                                          f"probe within {self.breaker.cooldown_s:.0f} s")
        elif todo:
            probe = self.breaker.probing  # a probe pays no retries: one attempt says whether the server is back
            sent = self._send([queries[i] for i in todo], 0 if probe else None)
            ok = any(not getattr(v, "failed", False) for v in sent)
            trips = self.breaker.trips
            self.breaker.record(ok)
            if self.breaker.trips > trips:
                logger.warning("critic server %s: %d batches failed in a row; circuit breaker open, requests "
                               "refused for %.0f s before a probe", self.base_url, self.breaker.streak,
                               self.breaker.cooldown_s)
            for i, v in zip(todo, sent):
                results[i] = v
                if keys is not None and self.cache is not None and not getattr(v, "failed", False):
                    self.cache.put(keys[i], v)
        dt = (time.perf_counter() - t0) / len(queries)
        out = [dataclasses.replace(v, latency_s=dt) for v in results if v is not None]
        with self._lock:
            self.stats["queries"] += len(out)
            self.stats["unreadable"] += sum(v.progress is None and not getattr(v, "failed", False) for v in out)
            self.stats["breaker_trips"] = self.breaker.trips
            if self.cache is not None:
                self.stats["cache_hits"], self.stats["cache_hit_rate"] = self.cache.hits, self.cache.hit_rate
        self.last_verdicts = out  # what the server said at the last call (rollout logs keep it)
        return out

    def close(self) -> None:
        """Close the kept-alive connections and the request threads."""
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._workers = None
        self._pool.close()


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
