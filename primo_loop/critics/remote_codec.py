"""What travels over the wire for the ``remote`` critic: frames as base64 data URLs in an OpenAI-format chat,
and the verdict read back from a chat-completions answer (malformed answers are unreadable verdicts)."""
from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from primo_loop.answers import read_answer
from primo_loop.prompting import PromptTemplate, build_messages, query_question
from primo_loop.types import CriticQuery, CriticVerdict

logger = logging.getLogger(__name__)

EXTRA_FIELD = "primo_loop"
"""The response's extra field: ``{"failure_prob": float | None}`` (see :mod:`primo_loop.critics.remote`)."""


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


def failure_prob_of(response: Any) -> float | None:
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


def read_response(body: bytes, answer_parsing: str, warn_once: Callable[..., None]) -> CriticVerdict:
    """The verdict in a 2xx chat-completions answer. A malformed one (not JSON, a JSON list, no ``choices``, no
    text) or a number outside 0-100 is unreadable (``progress=None``, never clamped); ``warn_once(kind, msg, *args)``
    is told once per kind."""
    response = json_or_none(body)
    if not isinstance(response, dict):
        kind = "invalid JSON" if response is None else f"a JSON {type(response).__name__}"
        warn_once(f"body:{kind}", "critic server answered %s, not a chat completion object; "
                        "verdict unreadable", kind)
        return CriticVerdict(progress=None, raw=body[:500].decode(errors="replace"))
    choices = response.get("choices")
    content = None
    if not isinstance(choices, list) or not choices:
        warn_once("choices", "critic server answered with no choices (%s); verdict unreadable",
                        json.dumps(choices)[:60])
    else:
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            warn_once("content", "critic server's first choice has no message text; verdict unreadable")
            content = None
    tokens = (response.get("usage") or {}).get("completion_tokens") if isinstance(response.get("usage"),
                                                                                dict) else None
    parsed = read_answer(content, answer_parsing)
    from primo_loop.critics.primo import verdict_progress  # a light module: its torch import is lazy

    progress = verdict_progress(parsed.progress)
    if progress is not None and out_of_range(parsed.answer):
        warn_once("range", "critic answered %r, outside 0-100; verdict unreadable (not clamped)",
                        parsed.answer)
        progress = None
    return CriticVerdict(progress=progress, failure_prob=failure_prob_of(response), reasoning=parsed.reasoning,
                         raw=content if content is not None else json.dumps(response)[:500],
                         output_tokens=int(tokens) if isinstance(tokens, (int, float)) else None)



def json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


_FIRST_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")


def out_of_range(answer: str | None) -> bool:
    """Whether the number an answer states lies outside 0-100 (the lenient reader would bound it).

    >>> out_of_range("-250"), out_of_range("150"), out_of_range("40-50"), out_of_range("0.4")
    (True, True, False, False)
    """
    m = _FIRST_NUMBER.search((answer or "").replace("\u2212", "-").replace(",", ""))
    return m is not None and not 0.0 <= float(m.group()) <= 100.0
