"""Serve any critic behind the OpenAI-compatible chat API the ``remote`` backend speaks (stdlib only).

For tests and small setups: ``scripts/serve_critic.py`` wraps a critic built by ``make_critic`` in a
:class:`CriticServer` on loopback, so ``--critic remote`` can be exercised without vLLM. The server decodes the
frames back from the request (``image_url`` anchors and a ``video_url`` ``video/jpeg`` frame list, or frames sent
as images), recovers the instruction from the question, asks the critic, and answers in PRIMO's format
``<think>...</think><answer>NN</answer>`` (a generative critic's own text is passed through unchanged). The
verdict's failure probability travels in the response's extra field ``"primo_loop": {"failure_prob": ...}``
(null when the critic gives none), which the ``remote`` client reads back.

Concurrent requests are gathered into one ``assess`` call (up to ``max_batch``, waiting at most ``batch_wait_s``
for company), so a VLM critic batches across simulation workers. :class:`Faults` injects HTTP errors and delays
for the client's tests.
"""
from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from primo_loop.critics.base import Critic
from primo_loop.critics.remote import EXTRA_FIELD
from primo_loop.errors import ConfigError, CriticUnavailableError
from primo_loop.prompting import extract_instruction, format_response
from primo_loop.types import CriticQuery, CriticVerdict

logger = logging.getLogger(__name__)


@dataclass
class Faults:
    """Injected faults (tests only).

    Attributes:
        fail_first: answer the first N chat requests with HTTP ``fail_status``.
        fail_status: the status of injected failures.
        delay_s: sleep this long before answering a chat request.
        delay_first: delay only the first N chat requests (None: all of them).
        reply: ``reply(n)`` for the n-th chat request (from 0) returns ``(status, body, content type)`` to send
            instead of the critic's answer, or None to answer normally (malformed answers for the client's tests).
        models_reply: ``(status, body, content type)`` to send for ``/v1/models`` instead of the model list.
    """

    fail_first: int = 0
    fail_status: int = 500
    delay_s: float = 0.0
    delay_first: int | None = None
    reply: Callable[[int], tuple[int, str | bytes, str] | None] | None = None
    models_reply: tuple[int, str | bytes, str] | None = None


def query_from_messages(messages: list[Mapping[str, Any]]) -> CriticQuery:
    """Rebuild a CriticQuery from an OpenAI-format chat (the inverse of ``remote.query_messages``).

    Images before the video are the initial state, images after it the current state; without a video part,
    the first image is the initial state, the last the current state and all of them the clip.

    Raises:
        ConfigError: no user message, no frames, or undecodable media (the server answers 400).
    """
    from primo_loop.critics.remote import decode_data_url
    from primo_loop.critics.primo import _to_uint8

    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise ConfigError("Expected a user message in `messages`, actually: none")
    content = users[-1].get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    before: list[np.ndarray] = []
    after: list[np.ndarray] = []
    video: list[np.ndarray] | None = None
    texts: list[str] = []
    for part in content or []:
        kind = part.get("type")
        try:
            if kind == "image_url":
                (after if video is not None else before).extend(decode_data_url(part["image_url"]["url"]))
            elif kind == "video_url":
                video = decode_data_url(part["video_url"]["url"])
            elif kind == "text":
                texts.append(part.get("text", ""))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ConfigError(f"Could not decode a {kind} part: {exc}") from exc
    if video is None:
        frames = before + after
        if not frames:
            raise ConfigError("Expected image_url or video_url parts with base64 data URLs, actually: none")
        initial, current, clip_frames = frames[0], frames[-1], frames if len(frames) < 3 else frames[1:-1]
    else:
        if not video:
            raise ConfigError("The video_url part holds no frames")
        initial = before[0] if before else video[0]
        current = after[-1] if after else video[-1]
        clip_frames = video
    shape = clip_frames[0].shape[:2]
    clip = np.stack([_to_uint8(f, shape) for f in clip_frames])
    return CriticQuery(instruction=extract_instruction("\n".join(texts)), initial=initial, clip=clip,
                       current=current)


def response_text(verdict: CriticVerdict) -> str:
    """PRIMO-format text for a verdict: a generative critic's own answer, else a written one."""
    if verdict.raw and "<answer>" in verdict.raw:
        return verdict.raw
    if verdict.progress is None:
        return verdict.raw or ""
    return format_response(100.0 * verdict.progress, verdict.reasoning)


class _Batcher:
    """Gathers concurrent queries into one ``assess`` call on a single worker thread."""

    def __init__(self, critic: Critic, max_batch: int, wait_s: float):
        self.critic, self.max_batch, self.wait_s = critic, max_batch, wait_s
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="critic-batcher", daemon=True)
        self._thread.start()

    def submit(self, query: CriticQuery) -> CriticVerdict:
        slot: dict[str, Any] = {"query": query, "done": threading.Event()}
        self._q.put(slot)
        slot["done"].wait()
        if "error" in slot:
            raise slot["error"]
        return slot["verdict"]

    def close(self) -> None:
        self._q.put(None)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._q.put(None)
                    break
                batch.append(item)
            try:
                verdicts = self.critic.assess([s["query"] for s in batch])
                for slot, v in zip(batch, verdicts):
                    slot["verdict"] = v
            except Exception as exc:  # noqa: BLE001 - reported to every waiting request as a 500
                for slot in batch:
                    slot["error"] = exc
            for slot in batch:
                slot["done"].set()


class CriticServer:
    """An OpenAI-compatible ``/v1/chat/completions`` server in front of a critic.

    Args:
        critic: any critic (``assess``).
        host: address to bind (loopback by default: this server has no TLS and answers anyone who reaches it).
        port: port to bind; 0 picks a free one (see :attr:`port`).
        model_name: the id listed at ``/v1/models``.
        api_key: if set, requests must send ``Authorization: Bearer <api_key>``.
        max_batch: the most queries per ``assess`` call.
        batch_wait_s: how long the first query of a batch waits for others.
        faults: injected faults, for tests.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, critic: Critic, host: str = "127.0.0.1", port: int = 0, *, model_name: str = "primo-critic",
                 api_key: str | None = None, max_batch: int = 8, batch_wait_s: float = 0.005,
                 faults: Faults | None = None):
        self.critic, self.model_name, self.api_key = critic, model_name, api_key
        self.faults = faults or Faults()
        self.counts = {"chat": 0, "injected_failures": 0, "connections": 0}
        self._count_lock = threading.Lock()
        self._open: set[socket.socket] = set()  # client connections being served (closed by stop, as a kill would)
        self._batcher = _Batcher(critic, max(1, int(max_batch)), float(batch_wait_s))
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("%s " + fmt, self.address_string(), *args)

            def setup(self) -> None:
                super().setup()
                with server._count_lock:
                    server.counts["connections"] += 1
                    server._open.add(self.connection)

            def finish(self) -> None:
                with server._count_lock:
                    server._open.discard(self.connection)
                super().finish()

            def _send(self, status: int, body: dict[str, Any] | bytes, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its time-out): nothing to do
                    logger.debug("client %s went away before the answer", self.address_string())
                    self.close_connection = True

            def _authorized(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, _error("missing or wrong API key", "authentication_error"))
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") in ("/health", "/v1/health"):
                    self._send(200, {"status": "ok"})
                elif not self._authorized():
                    return
                elif self.path.rstrip("/") == "/v1/models" and server.faults.models_reply is not None:
                    status, body, ctype = server.faults.models_reply
                    self._send(status, body if isinstance(body, bytes) else body.encode(), ctype)
                elif self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": server.model_name, "object": "model", "owned_by": "primo_loop"}]})
                else:
                    self._send(404, _error(f"no route {self.path}", "not_found"))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self._authorized():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, _error(f"no route {self.path}", "not_found"))
                    return
                status, body, *ctype = server._chat(raw)
                self._send(status, body, *ctype)

        try:
            self._httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            self._batcher.close()
            raise CriticUnavailableError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Expected a free port; another process "
                f"(perhaps an earlier serve_critic.py) holds it: stop it, or pick another with --port "
                f"(0 picks a free one).") from None
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}/v1"

    def _chat(self, raw: bytes) -> tuple[Any, ...]:
        with self._count_lock:
            n = self.counts["chat"]
            self.counts["chat"] += 1
        f = self.faults
        if f.delay_s > 0 and (f.delay_first is None or n < f.delay_first):
            time.sleep(f.delay_s)
        if n < f.fail_first:
            with self._count_lock:
                self.counts["injected_failures"] += 1
            return f.fail_status, _error("injected failure", "server_error")
        scripted = f.reply(n) if f.reply is not None else None
        if scripted is not None:
            status, body, ctype = scripted
            return status, body if isinstance(body, bytes) else body.encode(), ctype
        try:
            request = json.loads(raw)
            query = query_from_messages(request["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            return 400, _error(f"bad request: {exc}", "invalid_request_error")
        try:
            verdict = self._batcher.submit(query)
        except Exception as exc:  # noqa: BLE001 - the critic failed: a server error, not the client's
            logger.exception("critic failed")
            return 500, _error(f"critic failed: {type(exc).__name__}: {exc}", "server_error")
        text = response_text(verdict)
        tokens = verdict.output_tokens if verdict.output_tokens is not None else len(text.split())
        return 200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model") or self.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": int(tokens), "total_tokens": int(tokens)},
            EXTRA_FIELD: {"failure_prob": None if verdict.failure_prob is None else float(verdict.failure_prob)},
        }

    def start(self) -> CriticServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="critic-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for a serve_forever loop: only call it if one runs
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()
        with self._count_lock:  # kept-alive connections die with the server, as they do when it is killed
            open_now, self._open = list(self._open), set()
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._batcher.close()

    def __enter__(self) -> CriticServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}
