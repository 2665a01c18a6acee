"""Online critic refresh: fine-tune the compact critic on the agent's own episodes while the agent trains, and
relabel the replay buffer with the refreshed critic.

Why: an agent trained on a fixed learned critic finds states the critic overrates and farms them (the exploit
that ``critic/oracle_bias`` shows climbing; docs/results/README.md). Fine-tuning the critic once, offline, on an
earlier agent's episodes patches that agent's blind spot and not the next one's. Here the critic keeps learning
from the states the current agent visits, labelled from privileged sim state like every other critic training
set in this project (in the field's terms: a learned reward model with a scripted teacher answering its
labelling queries, as in preference-based RL).

How, every ``every`` env steps (:class:`CriticRefresher`):

1. the episodes finished since the last refresh are scored with the current critic first: their error is the
   critic's error on fresh agent states it never trained on (``refresh/fresh_mae``, ``refresh/fresh_bias``, and
   ``refresh/fresh_bias_late`` where the oracle says the task is at least half done);
2. the critic takes ``grad_steps`` AdamW steps on the stored episodes (half of each batch from the fresh ones;
   with ``rehearsal_data``, a share of each batch from labelled episodes of the data it was trained on before,
   so that it keeps reading the stages the agent has not reached yet);
3. every stored episode is re-scored, and the shaping term of each of its transitions still in the replay buffer
   is recomputed from the new potentials: ``reward += critic_weight * (new_shaping - old_shaping)``. The env's
   reward, weights and any termination penalty stay as they were; only the critic's part changes, so
   potential-based shaping keeps its guarantee under the new critic.

An episode that was running during a refresh is relabelled when it ends, so no episode in the buffer mixes two
critics' potentials. What is not relabelled: transitions of episodes that were running when a run was killed
(their frames die with the process), and episodes evicted from the store (``max_episodes``) while still in the
buffer. Both keep the reward they were given.
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError
from primo_loop.tracker import EpisodeTracker, TrackerConfig, replay_schedule, shaping_term
from primo_loop.training.refresh_config import STATE_PREFIX, RefreshConfig  # noqa: F401 - re-exported here
from primo_loop.training.refresh_state import RefresherState

logger = logging.getLogger(__name__)

#: ``refresh/fresh_bias_late`` is the fresh error where the oracle says at least this much progress: the task's
#: second half (on Lift, grasping and lifting), the stages an agent reaches last and a mean over every query hides.
LATE_PROGRESS = 0.5


@dataclass
class _Episode:
    arrays: Any  # training.compact.EpisodeArrays at the critic's resolution
    length: int  # env steps taken (the last transition's step)
    fresh: bool = True  # not yet trained on
    labelled: bool = True  # its labels may be trained on (the labelling budget drew it)


class CriticRefresher(RefresherState):
    """Keeps the agent's episodes, refreshes a compact critic on them, and relabels the replay buffer.

    Args:
        critic: a :class:`~primo_loop.critics.compact.CompactCritic` (the one in the loop; it is trained in place).
        tracker: the in-loop :class:`TrackerConfig` (query schedule, shaping mode, gamma, critic weight).
        config: a :class:`RefreshConfig`.
        buffer_size, n_envs: shape of the replay buffer whose rewards are relabelled.

    Raises:
        ConfigError: the critic cannot be trained here (not a compact critic) or the shaping mode is ``none``.
    """

    def __init__(self, critic: Any, tracker: TrackerConfig, config: RefreshConfig, buffer_size: int, n_envs: int):
        from primo_loop.critics.base import capabilities

        if not capabilities(critic).refreshable:
            raise ConfigError(f"Online critic refresh trains the compact critic; {getattr(critic, 'name', critic)!r} "
                              "cannot be trained in the loop (use --critic compact)")
        if config.every < 1:
            raise ConfigError(f"Expected refresh option `every` >= 1 for a refresher, actually: {config.every!r}")
        if tracker.shaping == "none":
            raise ConfigError("Online critic refresh relabels the critic's shaping term; shaping is 'none'")
        from primo_loop.training.compact import TrainConfig

        self.critic, self.tracker, self.config = critic, tracker, config
        self.train_config = TrainConfig(
            data=["<online>"], batch_episodes=config.batch_episodes, queries_per_episode=config.queries_per_episode,
            frame_every=int(tracker.frame_every), stride_jitter=False, failure_weight=config.failure_weight,
            aux_weight=config.aux_weight, augment=config.augment, model=critic.config)
        self.episodes: OrderedDict[int, _Episode] = OrderedDict()
        # what each replay-buffer slot holds: episode id (-1: none), step within it, the shaping it was given
        self.slot_episode = np.full((buffer_size, n_envs), -1, np.int64)
        self.slot_step = np.zeros((buffer_size, n_envs), np.int32)
        self.slot_shaping = np.zeros((buffer_size, n_envs), np.float32)
        self.refreshes = 0
        self.next_refresh = int(config.every)
        self.relabelled = 0
        self.history: list[dict[str, float]] = []  # each refresh's statistics
        self._stale_running: set[int] = set()  # episodes that were running during the last refresh
        self._pending: set[int] = set()  # finished episodes to relabel once their last transition is stored
        self._optimizer = None
        self.rehearsal = self._load_rehearsal()

    def _load_rehearsal(self) -> list:
        """The labelled episodes of ``config.rehearsal_data`` at the critic's resolution (none without it)."""
        if not self.config.rehearsal_data:
            return []
        from primo_loop.errors import DatasetError
        from primo_loop.training.compact import load_episodes

        missing = [d for d in self.config.rehearsal_data if not Path(d).is_dir()]
        if missing:
            raise DatasetError(f"Rehearsal data folder(s) not found: {', '.join(missing)} (collect them with "
                               "scripts/collect.py)")
        episodes, skipped = load_episodes(self.config.rehearsal_data, self.critic.config.image_size,
                                          views=_views_read(self.critic.config, self.config.rehearsal_data))
        if not episodes:
            raise DatasetError(f"No usable episodes in the rehearsal data {self.config.rehearsal_data} "
                               f"({skipped} skipped)")
        logger.info("critic refresh rehearses %d episodes from %s", len(episodes),
                    ", ".join(self.config.rehearsal_data))
        return episodes

    # -- recording ----------------------------------------------------------------------------------
    def add_episode(self, env_index: int, episode_id: int, tracker: EpisodeTracker) -> None:
        """The vector wrapper's episode sink: keep a finished episode's frames and privileged labels."""
        from primo_loop.training.compact import EpisodeArrays

        if not tracker.frames:
            return
        labels = tracker.frame_privileged
        if any(p is None for p in labels):
            raise ConfigError("Online critic refresh labels episodes from the env's privileged progress "
                              "(info['oracle/progress']); this env does not report it")
        arrays = EpisodeArrays(
            episode_id=str(episode_id), instruction=tracker.instruction, task="", robot="",
            frames=self.critic.frames_for(np.stack(tracker.frames), tracker.views),  # each view resized
            frame_steps=np.asarray(tracker.frame_steps, np.int64),
            progress=np.array([p["progress"] for p in labels], np.float32),
            failed=np.array([bool(p.get("failed", False)) for p in labels]),
            outcome="", failure_step=None, frame_every=int(self.tracker.frame_every))
        budget = self.config.label_fraction
        labelled = budget >= 1.0 or np.random.default_rng([self.config.seed, episode_id]).random() < budget
        self.episodes[episode_id] = _Episode(arrays, int(tracker.step), labelled=bool(labelled))
        while len(self.episodes) > self.config.max_episodes:
            self.episodes.popitem(last=False)
        if episode_id in self._stale_running:
            self._stale_running.discard(episode_id)
            self._pending.add(episode_id)

    def record(self, pos: int, infos: list[dict[str, Any]]) -> None:
        """Note which episode and step the transitions about to be stored at buffer row ``pos`` belong to."""
        for i, info in enumerate(infos):
            self.slot_episode[pos, i] = int(info.get("critic/episode", -1))
            self.slot_step[pos, i] = int(info.get("critic/step", 0))
            self.slot_shaping[pos, i] = float(info.get("critic/shaping", 0.0))

    def due(self, num_timesteps: int) -> bool:
        """Whether :meth:`on_step` at ``num_timesteps`` will relabel or refresh (read the buffer's rewards and
        use the critic): an asynchronous loop first settles every earlier transition into the buffer."""
        return bool(self._pending) or self._refresh_due(num_timesteps)

    def _refresh_due(self, num_timesteps: int) -> bool:
        return num_timesteps >= self.next_refresh and self.labelled_count >= self.config.min_episodes

    def on_step(self, num_timesteps: int, pos: int, infos: list[dict[str, Any]], rewards: np.ndarray,
                running: list[int], record: bool = True) -> dict[str, float] | None:
        """Per env step, before the step's transitions are stored at row ``pos`` of ``rewards``.

        Relabels episodes whose last transition is now stored, refreshes when due, then records the step
        (``record=False``: the buffer calls :meth:`record` itself when it stores a row, as a buffer that holds
        rows back for an asynchronous critic does; every earlier step's row must be stored when :meth:`due`).
        Returns the refresh's statistics when one ran.
        """
        if self._pending:
            self.relabel(sorted(self._pending), rewards)
            self._pending.clear()
        stats = None
        if self._refresh_due(num_timesteps):
            stats = self.refresh(rewards)
            self.next_refresh = (num_timesteps // self.config.every + 1) * self.config.every
            # this step's transitions are not stored yet: their episodes are relabelled on a later step
            now = {int(info.get("critic/episode", -1)) for info in infos}
            self._pending |= {e for e in now if e in self.episodes}
            self._stale_running = set(running)
        if record:
            self.record(pos, infos)
        return stats

    # -- scoring and relabelling --------------------------------------------------------------------
    def potentials(self, episode_ids: list[int], batch_frames: int = 512) -> dict[int, np.ndarray]:
        """Each episode's potential at every step ``0..length`` under the current critic (held between queries).

        The queries are the ones the loop made (:func:`~primo_loop.tracker.replay_schedule`); an episode's frames
        are encoded once for all of its queries (:meth:`CompactCritic.score`), about ``batch_frames`` frames a call.
        """
        from primo_loop.tracker import sample_clip_indices

        cfg = self.tracker
        clip_len = self.critic.config.clip_len
        out: dict[int, np.ndarray] = {}
        chunk: list[int] = []

        def flush() -> None:
            frames, gather, texts, where = [], [], [], []
            base = 0
            for eid in chunk:
                a = self.episodes[eid].arrays
                for step, cur, clip in replay_schedule(a.frame_steps, cfg.critic_every, cfg.frame_every,
                                                       cfg.clip_len, cfg.window):
                    if len(clip) != clip_len:  # as the critic resamples a clip of another length
                        clip = [clip[i] for i in sample_clip_indices(len(clip), clip_len)]
                    gather.append([base, *(base + c for c in clip), base + cur])
                    texts.append(a.instruction)
                    where.append((eid, step))
                frames.append(a.frames)
                base += len(a.frames)
            progress, _ = self.critic.score(np.concatenate(frames), np.asarray(gather, np.int64), texts)
            answered: dict[int, dict[int, float]] = {}
            for (eid, step), p in zip(where, progress):
                answered.setdefault(eid, {})[step] = float(p)
            for eid in chunk:
                phi = np.zeros(self.episodes[eid].length + 1, np.float64)
                last = 0.0
                for t in range(len(phi)):
                    p = answered.get(eid, {}).get(t)
                    if p is not None and math.isfinite(p):  # an unreadable answer holds phi, as in the loop
                        last = min(1.0, max(0.0, p))
                    phi[t] = last
                out[eid] = phi
            chunk.clear()

        n = 0
        for eid in episode_ids:
            chunk.append(eid)
            n += len(self.episodes[eid].arrays.frames)
            if n >= batch_frames:
                flush()
                n = 0
        if chunk:
            flush()
        return out

    def relabel(self, episode_ids: list[int], rewards: np.ndarray,
                phis: dict[int, np.ndarray] | None = None) -> int:
        """Recompute the shaping of these episodes' transitions in the buffer; returns how many changed.
        ``phis``: their potentials under the current critic, if already computed."""
        ids = [e for e in episode_ids if e in self.episodes]
        if not ids:
            return 0
        phis = self.potentials(ids) if phis is None else phis
        rows, cols = np.nonzero(np.isin(self.slot_episode, ids))
        cfg = self.tracker
        n = 0
        for r, c in zip(rows, cols):
            phi = phis[int(self.slot_episode[r, c])]
            t = int(self.slot_step[r, c])
            if not 1 <= t < len(phi):
                continue
            new = shaping_term(cfg.shaping, phi[t - 1], phi[t], cfg.gamma)
            rewards[r, c] += cfg.critic_weight * (new - float(self.slot_shaping[r, c]))
            self.slot_shaping[r, c] = new
            n += 1
        self.relabelled += n
        return n

    def query_points(self, episode_ids: list[int]) -> list[tuple[int, int, int]]:
        """``(episode id, env step, current frame's index)`` of every query the loop made in these episodes."""
        cfg = self.tracker
        return [(eid, step, cur) for eid in episode_ids for step, cur, _ in replay_schedule(
            self.episodes[eid].arrays.frame_steps, cfg.critic_every, cfg.frame_every, cfg.clip_len, cfg.window)]

    def errors(self, episode_ids: list[int], phis: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Critic minus oracle progress at every query of these episodes (0-1 scale), in :meth:`query_points`'
        order. ``phis``: their potentials under the current critic, if already computed."""
        if not episode_ids:
            return np.zeros(0)
        phis = self.potentials(episode_ids) if phis is None else phis
        return np.asarray([phis[eid][step] - self.episodes[eid].arrays.progress[cur]
                           for eid, step, cur in self.query_points(episode_ids)])

    def labels(self, episode_ids: list[int]) -> np.ndarray:
        """The oracle's progress at every query of these episodes, in :meth:`query_points`' order."""
        return np.asarray([self.episodes[eid].arrays.progress[cur] for eid, _, cur in self.query_points(episode_ids)])

    # -- training -----------------------------------------------------------------------------------
    def refresh(self, rewards: np.ndarray) -> dict[str, float]:
        """Score the fresh episodes, fine-tune the critic on the stored ones, relabel the buffer."""
        import time

        import torch

        from primo_loop.training.compact import Batcher, forward_batch, losses

        t0 = time.time()
        ids = list(self.episodes)
        fresh = [e for e in ids if self.episodes[e].fresh]
        before = self.errors(fresh)
        late = self.labels(fresh) >= LATE_PROGRESS if fresh else np.zeros(0, bool)
        cfg, tc = self.config, self.train_config
        model = self.critic.model
        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        pool = [e for e in ids if self.episodes[e].labelled]  # what the labelling budget lets it train on
        # the rehearsal episodes sit after the agent's in the batcher's list
        batcher = Batcher(tc, [self.episodes[e].arrays for e in pool] + self.rehearsal)
        pos = {e: k for k, e in enumerate(pool)}
        fresh_idx = np.array([pos[e] for e in fresh if e in pos] or [0])
        rng = np.random.default_rng([cfg.seed, self.refreshes])
        torch.manual_seed(cfg.seed * 100003 + self.refreshes)
        n_fresh = int(round(cfg.batch_episodes * cfg.fresh_fraction)) if any(e in pos for e in fresh) else 0
        n_old = int(round(cfg.batch_episodes * cfg.rehearsal_fraction)) if self.rehearsal else 0
        n_fresh = min(n_fresh, cfg.batch_episodes - n_old)
        model.train()
        loss_sum = 0.0
        for _ in range(cfg.grad_steps):
            parts = [rng.choice(fresh_idx, n_fresh), rng.integers(0, len(pool), cfg.batch_episodes - n_fresh - n_old)]
            if n_old:
                parts.append(len(pool) + rng.integers(0, len(self.rehearsal), n_old))
            pick = np.concatenate(parts).astype(int)
            batch = batcher.build(pick.tolist(), rng, train=True)
            loss, _, _, _ = losses(forward_batch(model, batch, tc), batch, tc)
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            self._optimizer.step()
            loss_sum += float(loss.item())
        self.critic.weights_changed()
        phis = self.potentials(ids)  # once, for the fit on the fresh episodes and for relabelling them all
        after = self.errors(fresh, phis)
        for e in fresh:
            self.episodes[e].fresh = False
        changed = self.relabel(ids, rewards, phis)
        self.refreshes += 1
        stats = {"refreshes": self.refreshes, "episodes": len(ids), "fresh_episodes": len(fresh),
                 "labelled_episodes": len(pool), "rehearsal_episodes": len(self.rehearsal),
                 "fresh_mae": _mean(np.abs(before)), "fresh_bias": _mean(before),
                 "fresh_bias_late": _mean(before[late]), "fresh_late_queries": int(late.sum()),
                 "fit_mae": _mean(np.abs(after)), "loss": loss_sum / cfg.grad_steps,
                 "relabelled": changed, "seconds": round(time.time() - t0, 2)}
        self.history.append(stats)
        logger.info("critic refresh %d: %d episodes (%d fresh), fresh MAE %.3f -> %.3f after, %d transitions "
                    "relabelled, %.1f s", self.refreshes, len(ids), len(fresh), stats["fresh_mae"],
                    stats["fit_mae"], changed, stats["seconds"])
        return stats

    @property
    def labelled_count(self) -> int:
        """Stored episodes the labelling budget lets the critic train on."""
        return sum(ep.labelled for ep in self.episodes.values())

    @property
    def next_episode_id(self) -> int:
        """An id above every episode this refresher has seen or mapped (for a resumed wrapper to count on from)."""
        seen = max(self.episodes, default=-1)
        return int(max(seen, int(self.slot_episode.max(initial=-1)))) + 1


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def _views_read(model: Any, dirs: list[str]) -> list[str] | None:
    """The cameras of the data ``dirs`` that a critic of config ``model`` reads: its views, or the one camera it
    was trained on (``train_info["camera"]``); None (all of them) for a critic of one unnamed view or data of one
    unnamed view (its camera cannot be checked)."""
    from primo_loop.data.dataset import EpisodeDataset

    want = list(model.views) or ([model.train_info["camera"]] if model.train_info.get("camera") else None)
    if want is None or all(not EpisodeDataset(d).views for d in dirs):
        return None
    return want
