"""Frames from more than one camera: views tiled side by side in one frame.

A frame of ``V`` views is ``[S, V * S, 3]``: each view a square of the frame's height, left to right in a
declared order (e.g. ``("agentview", "robot0_eye_in_hand")``). Every contract that carries frames (queries,
tracker, datasets, videos, remote codecs) carries a tiled frame unchanged; the names travel beside it
(``CriticQuery.views``, a dataset episode's ``meta["views"]``). An empty tuple of names is one unnamed view,
which may have any shape (what every frame was before views existed).

    >>> f = tile_views([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 9, np.uint8)])
    >>> f.shape, split_views(f, 2).shape
    ((4, 8, 3), (2, 4, 4, 3))
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError


def normalize_views(views: Any, what: str = "views") -> tuple[str, ...]:
    """``views`` as a tuple of distinct non-empty camera names (None and ``()`` are one unnamed view).

    >>> normalize_views(["agentview", "robot0_eye_in_hand"])
    ('agentview', 'robot0_eye_in_hand')
    """
    if views is None:
        return ()
    if isinstance(views, str):
        views = (views,)
    out = tuple(views)
    if any(not isinstance(v, str) or not v.strip() for v in out) or len(set(out)) != len(out):
        raise ConfigError(f"Expected `{what}` to be distinct non-empty camera names, actually: {out!r}")
    return out


def n_views(views: Sequence[str]) -> int:
    """Views in a frame carrying ``views`` (an empty tuple is one view)."""
    return max(1, len(views))


def check_tiled(frame_shape: Sequence[int], views: Sequence[str], what: str = "frame") -> None:
    """Raise ConfigError unless a frame of ``frame_shape`` ([..., H, W, 3]) holds ``len(views)`` square tiles.

    One view (or none named) accepts any shape.
    """
    v = len(views)
    if v < 2:
        return
    h, w = int(frame_shape[-3]), int(frame_shape[-2])
    if w != v * h:
        raise ConfigError(f"Expected `{what}` to tile {v} views {tuple(views)} side by side, each a square of the "
                          f"frame's height (width {v} x {h} = {v * h}), actually: height {h}, width {w}; render "
                          f"with tile_views(...) or pass views=() for a single camera")


def split_views(frames: np.ndarray, count: int) -> np.ndarray:
    """Tiles of tiled frames: ``[..., H, V*H, 3]`` -> ``[..., V, H, H, 3]`` (a view, not a copy)."""
    frames = np.asarray(frames)
    h, w = frames.shape[-3], frames.shape[-2]
    if w != count * h:
        raise ConfigError(f"Expected frames {count} squares wide (width {count * h}), actually: {frames.shape}")
    lead = frames.shape[:-3]
    x = frames.reshape(*lead, h, count, h, 3)
    return np.moveaxis(x, -3, -4)


def tile_views(tiles: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Square views side by side: ``V x [..., S, S, 3]`` (or ``[..., V, S, S, 3]``) -> ``[..., S, V*S, 3]``."""
    if isinstance(tiles, np.ndarray):
        return np.concatenate(list(np.moveaxis(tiles, -4, 0)), axis=-2)
    return np.concatenate(list(tiles), axis=-2)


def resize_views(frames: np.ndarray, size: int, count: int = 1) -> np.ndarray:
    """Resize each view of tiled frames to ``size`` x ``size`` (the views stay tiled): ``[..., size, count*size, 3]``.

    One view is :func:`primo_loop.data.media.resize_frames` (any input shape is made square).
    """
    from primo_loop.data.media import resize_frames

    frames = np.asarray(frames)
    if count <= 1:
        return resize_frames(frames, size)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    tiles = split_views(batch, count)  # [N, V, H, H, 3]
    n = tiles.shape[0]
    small = resize_frames(np.ascontiguousarray(tiles).reshape(n * count, *tiles.shape[2:]), size)
    out = tile_views(small.reshape(n, count, size, size, 3))
    return out[0] if single else out


def pick_view(frames: np.ndarray, views: Sequence[str], want: str | None) -> np.ndarray:
    """One view of tiled frames: the one named ``want`` if ``views`` has it, else the first (a one-view reader
    of a multi-view frame). Frames of fewer than two views are returned as they are."""
    if len(views) < 2:
        return frames
    i = list(views).index(want) if want in views else 0
    h = frames.shape[-3]
    return frames[..., :, i * h:(i + 1) * h, :]
