"""Which frames a query shows: the clip sampled from the frames kept since reset, and the queries the in-loop
tracker makes along a recording (evaluation and video scoring replay it). Pure functions over indices.

(Re-exported by :mod:`primo_loop.tracker`, where they lived first.)
"""
from __future__ import annotations

import numpy as np

from primo_loop.errors import ConfigError


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
        raise ConfigError(f"Expected n_frames >= 1 and clip_len >= 1, actually: {n_frames}, {clip_len}")
    if window is not None and window < 1:
        raise ConfigError(f"Expected `window` >= 1 or None, actually: {window!r}")
    start = 0 if window is None else max(0, n_frames - window)
    if clip_len == 1:
        return [n_frames - 1]
    idx = np.floor(np.linspace(start, n_frames - 1, clip_len) + 0.5).astype(int)
    return idx.tolist()


def replay_schedule(frame_steps, critic_every: int, frame_every: int, clip_len: int,
                    window: int | None = None) -> list[tuple[int, int, list[int]]]:
    """The queries the in-loop tracker would make along a recording (evaluation, video scoring).

    Args:
        frame_steps: the env step of each recorded frame, increasing.
        critic_every, frame_every, clip_len, window: as in :class:`TrackerConfig`.

    Returns:
        ``(step, current, clip)`` per query, with ``current`` and ``clip`` indices into ``frame_steps``; the
        frames kept are those on multiples of ``frame_every`` (the first recorded frame is always the initial one).

    >>> replay_schedule(range(0, 25, 5), critic_every=10, frame_every=5, clip_len=3)
    [(0, 0, [0, 0, 0]), (10, 2, [0, 1, 2]), (20, 4, [0, 2, 4])]
    """
    fs = np.asarray(list(frame_steps))
    keep = np.flatnonzero((fs % frame_every) == 0)
    if len(keep) == 0 or keep[0] != 0:
        keep = np.concatenate([[0], keep[fs[keep] != fs[0]]]).astype(int)
    schedule = []
    for j, k in enumerate(keep):
        step = int(fs[k])
        if step % critic_every == 0:
            clip = [int(keep[i]) for i in sample_clip_indices(j + 1, clip_len, window)]
            schedule.append((step, int(k), clip))
    return schedule
