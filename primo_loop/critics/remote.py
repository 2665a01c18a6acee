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

A batch is sent as concurrent requests (a thread pool of ``max_concurrency``). Connection errors, time-outs,
429 and 5xx answers are retried ``max_retries`` times with exponential backoff; after that the query becomes a
``progress=None`` verdict that is counted in :attr:`RemoteCritic.stats` (or, with ``on_error="raise"``, a
:class:`~primo_loop.errors.CriticUnavailableError`). 401/403/404 mean misconfiguration and always raise.

>>> critic = make_critic("remote", base_url="http://gpu-box:8000/v1", max_concurrency=16)  # doctest: +SKIP
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.answers import ANSWER_MODES, read_answer
from primo_loop.errors import ConfigError, CriticUnavailableError, check_choice
from primo_loop.prompting import DEFAULT_PROFILE, PromptTemplate, build_messages, query_question, resolve_template
from primo_loop.types import CriticQuery, CriticVerdict

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000/v1"
DEFAULT_API_KEY_ENV = "PRIMO_CRITIC_API_KEY"
EXTRA_FIELD = "primo_loop"
"""The response's extra field: ``{"failure_prob": float | None}`` (see the module docstring)."""
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
HOW_TO_SERVE = ("start a server, e.g. `vllm serve LeonOverload/PRIMO-R1-7B --limit-mm-per-prompt "
                "'{\"image\": 2, \"video\": 1}'` (docs/vlm.md) or `python scripts/serve_critic.py --critic primo "
                "--critic-option model=PATH`, or fix `base_url`")


# ---------------------------------------------------------------------------------------------------- codec

def encode_jpeg(frame: np.ndarray, quality: int = 90) -> str:
    """Base64 of a JPEG-encoded uint8 ``[H, W, 3]`` frame."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=int(quality))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_data_url(frame: np.ndarray, quality: int = 90) -> str:
    return "data:image/jpeg;base64," + encode_jpeg(frame, quality)


def video_data_url(frames: np.ndarray, quality: int = 90) -> str:
    """The clip as vLLM's ``video/jpeg`` data URL: base64 JPEG frames joined by commas."""
    return "data:video/jpeg;base64," + ",".join(encode_jpeg(f, quality) for f in frames)


def decode_data_url(url: str) -> list[np.ndarray]:
    """Frames (uint8 ``[H, W, 3]``) from an ``image/*`` or ``video/jpeg`` base64 data URL.

    >>> f = np.full((8, 8, 3), 200, np.uint8)
    >>> [x.shape for x in decode_data_url(video_data_url(np.stack([f, f])))]
    [(8, 8, 3), (8, 8, 3)]
    """
    from PIL import Image

    head, sep, data = url.partition(",")
    if not url.startswith("data:") or not sep or ";base64" not in head:
        raise ValueError(f"Expected a base64 data URL, actually: {url[:40]!r}")
    chunks = data.split(",") if head.lower().startswith("data:video/jpeg") else [data]
    frames = []
    for chunk in chunks:
        with Image.open(io.BytesIO(base64.b64decode(chunk))) as im:
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def query_messages(query: CriticQuery, template: PromptTemplate, *, quality: int = 90,
                   video_as: str = "video_url", frame_size: int | tuple[int, int] | None = None,
                   max_pixels: int | None = 401408) -> list[dict[str, Any]]:
    """The OpenAI-format chat for one query: the same prompt as the ``primo`` backend, media as data URLs
    (``max_pixels`` caps the anchors as there; None: no cap)."""
    from primo_loop.critics.primo import normalize_frames

    initial, clip, current = normalize_frames(query, frame_size, max_pixels)
    messages = build_messages(query_question(query), instruction=query.instruction, template=template)
    user = messages[-1]
    parts: list[dict[str, Any]] = []
    media = iter([("image", initial), ("video", clip), ("image", current)])
    for part in user["content"]:
        if part["type"] == "text":
            parts.append(part)
            continue
        kind, value = next(media)
        if kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": image_data_url(value, quality)}})
        elif video_as == "images":
            parts.extend({"type": "image_url", "image_url": {"url": image_data_url(f, quality)}} for f in value)
        else:
            parts.append({"type": "video_url", "video_url": {"url": video_data_url(value, quality)}})
    messages[-1] = {"role": "user", "content": parts}
    return messages


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


def _failure_prob(response: Any) -> float | None:
    """The failure probability of our server's extra field, or None (absent, null or out of [0, 1])."""
    extra = response.get(EXTRA_FIELD) if isinstance(response, dict) else None
    value = extra.get("failure_prob") if isinstance(extra, dict) else None
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        logger.warning("server sent failure_prob %r outside [0, 1]; ignored", extra.get("failure_prob"))
        return None
    return value


class RemoteCritic:
    """Progress from an OpenAI-compatible chat-completions server.

    Args:
        base_url: the server's API root (``http://host:8000/v1``; ``/v1`` is added if missing).
        model: the model name to request; default: the first model the server lists at ``/v1/models``.
        api_key_env: name of the environment variable holding the API key (sent as a Bearer token when set).
            Not ``OPENAI_API_KEY`` by default, so a personal key is never sent to a lab server by accident.
        timeout_s: time-out of one request (connect + answer).
        max_retries: retries after the first attempt (connection errors, time-outs, 408/425/429/5xx).
        backoff_s: the first retry's wait; it doubles each retry (with +-25 % jitter), capped at
            ``max_backoff_s``.
        max_backoff_s: the longest wait between retries.
        max_concurrency: the most requests in flight at once (a batch is sent as concurrent requests).
        max_tokens: token budget of one answer (default 4096, the release's).
        temperature: sampling temperature (default 0.1, the release's; 0 = greedy).
        top_p: nucleus mass sent with the request (default 0.001, the release's; None sends none).
        on_error: ``"none"`` (default): a query whose request fails after retries gets a ``progress=None``
            verdict and is counted in ``stats["failed"]``; ``"raise"``: raise CriticUnavailableError.
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

    Raises:
        CriticUnavailableError: the server cannot be reached at construction (``check_server``), answers
            401/403/404, or (with ``on_error="raise"``) a request fails after its retries.
    """

    name = "remote"

    def __init__(self, base_url: str = DEFAULT_URL, model: str | None = None, *,
                 api_key_env: str = DEFAULT_API_KEY_ENV, timeout_s: float = 120.0, max_retries: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, max_concurrency: int = 8,
                 max_tokens: int = 4096, temperature: float = 0.1, top_p: float | None = 0.001,
                 on_error: str = "none", video_as: str = "video_url", jpeg_quality: int = 90,
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
        self.stats = {"queries": 0, "requests": 0, "retries": 0, "failed": 0, "unreadable": 0}
        self._lock = threading.Lock()
        self.last_verdicts: list[CriticVerdict] = []
        self.model = model
        if check_server:
            self.model = self._discover_model(model)
        if self.model is None:
            from primo_loop.critics.primo import DEFAULT_MODEL

            self.model = DEFAULT_MODEL

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

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                 retries: int | None = None) -> dict[str, Any]:
        """One JSON request with retries; returns the decoded JSON body."""
        url = self.base_url + path
        data = None if payload is None else json.dumps(payload).encode()
        retries = self.max_retries if retries is None else retries
        last = "no attempt"
        for attempt in range(retries + 1):
            if attempt:
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
                with self._lock:
                    self.stats["retries"] += 1
                logger.debug("retrying %s in %.2fs after: %s", url, wait, last)
                time.sleep(wait)
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            try:
                with self._lock:
                    self.stats["requests"] += 1
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    body = resp.read()
                return json.loads(body)
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace") if exc.fp else ""
                if exc.code in FATAL_STATUS:
                    raise self._fatal(exc.code, text) from exc
                last = f"HTTP {exc.code}: {text[:200]}"
                if exc.code not in RETRY_STATUS and exc.code < 500:
                    raise _RequestFailed(last, exc.code) from exc  # a bad request: retrying cannot help
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                    http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason
            except json.JSONDecodeError as exc:
                raise _RequestFailed(f"server sent invalid JSON: {exc}") from exc
        raise _RequestFailed(f"{url} failed after {retries + 1} attempts; last error: {last}")

    def _discover_model(self, model: str | None) -> str | None:
        try:
            listing = self._request("GET", "/models", retries=min(self.max_retries, 2))
        except _RequestFailed as exc:
            if exc.status is not None:
                return model  # the server answers but has no /models route: keep the given name
            raise CriticUnavailableError(f"Cannot reach the critic server at {self.base_url} ({exc}); "
                                         f"{HOW_TO_SERVE}.") from exc
        ids = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
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

    def _one(self, query: CriticQuery) -> CriticVerdict:
        try:
            response = self._request("POST", "/chat/completions", self.payload(query))
        except _RequestFailed as exc:
            if self.on_error == "raise":
                raise CriticUnavailableError(f"Critic request to {self.base_url} failed: {exc}; "
                                             f"{HOW_TO_SERVE}.") from exc
            with self._lock:
                self.stats["failed"] += 1
            logger.warning("critic request failed, verdict progress=None: %s", exc)
            return CriticVerdict(progress=None, raw=f"request failed: {exc}")
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        tokens = (response.get("usage") or {}).get("completion_tokens")
        from primo_loop.critics.primo import verdict_progress

        parsed = read_answer(content, self.answer_parsing)
        return CriticVerdict(progress=verdict_progress(parsed.progress), failure_prob=_failure_prob(response),
                             reasoning=parsed.reasoning,
                             raw=content if content is not None else json.dumps(response)[:500],
                             output_tokens=int(tokens) if tokens is not None else None)

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        """One verdict per query, same order; the queries are sent as concurrent requests."""
        if not queries:
            return []
        t0 = time.perf_counter()
        workers = min(self.max_concurrency, len(queries))
        if workers == 1:
            results = [self._one(q) for q in queries]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote-critic") as pool:
                results = list(pool.map(self._one, queries))
        dt = (time.perf_counter() - t0) / len(queries)
        out = []
        for v in results:
            out.append(CriticVerdict(progress=v.progress, failure_prob=v.failure_prob, reasoning=v.reasoning,
                                     raw=v.raw, latency_s=dt, output_tokens=v.output_tokens))
        with self._lock:
            self.stats["queries"] += len(out)
            self.stats["unreadable"] += sum(v.progress is None for v in out)
        self.last_verdicts = out  # what the server said at the last call (rollout logs keep it)
        return out
