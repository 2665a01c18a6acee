"""Training of the compact critic on dataset folders (DESIGN.md §6).

    python scripts/train_critic.py compact --data data/train --out runs/compact --epochs 20 --seed 0

Queries are built the way the in-loop tracker builds them: frames are kept every ``frame_every`` env steps
(and at reset); a query at a kept frame samples its clip uniformly from the frames kept so far with
:func:`primo_loop.tracker.sample_clip_indices`. A batch takes a few episodes, encodes each of their kept frames
once with the CNN, and builds every query of those episodes from the shared features (a frame is encoded once
per batch however many queries use it), which is what makes CPU training fit in minutes.

Per epoch: one pass over the training episodes, then validation on held-out episodes (MAE on the 0-100 scale,
failure BCE and accuracy); the best epoch's weights are kept as the checkpoint; the full state after each epoch
goes to ``OUT/train_state.pt`` so ``--resume`` continues after an interruption. Runs are deterministic under a
seed (each epoch's randomness is derived from the seed and the epoch number, so a resumed run matches an
uninterrupted one).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.critics.compact import (
    CompactConfig,
    build_model,
    save_checkpoint,
    sequence_layout,
    text_batch,
)
from primo_loop.data.dataset import EpisodeDataset
from primo_loop.data.media import resize_frames
from primo_loop.errors import CheckpointError, ConfigError, DatasetError, TrainingError
from primo_loop.outputs import atomic_path
from primo_loop.tracker import sample_clip_indices

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"


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
    frames: np.ndarray  # uint8 [K, S, S, 3]
    frame_steps: np.ndarray  # [K]
    progress: np.ndarray  # [K] at the kept frames, 0-1
    failed: np.ndarray  # [K] bool
    outcome: str
    failure_step: int | None
    frame_every: int = 1  # the stride the frames were stored at (the last frame may be off it)


def load_episodes(dirs: Sequence[str | os.PathLike], image_size: int, tasks: Sequence[str] | None = None,
                  robots: Sequence[str] | None = None, progress_bar: bool = False) -> tuple[list[EpisodeArrays], int]:
    """Load every usable episode of ``dirs`` into memory. Returns ``(episodes, skipped)``.

    An episode id already loaded from an earlier folder (two collections with overlapping seeds) is kept as
    ``<folder name>/<id>``, so the validation ids a checkpoint records name one episode each.
    """
    out, skipped, seen = [], 0, set()
    for d in dirs:
        ds = EpisodeDataset(d, tasks=tasks, robots=robots)
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
                frames=resize_frames(ep.frames, image_size), frame_steps=np.asarray(ep.frame_steps),
                frame_every=int(m.get("frame_every") or _stride(ep.frame_steps)),
                progress=ep.progress_at_frames().astype(np.float32), failed=ep.failed_at_frames(),
                outcome=str(m.get("outcome")), failure_step=m.get("failure_step")))
        skipped += len(ds.skipped)
    if not out:
        raise DatasetError(f"No usable episodes in {list(map(str, dirs))}")
    return out, skipped


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
    x = np.roll(x, (int(dy), int(dx)), axis=(1, 2))
    x += rng.normal(0, 2.0, size=x.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- training

def _set_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


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


def train(cfg: TrainConfig, resume: bool = False, progress_bar: bool = True,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train the compact critic; return a summary (best epoch, validation metrics, timings).

    Args:
        cfg: the run's options.
        resume: continue from ``cfg.out``'s saved state (after its last finished epoch).
        progress_bar: show a tqdm bar per epoch.
        stop_after: stop (as if interrupted) once this many epochs are done in total.

    Raises:
        DatasetError: no usable episodes.
        CheckpointError: ``resume`` with a state whose config differs from ``cfg`` (the message lists what).
    """
    import torch

    t_start = time.time()
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE

    episodes, skipped = load_episodes(cfg.data, cfg.model.image_size, cfg.tasks, cfg.robots, progress_bar)
    train_idx, val_idx = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    if not train_idx:
        raise DatasetError(f"No training episodes left after holding out {len(val_idx)} for validation")
    batcher = Batcher(cfg, episodes)
    logger.info("episodes: %d train, %d val, %d skipped; stored frame strides %s", len(train_idx), len(val_idx),
                skipped, sorted({e.frame_every for e in episodes}))

    _set_seed(cfg.seed)
    model = build_model(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_episodes)
    total = steps_per_epoch * cfg.epochs
    warmup = min(100, max(1, total // 20))

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    start_epoch, best, history, elapsed_before = 0, {"val_score": math.inf}, [], 0.0
    if resume and state_path.exists():
        state = _load_state(state_path)
        diff = _config_diff(state["train_config"], cfg.to_dict())
        if diff:
            raise CheckpointError(f"Cannot resume from {state_path}: its training config differs: " + "; ".join(
                f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items()) + " (pass the same options, or a "
                "new --out)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        elapsed_before = state.get("elapsed_s", 0.0)
        logger.info("resumed from %s after epoch %d", state_path, start_epoch)
    elif resume:
        logger.warning("--resume: no %s yet, starting from scratch", state_path)
    if start_epoch == 0:
        (out / LOG_FILE).write_text("")
        if cfg.init:
            best = _warm_start(model, cfg, batcher, val_idx, episodes, train_idx, out)
            history.append(best)

    bar = None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        rng = np.random.default_rng([cfg.seed, epoch])
        _set_seed(cfg.seed * 100003 + epoch)
        order = rng.permutation(train_idx)
        model.train()
        if progress_bar:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        sums = np.zeros(3)
        nq = 0
        for b in range(steps_per_epoch):
            step = epoch * steps_per_epoch + b
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            batch = batcher.build(order[b * cfg.batch_episodes:(b + 1) * cfg.batch_episodes], rng, train=True)
            loss, l_prog, l_fail, _ = losses(forward_batch(model, batch, cfg), batch, cfg)
            if not torch.isfinite(loss):
                raise TrainingError(f"Training loss became {loss.item()} at epoch {epoch + 1}, batch {b + 1}; "
                                    "nothing of this epoch is saved (the last good state stays in "
                                    f"{state_path}). Lower --lr, or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            m = len(batch["progress"])
            sums += np.array([loss.item(), l_prog.item(), l_fail.item()]) * m
            nq += m
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums[0] / nq:.4f}")
        if bar is not None:
            bar.close()
        val = evaluate_batches(model, batcher, val_idx, cfg) if val_idx else {"val_score": -epoch}
        rec = {"epoch": epoch + 1, "train_loss": sums[0] / nq, "train_progress_loss": sums[1] / nq,
               "train_failure_bce": sums[2] / nq, "train_queries": nq, "lr": lr_at(step),
               "epoch_s": round(time.time() - t0, 2), **val}
        history.append(rec)
        improved = val["val_score"] < best["val_score"]
        if improved:
            best = dict(rec)
            save_checkpoint(out, _with_info(cfg, episodes, train_idx, val_idx, best, epoch + 1), model.state_dict())
        elapsed = elapsed_before + time.time() - t_start
        with atomic_path(state_path) as tmp:  # a kill mid-save leaves the previous state whole
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                        "best": best, "history": history, "train_config": cfg.to_dict(), "elapsed_s": elapsed}, tmp)
        with open(out / LOG_FILE, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        msg = (f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f}"
               + (f", val MAE {val['val_mae']:.2f}, val failure acc {val['val_failure_acc']:.3f}" if val_idx else "")
               + (" (best)" if improved else "") + f" [{rec['epoch_s']:.0f}s]")
        logger.info(msg)
        if progress_bar:
            from tqdm import tqdm

            tqdm.write(msg)
        if stop_after is not None and epoch + 1 >= stop_after:
            break
        if cfg.max_minutes is not None and (time.time() - t_start) / 60 >= cfg.max_minutes:
            logger.warning("stopping after epoch %d: --max-minutes %.1f reached", epoch + 1, cfg.max_minutes)
            break
    summary = {"best": best, "epochs_run": sum(1 for h in history if h["epoch"] > 0), "train_episodes": len(train_idx),
               "val_episodes": len(val_idx), "skipped_episodes": skipped,
               "wall_s": round(elapsed_before + time.time() - t_start, 1), "out": str(out)}
    return summary


def _load_state(path: Path) -> dict[str, Any]:
    """The saved training state, or one CheckpointError naming the file when it is truncated or corrupt."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"Cannot resume from {path}: the file is truncated or corrupt ({reason}); delete it, "
                              "or pass --overwrite instead of --resume, to start the run over") from exc
    keys = {"model", "optimizer", "epoch", "best", "history", "train_config"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise CheckpointError(f"Cannot resume from {path}: expected a training state with {sorted(keys)}, "
                              f"actually: {sorted(state) if isinstance(state, dict) else type(state).__name__}")
    return state


def _warm_start(model, cfg: TrainConfig, batcher: Batcher, val_idx: Sequence[int],
                episodes: Sequence[EpisodeArrays], train_idx: Sequence[int], out: Path) -> dict[str, Any]:
    """Load ``cfg.init``'s weights into ``model``, score them as epoch 0 and save them as the first best."""
    from primo_loop.critics.compact import load_checkpoint, resolve_checkpoint

    # a folder or a shipped name; CheckpointError names any architecture difference
    _, start = load_checkpoint(resolve_checkpoint(cfg.init), expect=cfg.model)
    model.load_state_dict(start.state_dict())
    rec = {"epoch": 0, "init": str(cfg.init),
           **(evaluate_batches(model, batcher, val_idx, cfg) if val_idx else {"val_score": math.inf})}
    save_checkpoint(out, _with_info(cfg, episodes, train_idx, val_idx, rec, 0), model.state_dict())
    with open(out / LOG_FILE, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    logger.info("warm start from %s%s", cfg.init,
                f": val MAE {rec['val_mae']:.2f} before fine-tuning" if val_idx else "")
    return rec


def _with_info(cfg: TrainConfig, episodes: Sequence[EpisodeArrays], train_idx: Sequence[int],
               val_idx: Sequence[int], best: dict[str, Any], epoch: int) -> CompactConfig:
    import primo_loop

    tr = [episodes[i] for i in train_idx]
    info = {"tasks": sorted({e.task for e in tr}), "robots": sorted({e.robot for e in tr}),
            "instructions": sorted({e.instruction for e in tr}), "data": [str(d) for d in cfg.data],
            "train_episodes": len(train_idx), "val_episodes": len(val_idx),
            "val_episode_ids": sorted(episodes[i].episode_id for i in val_idx),
            "epoch": epoch, "epochs": cfg.epochs, "seed": cfg.seed, "frame_every": cfg.frame_every,
            **({"init": str(cfg.init)} if cfg.init else {}),
            "val_mae": best.get("val_mae"), "val_failure_acc": best.get("val_failure_acc"),
            "primo_loop": primo_loop.__version__}
    return dataclasses.replace(cfg.model, train_info=info)


def _config_diff(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    ignore = {"epochs", "max_minutes", "threads", "out"}
    flat_a, flat_b = _flatten(saved), _flatten(now)
    keys = sorted(set(flat_a) | set(flat_b))
    return {k: (flat_a.get(k), flat_b.get(k)) for k in keys
            if k.split(".")[0] not in ignore and k != "model.train_info" and flat_a.get(k) != flat_b.get(k)}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "train_info":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


# --------------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    from primo_loop.cli import add_output_flags, new_parser

    p = new_parser("Train the compact critic.", prog="train_critic.py compact")
    d, m = TrainConfig(data=["."]), CompactConfig()
    p.add_argument("--data", nargs="+", required=True, help="dataset folder(s)")
    p.add_argument("--out", required=True, help="checkpoint folder (new or empty, unless --resume or --overwrite)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    add_output_flags(p, resume=True)
    p.add_argument("--init", metavar="CKPT", default=None,
                   help="fine-tune: start from this checkpoint's weights (and architecture), a folder or a shipped "
                        "name (default, hardened). Its validation score is epoch 0, kept unless an epoch beats it")
    p.add_argument("--batch-episodes", type=int, default=d.batch_episodes)
    p.add_argument("--queries-per-episode", type=int, default=d.queries_per_episode)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--frame-every", type=int, default=d.frame_every)
    p.add_argument("--no-stride-jitter", action="store_true")
    p.add_argument("--failure-weight", type=float, default=d.failure_weight)
    p.add_argument("--aux-weight", type=float, default=d.aux_weight)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--robots", nargs="+", default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--image-size", type=int, default=m.image_size)
    p.add_argument("--clip-len", type=int, default=m.clip_len)
    p.add_argument("--channels", type=int, nargs="+", default=list(m.channels))
    p.add_argument("--dim", type=int, default=m.dim)
    p.add_argument("--layers", type=int, default=m.layers)
    p.add_argument("--heads", type=int, default=m.heads)
    p.add_argument("--dropout", type=float, default=m.dropout)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _init_architecture(args: argparse.Namespace, flags: CompactConfig) -> CompactConfig:
    """The architecture of ``--init``'s checkpoint (``args.init`` is resolved in place); architecture flags
    left at their defaults follow it, one set to something else is an error (the weights could not load)."""
    from primo_loop.critics.compact import checkpoint_paths, resolve_checkpoint

    args.init = str(resolve_checkpoint(args.init))
    cfg_path, _ = checkpoint_paths(args.init)
    if not cfg_path.is_file():
        raise CheckpointError(f"--init {args.init}: no compact-critic checkpoint there ({cfg_path} missing)")
    ckpt = CompactConfig.from_dict({**json.loads(cfg_path.read_text()), "train_info": {}})
    defaults = CompactConfig()
    clash = {k: v for k, v in flags.arch_diff(ckpt).items() if getattr(flags, k) != getattr(defaults, k)}
    if clash:
        raise ConfigError(f"--init {args.init} fixes the architecture; these flags disagree with it: " + "; ".join(
            f"{k}: flag {a!r}, checkpoint {b!r}" for k, (a, b) in clash.items()))
    return ckpt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/train_critic.py compact`` (``argv`` excludes the subcommand)."""
    args = build_parser().parse_args(argv)
    logging.getLogger("primo_loop").setLevel(logging.INFO)
    model = CompactConfig(image_size=args.image_size, clip_len=args.clip_len, channels=tuple(args.channels),
                          dim=args.dim, layers=args.layers, heads=args.heads, dropout=args.dropout)
    if args.init:
        model = _init_architecture(args, model)
    cfg = TrainConfig(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                      batch_episodes=args.batch_episodes, queries_per_episode=args.queries_per_episode, lr=args.lr,
                      weight_decay=args.weight_decay, val_fraction=args.val_fraction, frame_every=args.frame_every,
                      stride_jitter=not args.no_stride_jitter, failure_weight=args.failure_weight,
                      aux_weight=args.aux_weight, augment=not args.no_augment, threads=args.threads,
                      tasks=args.tasks, robots=args.robots,
                      max_minutes=args.max_minutes, init=args.init, model=model)
    from primo_loop.outputs import output_folder

    with output_folder(cfg.out, resume=args.resume, overwrite=args.overwrite, can_resume=True):
        summary = train(cfg, resume=args.resume, progress_bar=not args.no_progress)
    print(json.dumps(summary, indent=1, default=float))
    return 0
