"""Training of the compact critic on dataset folders (DESIGN.md §6).

    python scripts/train_critic.py compact --data data/train --out runs/compact --epochs 20 --seed 0

The run's options (:class:`TrainConfig`), the episodes in memory and the batches of tracker-like queries are in
:mod:`primo_loop.training.compact_batches`; this module holds the training loop, its saved state and the
command line.

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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.critics.compact import CompactConfig, build_model, save_checkpoint
from primo_loop.critics.compact_model import STEMS
from primo_loop.errors import CheckpointError, ConfigError, DatasetError, TrainingError
from primo_loop.outputs import atomic_path
from primo_loop.training.compact_batches import (  # noqa: F401 - kept_frames, query_layout: importable here too
    Batcher,
    EpisodeArrays,
    TrainConfig,
    evaluate_batches,
    forward_batch,
    kept_frames,
    load_episodes,
    losses,
    query_layout,
    split_episodes,
)

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"


# ---------------------------------------------------------------------------------------------- training

def _set_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


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

    episodes, skipped = load_episodes(cfg.data, cfg.model.image_size, cfg.tasks, cfg.robots, progress_bar,
                                      views=cfg.views)
    cfg.model = _model_views(cfg.model, episodes[0].views)
    train_idx, val_idx = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    if cfg.init:
        train_idx, val_idx = keep_init_split(episodes, cfg.init, train_idx, val_idx)
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


def _model_views(model: CompactConfig, data_views: tuple[str, ...]) -> CompactConfig:
    """The architecture with the data's views (read from the datasets' meta); a model given other views is an
    error."""
    if model.views == data_views:
        return model
    if model.views:
        raise ConfigError(f"The model is set to read the views {list(model.views)} and the data holds frames of "
                          f"{list(data_views) or 'one view'}; train on data collected with --cameras "
                          f"{' '.join(model.views)}, or leave the views to the data")
    return dataclasses.replace(model, views=data_views)


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


def keep_init_split(episodes: Sequence[EpisodeArrays], init: str, train_idx: Sequence[int],
                    val_idx: Sequence[int]) -> tuple[list[int], list[int]]:
    """A fine-tune's split that validates only on episodes its starting checkpoint ``init`` never trained on:
    episodes of the (task, robot) pairs ``init`` trained on are validation exactly when ``init`` recorded them as
    its validation episodes (``train_info["val_episode_ids"]``); the others keep the split given. Without that
    record, the split given (and a warning: validation may then hold episodes the start was trained on)."""
    from primo_loop.critics.compact import CONFIG_FILE, resolve_checkpoint

    info = json.loads((resolve_checkpoint(init) / CONFIG_FILE).read_text()).get("train_info", {})
    if "val_episode_ids" not in info:
        logger.warning("%s records no validation episodes: this fine-tune's validation may hold episodes it was "
                       "trained on, and then favours the start", init)
        return list(train_idx), list(val_idx)
    seen = {(t, r) for t in info.get("tasks", []) for r in info.get("robots", [])}
    init_val, val = set(info["val_episode_ids"]), set(val_idx)
    is_val = [episodes[i].episode_id in init_val if (episodes[i].task, episodes[i].robot) in seen else i in val
              for i in range(len(episodes))]
    return [i for i, v in enumerate(is_val) if not v], [i for i, v in enumerate(is_val) if v]


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
            # the camera a one-view critic was trained on, when the data named it: read from a tiled frame
            **({"camera": episodes[0].views[0]} if len(episodes[0].views) == 1 else {}),
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
    p.add_argument("--views", nargs="+", default=None, metavar="CAMERA",
                   help="train on these of the data's views (default: all); one gives a one-view critic")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--image-size", type=int, default=m.image_size)
    p.add_argument("--clip-len", type=int, default=m.clip_len)
    p.add_argument("--channels", type=int, nargs="+", default=list(m.channels))
    p.add_argument("--stem", choices=sorted(STEMS), default=m.stem,
                   help="first conv layer: conv (5x5 stride 2) or patch (4x4 stride 4, about 3x cheaper per frame)")
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
                          stem=args.stem, dim=args.dim, layers=args.layers, heads=args.heads, dropout=args.dropout)
    if args.init:
        model = _init_architecture(args, model)
    cfg = TrainConfig(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                      batch_episodes=args.batch_episodes, queries_per_episode=args.queries_per_episode, lr=args.lr,
                      weight_decay=args.weight_decay, val_fraction=args.val_fraction, frame_every=args.frame_every,
                      stride_jitter=not args.no_stride_jitter, failure_weight=args.failure_weight,
                      aux_weight=args.aux_weight, augment=not args.no_augment, threads=args.threads,
                      tasks=args.tasks, robots=args.robots, views=args.views,
                      max_minutes=args.max_minutes, init=args.init, model=model)
    from primo_loop.outputs import output_folder

    with output_folder(cfg.out, resume=args.resume, overwrite=args.overwrite, can_resume=True):
        summary = train(cfg, resume=args.resume, progress_bar=not args.no_progress)
    print(json.dumps(summary, indent=1, default=float))
    return 0
