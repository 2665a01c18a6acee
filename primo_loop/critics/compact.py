"""The compact critic: a small learned video critic that runs on a CPU in milliseconds (DESIGN.md §6).

This module is the backend (:class:`CompactCritic`, registered as ``compact``) and its checkpoints; the network
it loads (architecture, instruction hashing, token layout) is in :mod:`primo_loop.critics.compact_model`, whose
public names are importable from here too.

A checkpoint is a folder holding ``config.json`` and ``weights.pt`` (and, for the embedded default in
``primo_loop/assets/compact/``, the evaluation ``report.json``/``report.md`` that justifies it).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.critics.compact_model import (
    ARCH_VERSION,
    ROLE_CLIP,
    ROLE_CURRENT,
    ROLE_INITIAL,
    CompactConfig,
    build_model,
    hash_tokens,
    inference_encoder,
    require_torch,
    sequence_layout,
    text_batch,
)
from primo_loop.errors import CheckpointError, ConfigError
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.views import n_views, pick_view, resize_views

__all__ = [
    "ARCH_VERSION", "CONFIG_FILE", "DEFAULT_CHECKPOINT", "ROLE_CLIP", "ROLE_CURRENT", "ROLE_INITIAL", "SHIPPED",
    "WEIGHTS_FILE", "CompactConfig", "CompactCritic", "build_model", "checkpoint_paths", "hash_tokens",
    "inference_encoder", "load_checkpoint", "require_torch", "resolve_checkpoint", "save_checkpoint",
    "sequence_layout", "text_batch",
]

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "compact"
#: Checkpoints shipped with the package, by name: ``checkpoint="hardened"`` (``./hardened`` is a folder).
SHIPPED = {"default": DEFAULT_CHECKPOINT, "hardened": DEFAULT_CHECKPOINT.parent / "compact_hardened",
           "one_view": DEFAULT_CHECKPOINT.parent / "compact_one_view"}
CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """A checkpoint folder from a shipped name (:data:`SHIPPED`; None is ``"default"``) or a path."""
    if checkpoint is None:
        return DEFAULT_CHECKPOINT
    return SHIPPED.get(str(checkpoint), Path(checkpoint))


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(config.json, weights.pt)`` of a checkpoint folder."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    return p / CONFIG_FILE, p / WEIGHTS_FILE


def save_checkpoint(folder: str | os.PathLike, config: CompactConfig, state_dict: dict[str, Any]) -> Path:
    """Write ``config.json`` and ``weights.pt`` into ``folder`` (each atomically)."""
    from primo_loop.outputs import atomic_path, write_text_atomic

    torch = require_torch()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config.to_dict(), indent=1))
    return folder


def load_checkpoint(path: str | os.PathLike, expect: CompactConfig | None = None):
    """Load a checkpoint folder into ``(config, model)`` (model in eval mode).

    Args:
        path: the checkpoint folder (or a file inside it).
        expect: if given, the architecture the caller expects; any difference is an error.

    Raises:
        CheckpointError: files missing or corrupt, or the config does not match ``expect`` or the weights
            (the message lists what differs).
    """
    torch = require_torch()
    cfg_path, w_path = checkpoint_paths(path)
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise CheckpointError(f"Compact-critic checkpoint file missing: {p} (a checkpoint is a folder with "
                                  f"{CONFIG_FILE} and {WEIGHTS_FILE}; train one with `scripts/train_critic.py "
                                  f"compact --data DIR --out CKPT`)")
    try:
        config = CompactConfig.from_dict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"Corrupt or invalid compact-critic config {cfg_path}: {exc}") from exc
    if config.arch_version != ARCH_VERSION:
        raise CheckpointError(f"Checkpoint {cfg_path.parent} has arch_version {config.arch_version}; this code "
                              f"reads version {ARCH_VERSION}: retrain it or use a matching primo_loop version")
    if expect is not None:
        diff = expect.arch_diff(config)
        if diff:
            raise CheckpointError(f"Checkpoint {cfg_path.parent} does not match the requested config: " + "; ".join(
                f"{k}: requested {a!r}, checkpoint {b!r}" for k, (a, b) in diff.items()))
    try:
        state = torch.load(w_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"Corrupt compact-critic weights {w_path}: {type(exc).__name__}: {exc}") from exc
    model = build_model(config)
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = {k: (tuple(want[k].shape), tuple(state[k].shape)) for k in set(want) & set(state)
              if want[k].shape != state[k].shape}
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatches " + ", ".join(f"{k}: config gives {a}, weights hold {b}"
                                                         for k, (a, b) in sorted(shapes.items())[:6]))
        if missing:
            parts.append(f"missing from weights {missing[:6]}")
        if unexpected:
            parts.append(f"unexpected in weights {unexpected[:6]}")
        raise CheckpointError(f"Weights {w_path} do not match config {cfg_path}: " + "; ".join(parts))
    model.load_state_dict(state)
    model.eval()
    return config, model


class CompactCritic:
    """The compact learned critic behind the :class:`~primo_loop.critics.base.Critic` protocol.

    Args:
        checkpoint: checkpoint folder, or the name of a shipped one: ``"default"`` (the embedded default in
            ``primo_loop/assets/compact/``, also what None gives) or ``"hardened"`` (the default fine-tuned on
            trained agents' rollouts, ``primo_loop/assets/compact_hardened/``; docs/critic.md) or ``"one_view"``
            (where shipped: the default's twin reading one camera, for envs that give one frame of their own).
        device: torch device ("cpu" by default).
        threads: torch intra-op threads to use (None leaves torch's setting).
        **expect: architecture fields the caller requires (e.g. ``image_size=64``); a checkpoint whose config
            differs raises :class:`CheckpointError` naming the differences.

    Raises:
        CheckpointError: the checkpoint is missing, corrupt or does not match.
    """

    name = "compact"
    refreshable = True  # primo_loop.training.online fine-tunes it in place while an agent trains

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                 threads: int | None = None, **expect: Any):
        torch = require_torch()
        self.checkpoint = resolve_checkpoint(checkpoint)
        if threads is not None:
            torch.set_num_threads(int(threads))
        expected = None
        if expect:
            try:
                probe = json.loads(checkpoint_paths(self.checkpoint)[0].read_text())
            except (OSError, json.JSONDecodeError):
                probe = {}
            unknown = sorted(set(expect) - {f.name for f in dataclasses.fields(CompactConfig)})
            if unknown:
                raise ConfigError(f"Unknown compact-critic options {unknown}; valid: checkpoint, device, threads, "
                                  f"and config fields {[f.name for f in dataclasses.fields(CompactConfig)]}")
            base = {k: v for k, v in probe.items() if k != "train_info"}
            base.update(expect)
            try:
                expected = CompactConfig.from_dict(base)
            except (TypeError, CheckpointError) as exc:
                raise CheckpointError(f"Cannot build the requested config from {expect}: {exc}") from exc
        self.config, self.model = load_checkpoint(self.checkpoint, expect=expected)
        self.device = torch.device(device)
        self.model.to(self.device)
        self._encoder = inference_encoder(self.model)
        self._roles, self._times = sequence_layout(self.config.clip_len)
        self._text_cache: dict[str, list[int]] = {}

    @property
    def report_path(self) -> Path:
        return self.checkpoint / "report.json"

    def weights_changed(self) -> None:
        """Call after training ``self.model`` in place (online refresh): puts it back in eval mode and rebuilds the
        inference encoder, a BatchNorm-folded copy that would otherwise keep scoring with the old weights."""
        self.model.eval()
        self._encoder = inference_encoder(self.model)

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        """Score a batch of queries in one forward pass (each distinct frame is encoded once)."""
        if not queries:
            return []
        t0 = time.perf_counter()
        frames, gather = self._frames(queries)
        prog, fail = self.score(frames, gather, [q.instruction for q in queries])
        dt = (time.perf_counter() - t0) / len(queries)
        return [CriticVerdict(progress=float(p), failure_prob=float(f), raw=f"progress={p:.4f} failure={f:.4f}",
                              latency_s=dt) for p, f in zip(prog, fail)]

    def score(self, frames: np.ndarray, gather: np.ndarray, instructions: Sequence[str]
              ) -> tuple[np.ndarray, np.ndarray]:
        """Progress and failure probability of queries given as rows of indices into shared frames.

        Args:
            frames: uint8 ``[N, S, S, 3]`` at the critic's resolution, each encoded once.
            gather: ``[B, clip_len + 2]``: each query's ``[initial, clip..., current]`` as indices into ``frames``.
            instructions: one per query.

        Scoring many queries over the same frames (all queries of a recorded episode) this way encodes each frame
        once, where :meth:`assess` encodes every query's clip.
        """
        torch = require_torch()
        ids, offsets = [], []
        for text in instructions:
            offsets.append(len(ids))
            toks = self._text_cache.get(text)
            if toks is None:
                toks = self._text_cache[text] = hash_tokens(text, self.config.vocab_buckets)
            ids.extend(toks)
        b = gather.shape[0]
        with torch.inference_mode():
            feats = self._encoder(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
            tok = feats[torch.from_numpy(gather).to(self.device)]
            roles = torch.from_numpy(self._roles).expand(b, -1).to(self.device)
            times = torch.from_numpy(self._times).expand(b, -1).to(self.device)
            p_logit, f_logit = self.model.forward_tokens(tok, roles, times, torch.tensor(ids, device=self.device),
                                                         torch.tensor(offsets, device=self.device))
            return torch.sigmoid(p_logit).cpu().numpy(), torch.sigmoid(f_logit).cpu().numpy()

    @property
    def views(self) -> tuple[str, ...]:
        """The cameras a multi-view checkpoint reads, in order (``()``: one view, any camera)."""
        return self.config.views

    def frames_for(self, frames: np.ndarray, views: Sequence[str] = ()) -> np.ndarray:
        """Frames carrying ``views`` (:class:`CriticQuery.views`) as this critic's network reads them: each view
        at ``image_size``, tiled. A one-view critic reads the first view of a multi-view frame; a multi-view critic
        needs its own views in its own order. A one-view critic trained on one camera of multi-view data
        (``train_info["camera"]``) reads that camera where the frame has it.

        Raises:
            ConfigError: a multi-view critic given frames of other views (the message names both).
        """
        views = tuple(views)
        mine = self.config.views
        if mine and views != mine:
            raise ConfigError(f"This compact critic ({self.checkpoint}) reads frames tiling the views {list(mine)}, "
                              f"actually given views {list(views) or '() (one unnamed view)'}; render the same "
                              f"cameras in that order (e.g. RobosuiteEnv(cameras={list(mine)}), collect --cameras "
                              f"{' '.join(mine)}), or use a critic trained on these views")
        if not mine:  # the camera it was trained on if it knows it (train_critic --views), else the first
            frames = pick_view(frames, views, self.config.train_info.get("camera"))
        return resize_views(frames, self.config.image_size, n_views(mine))

    def _frames(self, queries: Sequence[CriticQuery]) -> tuple[np.ndarray, np.ndarray]:
        """Distinct frames of the batch at the critic's resolution, and each query's
        ``[initial, clip (resampled to clip_len), current]`` as indices into them.

        The tracker's clips start with the initial frame and end with the current one: those are encoded once.
        Frames of a query with views are read as :meth:`frames_for` says.
        """
        from primo_loop.tracker import sample_clip_indices

        frames: list[np.ndarray] = []
        gather = np.empty((len(queries), self.config.clip_len + 2), np.int64)
        base = 0
        for i, q in enumerate(queries):
            clip = q.clip
            if len(clip) != self.config.clip_len:
                clip = clip[sample_clip_indices(len(clip), self.config.clip_len)]
            raw = list(clip)
            row = list(range(base, base + len(clip)))
            first = row[0] if _same(q.initial, clip[0]) else base + _append(raw, q.initial)
            last = row[-1] if _same(q.current, clip[-1]) else base + _append(raw, q.current)
            gather[i] = [first, *row, last]
            frames.append(self.frames_for(np.stack(raw), q.views))
            base += len(raw)
        return np.concatenate(frames), gather


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and np.array_equal(a, b))


def _append(frames: list[np.ndarray], frame: np.ndarray) -> int:
    frames.append(frame)
    return len(frames) - 1
