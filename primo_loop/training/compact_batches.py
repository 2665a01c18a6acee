"""Compact-critic training inputs: the run's options, episodes in memory, and batches of tracker-like queries.

Queries are built the way the in-loop tracker builds them: frames are kept every ``frame_every`` env steps
(and at reset); a query at a kept frame samples its clip uniformly from the frames kept so far with
:func:`primo_loop.tracker.sample_clip_indices`. A batch takes a few episodes, encodes each of their kept frames
once with the CNN, and builds every query of those episodes from the shared features (a frame is encoded once
per batch however many queries use it), which is what makes CPU training fit in minutes. The training loop
over these batches is :mod:`primo_loop.training.compact`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.critics.compact import CompactConfig, sequence_layout, text_batch
from primo_loop.data.dataset import EpisodeDataset
from primo_loop.errors import ConfigError, DatasetError
from primo_loop.tracker import sample_clip_indices
from primo_loop.views import n_views, resize_views, split_views, tile_views

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Options of a compact-critic training run.

    Attributes:
        data: dataset folders to train on.
        out: checkpoint folder (config.json + weights.pt of the best epoch, train_state.pt, train_log.jsonl).
        epochs: passes over the training episodes.
        seed: seed of everything random (split, batches, augmentation, init).
        batch_episodes: episodes per batch (all their queries go in the batch).
        queries_per_episode: at most this many queries per episode per batch (random kept frames).
        lr: AdamW peak learning rate (cosine decay after a short warm-up).
        weight_decay: AdamW weight decay.
        val_fraction: share of episodes held out for validation (by episode, stratified by task/robot).
        frame_every: the in-loop frame stride in env steps (the tracker's default: critic_every = 10).
        stride_jitter: also train with half and double ``frame_every`` (other critic cadences).
        failure_weight: weight of the failure BCE next to the progress loss (soft-label BCE).
        aux_weight: weight of the per-frame progress/failure losses (dense auxiliary supervision).
        augment: per-episode colour and shift augmentation.
        threads: torch intra-op threads (None: torch's default, which follows OMP_NUM_THREADS).
        tasks / robots: train only on these (default: everything in the data).
        views: train on these of the data's views, in this order (default: all of them); one camera of
            multi-view data gives a one-view critic that reads that camera of a tiled frame.
        max_minutes: stop after the epoch during which this much wall time has passed.
        init: warm start from this checkpoint (a folder or a shipped name, e.g. "default"; fine-tuning);
            ``model`` must match its architecture.
            Its weights are scored on the validation episodes first, as epoch 0, and stay the checkpoint
            unless an epoch beats them.
        model: architecture (CompactConfig fields).
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/compact"
    epochs: int = 20
    seed: int = 0
    batch_episodes: int = 8
    queries_per_episode: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    frame_every: int = 10
    stride_jitter: bool = True
    failure_weight: float = 0.5
    aux_weight: float = 0.5
    augment: bool = True
    threads: int | None = None
    views: list[str] | None = None
    tasks: list[str] | None = None
    robots: list[str] | None = None
    max_minutes: float | None = None
    init: str | None = None
    model: CompactConfig = field(default_factory=CompactConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = CompactConfig.from_dict(self.model)
        if not self.data:
            raise ConfigError("Expected at least one dataset folder in `data` (--data DIR)")
        for name in ("epochs", "batch_episodes", "queries_per_episode", "frame_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` >= 1, actually: {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"Expected 0 <= `val_fraction` < 1, actually: {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d


# ------------------------------------------------------------------------------------------------- data

@dataclass
class EpisodeArrays:
    """One episode in memory, at the model's resolution."""

    episode_id: str
    instruction: str
    task: str
    robot: str
    frames: np.ndarray  # uint8 [K, S, V*S, 3]: V views tiled (primo_loop.views), each S square
    frame_steps: np.ndarray  # [K]
    progress: np.ndarray  # [K] at the kept frames, 0-1
    failed: np.ndarray  # [K] bool
    outcome: str
    failure_step: int | None
    frame_every: int = 1  # the stride the frames were stored at (the last frame may be off it)
    views: tuple[str, ...] = ()  # camera names of a multi-view layout; () for one view


def load_episodes(dirs: Sequence[str | os.PathLike], image_size: int, tasks: Sequence[str] | None = None,
                  robots: Sequence[str] | None = None, progress_bar: bool = False,
                  views: Sequence[str] | None = None) -> tuple[list[EpisodeArrays], int]:
    """Load every usable episode of ``dirs`` into memory. Returns ``(episodes, skipped)``.

    ``views`` keeps these of the data's cameras, in this order (default: all); a name the data lacks is an error.

    An episode id already loaded from an earlier folder (two collections with overlapping seeds) is kept as
    ``<folder name>/<id>``, so the validation ids a checkpoint records name one episode each. Every folder must
    hold frames of the same views (each view is resized to ``image_size`` on its own).
    """
    out, skipped, seen, layouts = [], 0, set(), {}
    for d in dirs:
        ds = EpisodeDataset(d, tasks=tasks, robots=robots)  # checks that its episodes agree on their views
        layouts.setdefault(ds.views, str(d))
        if len(layouts) > 1:
            raise DatasetError("Expected every dataset folder to hold frames of the same views, actually: " + "; ".join(
                f"{list(v) or 'one view'} in {p}" for v, p in layouts.items()) + "; train on one view set at a time")
        keep = _view_indices(ds.views, views, d)
        ids = ds.ids
        it = ids
        if progress_bar:
            from tqdm import tqdm

            it = tqdm(ids, desc=f"load {Path(d).name}", unit="ep", leave=False)
        for eid in it:
            ep = ds.load(eid)
            if ep is None:
                continue
            m = ep.meta
            if eid in seen:
                logger.warning("episode id %s is in more than one dataset; the one in %s is recorded as %s/%s",
                               eid, d, Path(d).name, eid)
                eid = f"{Path(d).name}/{eid}"
            _check_labels(ep, Path(d) / "episodes" / ep.episode_id / "steps.npz")
            seen.add(eid)
            out.append(EpisodeArrays(
                episode_id=eid, instruction=m["instruction"], task=str(m.get("task")), robot=str(m.get("robot")),
                frames=_keep_views(resize_views(ep.frames, image_size, n_views(ds.views)), n_views(ds.views), keep),
                frame_steps=np.asarray(ep.frame_steps), views=ds.views if keep is None else tuple(views or ()),
                frame_every=int(m.get("frame_every") or _stride(ep.frame_steps)),
                progress=ep.progress_at_frames().astype(np.float32), failed=ep.failed_at_frames(),
                outcome=str(m.get("outcome")), failure_step=m.get("failure_step")))
        skipped += len(ds.skipped)
    if not out:
        raise DatasetError(f"No usable episodes in {list(map(str, dirs))}")
    return out, skipped


def _view_indices(have: tuple[str, ...], want: Sequence[str] | None, folder: Any) -> list[int] | None:
    """Positions of the ``want`` cameras among the data's, or None for all of them."""
    if want is None or tuple(want) == have:
        return None
    missing = [v for v in want if v not in have]
    if missing or not want:
        raise DatasetError(f"Expected views among the data's {list(have) or ['one unnamed view']} in {folder}, "
                           f"actually asked for {list(want)}")
    return [have.index(v) for v in want]


def _keep_views(frames: np.ndarray, count: int, keep: list[int] | None) -> np.ndarray:
    if keep is None:
        return frames
    return np.ascontiguousarray(tile_views(split_views(frames, count)[..., keep, :, :, :]))


def _check_labels(ep: Any, path: Path) -> None:
    """Raise DatasetError unless the episode's progress labels are finite numbers (a NaN label would train a NaN
    checkpoint)."""
    progress = np.asarray(ep.table["progress"], dtype=float)
    bad = np.flatnonzero(~np.isfinite(progress))
    if len(bad):
        raise DatasetError(f"{path}: expected finite progress labels, actually: {progress[bad[0]]} at step "
                           f"{int(bad[0])} ({len(bad)} non-finite of {len(progress)}); fix or remove this episode")


def _stride(frame_steps: np.ndarray) -> int:
    d = np.diff(frame_steps[:-1]) if len(frame_steps) > 2 else np.diff(frame_steps)
    return int(np.median(d)) if len(d) else 1


def split_episodes(episodes: Sequence[EpisodeArrays], val_fraction: float, seed: int
                   ) -> tuple[list[int], list[int]]:
    """Indices of training and validation episodes, held out per (task, robot) group."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(episodes):
        groups.setdefault((e.task, e.robot), []).append(i)
    train, val = [], []
    for key in sorted(groups):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction)) if len(idx) > 1 else 0
        if val_fraction > 0 and n_val == 0 and len(idx) >= 4:
            n_val = 1
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)


def kept_frames(frame_steps: np.ndarray, frame_every: int, phase: int = 0) -> np.ndarray:
    """Indices of the stored frames that an in-loop tracker with ``frame_every`` would have kept.

    The reset frame is always kept; then steps ``s`` with ``s % frame_every == phase``; the stored stride must
    divide them (frames at other steps are simply not there and are skipped).

    >>> kept_frames(np.array([0, 5, 10, 15, 20, 25]), 10).tolist()
    [0, 2, 4]
    >>> kept_frames(np.array([0, 5, 10, 15, 20, 25]), 10, phase=5).tolist()
    [0, 1, 3, 5]
    """
    keep = (frame_steps % frame_every) == phase
    keep[0] = True
    return np.flatnonzero(keep)


def query_layout(n_kept: int, j: int, clip_len: int) -> list[int]:
    """Positions (into the kept frames) of ``[initial, clip..., current]`` for a query at kept frame ``j``.

    >>> query_layout(5, 4, 3)
    [0, 0, 2, 4, 4]
    """
    clip = sample_clip_indices(j + 1, clip_len)
    return [0, *clip, j]


class Batcher:
    """Builds training/validation batches of queries from episodes in memory."""

    def __init__(self, cfg: TrainConfig, episodes: Sequence[EpisodeArrays]):
        self.cfg = cfg
        self.episodes = episodes
        self.roles, self.times = sequence_layout(cfg.model.clip_len)
        off = sorted({e.frame_every for e in episodes if cfg.frame_every % e.frame_every})
        if off:
            logger.warning("frame_every %d is not a multiple of the frame strides %s of some episodes; their "
                           "queries use fewer frames than the tracker's", cfg.frame_every, off)

    def strides(self, data_stride: int) -> list[int]:
        """In-loop frame strides to train with for an episode whose frames are stored every ``data_stride``."""
        f = self.cfg.frame_every
        if not self.cfg.stride_jitter:
            return [f]
        return sorted({s for s in (f // 2, f, 2 * f) if s >= data_stride and s % data_stride == 0} or {f})

    def build(self, ep_indices: Sequence[int], rng: np.random.Generator | None, train: bool) -> dict[str, Any]:
        """A batch: unique frames to encode, their per-query gather index, text, and labels."""
        cfg = self.cfg
        frames, gather, prog, fail, texts, meta = [], [], [], [], [], []
        frame_prog: list[np.ndarray] = []
        frame_fail: list[np.ndarray] = []
        base = 0
        for ei in ep_indices:
            e = self.episodes[ei]
            if train and rng is not None:
                c = e.frame_every
                f = int(rng.choice(self.strides(c)))
                phase = int(rng.integers(0, max(1, f // c))) * c if f % c == 0 else 0
            else:
                f, phase = cfg.frame_every, 0
            kept = kept_frames(e.frame_steps, f, phase)
            js = np.arange(len(kept))
            if train and rng is not None and len(js) > cfg.queries_per_episode:
                js = np.sort(rng.choice(js, cfg.queries_per_episode, replace=False))
            # encode only the kept frames some query uses
            used = sorted({p for j in js for p in query_layout(len(kept), int(j), cfg.model.clip_len)})
            pos = {p: i for i, p in enumerate(used)}
            fr = e.frames[kept[used]]
            frame_prog.append(e.progress[kept[used]])
            frame_fail.append(e.failed[kept[used]].astype(np.float32))
            if train and cfg.augment and rng is not None:
                fr = augment_episode(fr, rng)
            frames.append(fr)
            for j in js:
                gather.append([base + pos[p] for p in query_layout(len(kept), int(j), cfg.model.clip_len)])
                k = kept[j]
                prog.append(e.progress[k])
                fail.append(float(e.failed[k]))
                texts.append(e.instruction)
                meta.append((ei, int(e.frame_steps[k])))
            base += len(used)
        return {"frames": np.concatenate(frames), "gather": np.asarray(gather, np.int64),
                "progress": np.asarray(prog, np.float32), "failed": np.asarray(fail, np.float32),
                "frame_progress": np.concatenate(frame_prog).astype(np.float32),
                "frame_failed": np.concatenate(frame_fail), "texts": texts, "meta": meta}


def augment_episode(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same random colour change and shift for every frame of an episode (a camera/lighting change)."""
    x = frames.astype(np.float32)
    gain = rng.uniform(0.8, 1.2, size=3) * rng.uniform(0.85, 1.15)
    bias = rng.uniform(-20, 20, size=3)
    x = x * gain + bias
    if rng.random() < 0.2:  # occasional desaturation: robots and objects of other colours
        g = x.mean(axis=-1, keepdims=True)
        a = rng.uniform(0.3, 1.0)
        x = a * g + (1 - a) * x
    s = frames.shape[1]
    m = max(1, s // 16)
    dy, dx = rng.integers(-m, m + 1, size=2)
    v = max(1, frames.shape[2] // s)  # tiled views (primo_loop.views): each shifts within its own square
    x = np.roll(x.reshape(len(x), s, v, -1, 3), (int(dy), int(dx)), axis=(1, 3)).reshape(x.shape)
    x += rng.normal(0, 2.0, size=x.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ model on a batch

def forward_batch(model, batch: dict[str, Any], cfg: TrainConfig):
    """Model outputs (progress logits, failure logits) for a batch from :meth:`Batcher.build`."""
    import torch

    feats = model.encoder(torch.from_numpy(batch["frames"]))
    gather = torch.from_numpy(batch["gather"])
    tok = feats[gather]  # [B, S, d]: each query's tokens gathered from the shared frame features
    roles, times = sequence_layout(cfg.model.clip_len)
    shape = tuple(gather.shape)
    roles = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(roles, shape)))
    times = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(times, shape)))
    ids, offsets = text_batch(batch["texts"], cfg.model.vocab_buckets)
    return model.forward_tokens(tok, roles, times, ids, offsets, frame_outputs=True)


def losses(outputs, batch: dict[str, Any], cfg: TrainConfig):
    """Total loss and its parts: progress as a soft-label BCE on the sigmoid output (well conditioned over the
    whole 0-1 range), failure BCE, and the same two per frame token (auxiliary, dense supervision)."""
    import torch
    import torch.nn.functional as F

    p_logit, f_logit, frame_logits = outputs
    target = torch.from_numpy(batch["progress"])
    failed = torch.from_numpy(batch["failed"])
    gather = torch.from_numpy(batch["gather"])
    l_prog = F.binary_cross_entropy_with_logits(p_logit, target)
    l_fail = F.binary_cross_entropy_with_logits(f_logit, failed)
    fp = torch.from_numpy(batch["frame_progress"])[gather]
    ff = torch.from_numpy(batch["frame_failed"])[gather]
    l_aux = (F.binary_cross_entropy_with_logits(frame_logits[..., 0], fp)
             + cfg.failure_weight * F.binary_cross_entropy_with_logits(frame_logits[..., 1], ff))
    total = l_prog + cfg.failure_weight * l_fail + cfg.aux_weight * l_aux
    return total, l_prog, l_fail, torch.sigmoid(p_logit)


def evaluate_batches(model, batcher: Batcher, indices: Sequence[int], cfg: TrainConfig) -> dict[str, float]:
    """Validation metrics at the in-loop cadence (no augmentation)."""
    import torch

    model.eval()
    errs, fl, facc, n = [], 0.0, 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(indices), cfg.batch_episodes):
            batch = batcher.build(indices[i:i + cfg.batch_episodes], None, train=False)
            outputs = forward_batch(model, batch, cfg)
            _, _, l_fail, pred = losses(outputs, batch, cfg)
            f_logit = outputs[1]
            errs.append(np.abs(pred.numpy() - batch["progress"]) * 100)
            m = len(batch["progress"])
            fl += float(l_fail) * m
            facc += float(((f_logit.numpy() > 0) == (batch["failed"] > 0.5)).sum())
            n += m
    err = np.concatenate(errs) if errs else np.zeros(0)
    mae = float(err.mean()) if len(err) else math.nan
    return {"val_mae": mae, "val_failure_bce": fl / max(n, 1), "val_failure_acc": facc / max(n, 1),
            "val_queries": n, "val_score": mae + 100 * cfg.failure_weight * fl / max(n, 1) / 10}
