"""The contracts shared by critics, the tracker, the wrappers and the data tools (DESIGN.md §3)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError
from primo_loop.views import check_tiled, normalize_views

Frame = np.ndarray  # uint8 [H, W, 3], upright RGB
Clip = np.ndarray  # uint8 [T, H, W, 3]


def _check_frames(name: str, arr: np.ndarray, ndim: int) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != ndim or arr.shape[-1] != 3:
        shape = getattr(arr, "shape", None)
        dtype = getattr(arr, "dtype", type(arr).__name__)
        want = "[H, W, 3]" if ndim == 3 else "[T, H, W, 3]"
        raise ConfigError(f"Expected `{name}` to be a uint8 array of shape {want}, actually: {dtype} {shape}")


@dataclass(frozen=True)
class CriticQuery:
    """One question to a critic: how far has ``instruction`` come, given these frames?

    Attributes:
        instruction: the task in words ("lift the red cube").
        initial: the frame at reset, uint8 [H, W, 3].
        clip: frames sampled from the attempt so far, uint8 [T, H, W, 3] (anchors included).
        current: the latest frame, uint8 [H, W, 3].
        step: the env step at which the query is made.
        privileged: simulator state for the oracle critic only (other critics must ignore it).
        question: a benchmark record's own question text (its ``problem``); prompt-building critics ask it
            as is instead of writing a question from ``instruction``, so a record is wrapped exactly once.
        views: the camera names tiled left to right in every frame, each view a square of the frame's height
            (a 2-view frame is [S, 2S, 3]; :mod:`primo_loop.views`); empty: one unnamed view of any shape.
    """

    instruction: str
    initial: Frame
    clip: Clip
    current: Frame
    step: int = 0
    privileged: Mapping[str, Any] | None = field(default=None, compare=False)
    question: str | None = None
    views: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_frames("initial", self.initial, 3)
        _check_frames("current", self.current, 3)
        _check_frames("clip", self.clip, 4)
        if len(self.clip) == 0:
            raise ConfigError("Expected `clip` to hold at least one frame, actually: 0 frames")
        views = normalize_views(self.views)
        object.__setattr__(self, "views", views)
        for name in ("initial", "clip", "current"):
            check_tiled(getattr(self, name).shape, views, name)


@dataclass(frozen=True)
class CriticVerdict:
    """A critic's answer to one query.

    Attributes:
        progress: task progress in [0, 1], or None when the answer could not be read.
        failure_prob: probability that the attempt has failed, in [0, 1], or None if the backend has no opinion.
        reasoning: the backend's reasoning text, if any.
        raw: the backend's raw answer text, if any.
        latency_s: wall time spent on this query (a batch's time divided among its queries).
        output_tokens: number of generated tokens (generative backends only).
    """

    progress: float | None
    failure_prob: float | None = None
    reasoning: str | None = None
    raw: str | None = None
    latency_s: float = 0.0
    output_tokens: int | None = None

    @property
    def readable(self) -> bool:
        return self.progress is not None
