"""Per-episode critic state machine (placeholder; full version being written)."""
from __future__ import annotations

import numpy as np


def sample_clip_indices(n_frames: int, clip_len: int, window: int | None = None) -> list[int]:
    """Indices of ``clip_len`` frames sampled uniformly from ``n_frames`` kept frames.

    The first kept frame (the initial state, or the window's start) and the last (the current
    state) are always included; with fewer frames than ``clip_len`` indices repeat.

    >>> sample_clip_indices(10, 4)
    [0, 3, 6, 9]
    >>> sample_clip_indices(2, 4)
    [0, 0, 1, 1]
    >>> sample_clip_indices(10, 3, window=4)
    [6, 8, 9]
    """
    if n_frames < 1 or clip_len < 1:
        raise ValueError(f"Expected n_frames >= 1 and clip_len >= 1, actually: {n_frames}, {clip_len}")
    start = 0 if window is None else max(0, n_frames - window)
    if clip_len == 1:
        return [n_frames - 1]
    idx = np.floor(np.linspace(start, n_frames - 1, clip_len) + 0.5).astype(int)
    return idx.tolist()
