"""One episode in memory: the :class:`Episode` record and the :class:`EpisodeRecorder` that builds it step by step.

Writing and reading episodes on disk, and dataset folders of them, are in :mod:`primo_loop.data.dataset`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primo_loop.errors import DatasetError
from primo_loop.views import check_tiled, n_views, normalize_views, resize_views


@dataclass
class Episode:
    """One recorded episode.

    Attributes:
        episode_id: unique name, also the folder name.
        meta: see the module docstring.
        frames: uint8 ``[K, H, W, 3]``.
        frame_steps: int ``[K]``, the env step each frame shows (0 = after reset), increasing.
        table: per-step arrays, see the module docstring.
    """

    episode_id: str
    meta: dict[str, Any]
    frames: np.ndarray
    frame_steps: np.ndarray
    table: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return len(self.table["progress"]) - 1

    def progress_at_frames(self) -> np.ndarray:
        """Oracle progress (0-1) at each kept frame."""
        return np.asarray(self.table["progress"])[self.frame_steps]

    def failed_at_frames(self) -> np.ndarray:
        """Oracle failure label at each kept frame."""
        return np.asarray(self.table["failed"])[self.frame_steps].astype(bool)


class EpisodeRecorder:
    """Accumulates one episode step by step (used by collection; env-agnostic).

    Args:
        image_size: frames are resized to this square size before they are kept.
        frame_every: keep a frame every this many steps (and at reset, and at the last step).
        views: camera names tiled in each frame (:mod:`primo_loop.views`); each view is resized to
            ``image_size`` on its own, and the names go into the meta as ``views``. Default: one view.

    Example:
        >>> rec = EpisodeRecorder(image_size=8, frame_every=2)
        >>> frame = np.zeros((16, 16, 3), np.uint8)
        >>> rec.reset(frame, {"progress": 0.0, "failed": False, "events": []})
        >>> for t in range(3):
        ...     _ = rec.wants_frame(t + 1)
        ...     rec.step(np.zeros(2), 0.0, {"progress": 0.5, "failed": False, "events": ["grasped"]},
        ...              success=False, frame=frame)
        >>> ep = rec.finish("ep0", {"instruction": "lift"})
        >>> ep.frame_steps.tolist(), ep.meta["events"]
        ([0, 1, 2, 3], [{'step': 1, 'event': 'grasped'}])
    """

    def __init__(self, image_size: int, frame_every: int, views: Sequence[str] = ()):
        if frame_every < 1:
            raise DatasetError(f"Expected frame_every >= 1, actually: {frame_every}")
        self.image_size, self.frame_every = int(image_size), int(frame_every)
        self.views = normalize_views(views)
        self._clear()

    def _clear(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._frames: list[np.ndarray] = []
        self._frame_steps: list[int] = []
        self._events: list[dict[str, Any]] = []
        self._seen_events: list[str] = []
        self._action_dim: int | None = None

    @property
    def t(self) -> int:
        """Steps taken since reset."""
        return len(self._rows) - 1

    def wants_frame(self, step: int) -> bool:
        """Whether the frame at env step ``step`` is kept (the caller renders only then)."""
        return step % self.frame_every == 0

    def reset(self, frame: np.ndarray, privileged: Mapping[str, Any], action_dim: int | None = None) -> None:
        """Start an episode from the state after reset (``frame`` is always kept)."""
        self._clear()
        self._action_dim = action_dim
        self._add_row(None, 0.0, privileged, False)
        self.add_frame(frame)

    def step(self, action: np.ndarray, reward: float, privileged: Mapping[str, Any], success: bool,
             frame: np.ndarray | None = None) -> None:
        self._add_row(np.asarray(action, dtype=np.float32), float(reward), privileged, bool(success))
        if frame is not None:
            self.add_frame(frame)

    def add_frame(self, frame: np.ndarray) -> None:
        """Keep ``frame`` as the view of the current step (replaces one already kept for this step)."""
        frame = np.asarray(frame, dtype=np.uint8)
        check_tiled(frame.shape, self.views)
        frame = resize_views(frame, self.image_size, n_views(self.views))
        if self._frame_steps and self._frame_steps[-1] == self.t:
            self._frames[-1] = frame
        else:
            self._frames.append(frame)
            self._frame_steps.append(self.t)

    def _add_row(self, action: np.ndarray | None, reward: float, p: Mapping[str, Any], success: bool) -> None:
        t = len(self._rows)
        for ev in p.get("events") or []:
            if ev not in self._seen_events:
                self._seen_events.append(ev)
                self._events.append({"step": t, "event": str(ev)})
        self._rows.append({"step": t, "action": action, "progress": float(p.get("progress", 0.0)),
                           "failed": bool(p.get("failed", False)), "reward": reward, "success": success,
                           "stage": str(p.get("stage", ""))})

    def finish(self, episode_id: str, meta: Mapping[str, Any], final_frame: np.ndarray | None = None) -> Episode:
        """Close the episode: keep ``final_frame`` for the last step if given, and build the Episode."""
        if final_frame is not None and (not self._frame_steps or self._frame_steps[-1] != self.t):
            self.add_frame(final_frame)
        actions = [r["action"] for r in self._rows[1:]]
        adim = len(actions[0]) if actions else (self._action_dim or 0)
        action = np.zeros((len(self._rows), adim), np.float32)
        if actions:
            action[1:] = np.stack(actions)
        table = {
            "step": np.arange(len(self._rows), dtype=np.int32),
            "action": action,
            "progress": np.array([r["progress"] for r in self._rows], np.float32),
            "failed": np.array([r["failed"] for r in self._rows], bool),
            "reward": np.array([r["reward"] for r in self._rows], np.float32),
            "success": np.array([r["success"] for r in self._rows], bool),
            "stage": np.array([r["stage"] for r in self._rows], dtype=str),
        }
        failed_steps = np.flatnonzero(table["failed"])
        meta = dict(meta)
        meta.update({
            "episode_id": episode_id,
            "n_steps": len(self._rows) - 1,
            "n_frames": len(self._frames),
            "frame_every": self.frame_every,
            "image_size": self.image_size,
            "views": list(self.views),
            "events": list(self._events),
            "failure_step": int(failed_steps[0]) if len(failed_steps) else None,
            "success": bool(table["success"][-1]),
            "ever_success": bool(table["success"].any()),
            "final_progress": float(table["progress"][-1]),
        })
        meta.setdefault("outcome", "success" if meta["success"] else
                        "failure" if len(failed_steps) else "incomplete")
        return Episode(episode_id, meta, np.stack(self._frames), np.array(self._frame_steps, np.int32), table)
