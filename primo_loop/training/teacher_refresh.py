"""Teacher-labelled online refresh: the student of a cascade critic learns from its teacher's verdicts.

The online refresh of :mod:`primo_loop.training.online` labels the agent's episodes from privileged simulator
state, which a real robot or a real-video dataset does not have. Here the labels are the teacher's verdicts that a
:class:`~primo_loop.critics.cascade.CascadeCritic` collected (:class:`~primo_loop.critics.cascade.Label`: the query
as the student saw it, the teacher's progress and failure probability), and nothing else trains the student:
no privileged label reaches it except through the teacher's answers.

:class:`TeacherRefresher` is the online refresher with its labels swapped: every ``RefreshConfig.every`` env steps
it takes the labels that arrived, fine-tunes the (compact) student on them (:func:`fit_compact`: half of each batch
from the fresh labels), and relabels the replay buffer with the refreshed student exactly as the privileged refresher
does (its episodes, their frames and the buffer map are the parent's). Where the env reports privileged progress,
the student's error against it is measured (``fresh_mae``, ``fit_mae``; ``frozen_mae`` for the student as it
started, on the same states), never trained on.

Differences from :class:`~primo_loop.training.online.CriticRefresher`: ``min_episodes`` counts teacher labels
(a refresh waits for that many), ``label_fraction`` does not apply (the teacher's share is the labelling budget),
and ``rehearsal_data`` is refused (it holds privileged labels).
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError
from primo_loop.tracker import EpisodeTracker, TrackerConfig
from primo_loop.training.online import CriticRefresher, _Episode
from primo_loop.training.refresh_config import RefreshConfig

logger = logging.getLogger(__name__)


@dataclass
class Sample:
    """A teacher label as the compact student reads it.

    Attributes:
        frames: uint8 ``[k, S, S, 3]`` at the student's resolution (the query's distinct frames).
        gather: ``[clip_len + 2]``: ``[initial, clip..., current]`` as indices into ``frames``.
        instruction: the task in words.
        progress: the teacher's progress (0-1).
        failure: the teacher's failure probability, or None when it gave none.
        fresh: not yet trained on.
    """

    frames: np.ndarray
    gather: np.ndarray
    instruction: str
    progress: float
    failure: float | None
    fresh: bool = True


def encode_labels(student: Any, labels: Sequence[Any]) -> list[Sample]:
    """The labels of a cascade as samples at the student's resolution (the inputs its ``assess`` builds)."""
    out = []
    for label in labels:
        frames, gather = student._frames([label.query])  # the student's own preprocessing: train as it infers
        out.append(Sample(frames=frames, gather=gather[0], instruction=label.query.instruction,
                          progress=float(label.teacher.progress), failure=label.teacher.failure_prob))
    return out


def _stack(samples: Sequence[Sample], rng: np.random.Generator | None, augment: bool):
    frames, gather, base = [], [], 0
    for s in samples:
        fr = s.frames
        if augment and rng is not None:
            from primo_loop.training.compact_batches import augment_episode

            fr = augment_episode(fr, rng)
        frames.append(fr)
        gather.append(s.gather + base)
        base += len(fr)
    return np.concatenate(frames), np.stack(gather).astype(np.int64)


def student_errors(student: Any, samples: Sequence[Sample]) -> np.ndarray:
    """Student minus teacher progress on each sample (0-1 scale), under the student's current weights."""
    if not samples:
        return np.zeros(0)
    frames, gather = _stack(samples, None, False)
    progress, _ = student.score(frames, gather, [s.instruction for s in samples])
    return np.asarray(progress, np.float64) - np.array([s.progress for s in samples])


def fit_compact(student: Any, samples: Sequence[Sample], fresh: Sequence[int], config: RefreshConfig,
                rng: np.random.Generator, optimizer: Any = None) -> tuple[float, Any]:
    """``config.grad_steps`` AdamW steps of a compact student on teacher samples; returns (mean loss, optimizer).

    Each batch holds ``batch_episodes * queries_per_episode`` samples, ``fresh_fraction`` of them from the indices
    in ``fresh``. Losses: progress as a soft-label BCE against the teacher's progress, failure BCE (weight
    ``failure_weight``) against the teacher's failure probability where it gave one.
    """
    import torch
    import torch.nn.functional as F

    from primo_loop.critics.compact import sequence_layout, text_batch

    model, cfg = student.model, student.config
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    size = config.batch_episodes * config.queries_per_episode
    n_fresh = int(round(size * config.fresh_fraction)) if len(fresh) else 0
    roles, times = sequence_layout(cfg.clip_len)
    model.train()
    total = 0.0
    for _ in range(config.grad_steps):
        pick = np.concatenate([rng.choice(np.asarray(fresh), n_fresh) if n_fresh else np.zeros(0, int),
                               rng.integers(0, len(samples), size - n_fresh)]).astype(int)
        batch = [samples[i] for i in pick]
        frames, gather = _stack(batch, rng, config.augment)
        feats = model.encoder(torch.from_numpy(frames))
        g = torch.from_numpy(gather)
        shape = tuple(g.shape)
        ids, offsets = text_batch([s.instruction for s in batch], cfg.vocab_buckets)
        p_logit, f_logit = model.forward_tokens(
            feats[g], torch.from_numpy(np.ascontiguousarray(np.broadcast_to(roles, shape))),
            torch.from_numpy(np.ascontiguousarray(np.broadcast_to(times, shape))), ids, offsets)
        loss = F.binary_cross_entropy_with_logits(p_logit, torch.tensor([s.progress for s in batch]))
        has = [k for k, s in enumerate(batch) if s.failure is not None]
        if has and config.failure_weight:
            target = torch.tensor([float(batch[k].failure) for k in has])
            loss = loss + config.failure_weight * F.binary_cross_entropy_with_logits(f_logit[has], target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += float(loss.item())
    student.weights_changed()
    return total / max(1, config.grad_steps), optimizer


class TeacherRefresher(CriticRefresher):
    """Online refresh of a cascade's student from its teacher's labels, with the replay-buffer relabelling of
    :class:`~primo_loop.training.online.CriticRefresher` (module docstring).

    Args:
        cascade: the :class:`~primo_loop.critics.cascade.CascadeCritic` in the loop (its student must be
            refreshable: the compact critic).
        tracker, config, buffer_size, n_envs: as for :class:`~primo_loop.training.online.CriticRefresher`.
        max_labels: teacher samples kept for training (the oldest go first).

    Raises:
        ConfigError: the student cannot be trained, or ``config.rehearsal_data`` is set.
    """

    def __init__(self, cascade: Any, tracker: TrackerConfig, config: RefreshConfig, buffer_size: int,
                 n_envs: int, max_labels: int = 5000):
        if config.rehearsal_data:
            raise ConfigError("Teacher-labelled refresh trains the student on its teacher's labels only; "
                              "rehearsal_data holds privileged labels: drop --refresh.rehearsal-data")
        if not hasattr(cascade, "take_labels"):
            raise ConfigError(f"Expected a cascade critic (primo_loop.critics.cascade) for teacher-labelled refresh, "
                              f"actually: {type(cascade).__name__}")
        import copy

        super().__init__(cascade.student, tracker, config, buffer_size, n_envs)
        self.cascade = cascade
        # the student as it started (never refreshed): its error on the same fresh states is the baseline
        self.frozen = copy.deepcopy(cascade.student)
        self.samples: deque[Sample] = deque(maxlen=max_labels)

    @property
    def labelled_count(self) -> int:
        """Teacher labels available to train on (a refresh waits for ``min_episodes`` of them)."""
        return len(self.samples) + self.cascade.pending_labels

    def add_episode(self, env_index: int, episode_id: int, tracker: EpisodeTracker) -> None:
        """Keep a finished episode's frames for relabelling; its privileged progress, where the env reports it, is
        kept for the error measurements only (NaN where it does not)."""
        from primo_loop.training.compact import EpisodeArrays

        if not tracker.frames:
            return
        labels = tracker.frame_privileged
        arrays = EpisodeArrays(
            episode_id=str(episode_id), instruction=tracker.instruction, task="", robot="",
            frames=self.critic.frames_for(np.stack(tracker.frames), tracker.views),  # each view resized
            frame_steps=np.asarray(tracker.frame_steps, np.int64),
            progress=np.array([math.nan if p is None else p["progress"] for p in labels], np.float32),
            failed=np.zeros(len(labels), bool), outcome="", failure_step=None,
            frame_every=int(self.tracker.frame_every))
        self.episodes[episode_id] = _Episode(arrays, int(tracker.step), labelled=False)
        while len(self.episodes) > self.config.max_episodes:
            self.episodes.popitem(last=False)
        if episode_id in self._stale_running:
            self._stale_running.discard(episode_id)
            self._pending.add(episode_id)

    def take(self) -> list[Sample]:
        """Move the labels the cascade collected into the training samples; returns the new ones."""
        new = encode_labels(self.critic, self.cascade.take_labels())
        self.samples.extend(new)
        return new

    def fit(self, fresh: list[int]) -> float:
        """Fine-tune the student on the samples (``fresh``: indices of the new ones); returns the mean loss."""
        import torch

        rng = np.random.default_rng([self.config.seed, self.refreshes])
        torch.manual_seed(self.config.seed * 100003 + self.refreshes)
        loss, self._optimizer = fit_compact(self.critic, list(self.samples), fresh, self.config, rng,
                                            self._optimizer)
        return loss

    def refresh(self, rewards: np.ndarray) -> dict[str, float]:
        """Take the teacher's new labels, fine-tune the student on all kept ones, relabel the buffer."""
        t0 = time.time()
        new = self.take()
        samples = list(self.samples)
        fresh_idx = list(range(len(samples) - len(new), len(samples)))
        ids = list(self.episodes)
        fresh_eps = [e for e in ids if self.episodes[e].fresh]
        gap_before = student_errors(self.critic, new)
        priv_before = self.errors(fresh_eps)
        priv_frozen = self.frozen_errors(fresh_eps)
        loss = self.fit(fresh_idx) if samples else math.nan
        gap_after = student_errors(self.critic, new)
        phis = self.potentials(ids) if ids else {}
        priv_after = self.errors(fresh_eps, phis)
        for e in fresh_eps:
            self.episodes[e].fresh = False
        changed = self.relabel(ids, rewards, phis) if ids else 0
        self.refreshes += 1
        stats = {"refreshes": self.refreshes, "labels": len(samples), "fresh_labels": len(new),
                 "labels_lost": int(self.cascade.labels_lost), "episodes": len(ids), "fresh_episodes": len(fresh_eps),
                 "teacher_mae_before": _nanmean(np.abs(gap_before)), "teacher_mae_after": _nanmean(np.abs(gap_after)),
                 "fresh_mae": _nanmean(np.abs(priv_before)), "fresh_bias": _nanmean(priv_before),
                 "fit_mae": _nanmean(np.abs(priv_after)), "frozen_mae": _nanmean(np.abs(priv_frozen)),
                 "loss": loss, "relabelled": changed,
                 "seconds": round(time.time() - t0, 2)}
        self.history.append(stats)
        logger.info("teacher refresh %d: %d labels (%d fresh), student-teacher MAE %.3f -> %.3f, %d transitions "
                    "relabelled, %.1f s", self.refreshes, len(samples), len(new), stats["teacher_mae_before"],
                    stats["teacher_mae_after"], changed, stats["seconds"])
        return stats

    def frozen_errors(self, episode_ids: list[int]) -> np.ndarray:
        """The never-refreshed student's error against privileged progress at the same queries as :meth:`errors`."""
        live, self.critic = self.critic, self.frozen
        try:
            return self.errors(episode_ids)
        finally:
            self.critic = live

    def state_dict(self) -> dict[str, Any]:
        # the labels arrived since the last refresh are still the cascade's: saved too, or a resumed run would
        # train its next refresh without them
        return {**super().state_dict(), "teacher_samples": list(self.samples),
                "teacher_untaken": self.cascade.peek_labels()}

    def load(self, path: str | Path) -> None:
        import torch

        super().load(path)
        saved = torch.load(path, map_location="cpu", weights_only=False)
        self.samples.clear()
        self.samples.extend(saved.get("teacher_samples", []))
        self.cascade.restore_labels(saved.get("teacher_untaken", []))


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan
