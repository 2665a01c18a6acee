"""The compact critic's network: architecture config, instruction hashing, token layout, the torch model.

Architecture: a shared small CNN encodes every frame; a temporal transformer reads the token sequence
``[CLS, instruction, initial, clip_1 .. clip_T, current]`` where each frame token carries a role embedding
(initial / clip / current) and a time embedding (the frame's position in the attempt so far, 0 to 1); the
instruction is a mean of hashed word and bigram embeddings (no pretrained text model is needed offline).
Two heads read the CLS output: progress (sigmoid, 0-1) and failure (logit).

Views: a critic of ``V >= 2`` views (``CompactConfig.views``) reads frames that tile its cameras side by side
(``[S, V*S, 3]``, :mod:`primo_loop.views`); the encoder splits each frame into its views, encodes each with the
shared CNN, and fuses the ``V`` features into one frame token (concatenation, then a linear layer and a
LayerNorm: the position in the concatenation tells the views apart). A one-view critic has no fusion layer, so
its weights are those of checkpoints made before views existed.

The critic does not see the absolute step count on purpose: a critic that learned "later means further"
would pay a slow or idle RL agent for waiting.

The critic backend and its checkpoints are in :mod:`primo_loop.critics.compact`; torch is imported only when a
model or a tensor is built.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primo_loop.errors import CheckpointError, ConfigError, MissingDependencyError
from primo_loop.views import n_views, normalize_views

ARCH_VERSION = 1
ROLE_INITIAL, ROLE_CLIP, ROLE_CURRENT = 0, 1, 2
STEMS = {"conv": (5, 2), "patch": (4, 4)}  # first conv layer: (kernel, stride)
_WORD_RE = re.compile(r"[a-z0-9]+")


@dataclass
class CompactConfig:
    """Architecture of the compact critic (saved as the checkpoint's ``config.json``).

    Attributes:
        image_size: frames are resized to this square size before the CNN.
        clip_len: frames per clip (anchors included), as the tracker sends them.
        channels: output channels of the CNN's conv layers (each halves the map, the first as ``stem`` says).
        stem: the first conv layer: ``"conv"`` (5x5, stride 2: the layout of every checkpoint made before this
            field) or ``"patch"`` (4x4 patches, stride 4: the map is a quarter as wide after one layer, so a frame
            costs about a third; ``benchmarks/critic_architectures.py`` times both).
        dim: token width of the transformer.
        layers: transformer layers.
        heads: attention heads.
        ff_mult: feed-forward width as a multiple of ``dim``.
        dropout: dropout in the transformer and before the heads.
        vocab_buckets: hash buckets of the instruction's word/bigram embedding table.
        views: the camera names tiled in each frame, left to right (two or more); ``()``, the default, is one
            view (a one-view critic given a multi-view frame reads its first view).
        arch_version: bumped when the network changes incompatibly.
        train_info: provenance (tasks, robots, data, epochs); not part of the architecture.
    """

    image_size: int = 64
    clip_len: int = 8
    channels: tuple[int, ...] = (24, 48, 64, 96)
    stem: str = "conv"
    dim: int = 128
    layers: int = 2
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    vocab_buckets: int = 2048
    views: tuple[str, ...] = ()
    arch_version: int = ARCH_VERSION
    train_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.views = normalize_views(self.views)
        if len(self.views) == 1:
            self.views = ()  # one view, whatever its camera: the same network
        if self.stem not in STEMS:
            raise ConfigError(f"Expected `stem` in {list(STEMS)}, actually: {self.stem!r}")
        if not self.channels:
            raise ConfigError("Expected at least one conv layer in `channels`, actually: ()")
        if self.image_size < 16 or self.image_size % self.downsample:
            raise ConfigError(f"Expected `image_size` >= 16 and divisible by {self.downsample} (the CNN's total "
                              f"stride: {len(self.channels)} layers, stem {self.stem!r}), actually: {self.image_size}")
        if self.dim % self.heads:
            raise ConfigError(f"Expected `dim` divisible by `heads`, actually: {self.dim} and {self.heads}")
        for name in ("clip_len", "dim", "layers", "heads", "ff_mult", "vocab_buckets"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` >= 1, actually: {getattr(self, name)}")

    @property
    def downsample(self) -> int:
        """How many times smaller the CNN's last map is than the frame, per side."""
        return STEMS[self.stem][1] * 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["views"] = list(self.views)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompactConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"Unknown compact-critic config keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def arch_diff(self, other: CompactConfig) -> dict[str, tuple[Any, Any]]:
        """Architecture fields that differ (``train_info`` ignored): ``{name: (self's, other's)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k != "train_info" and a[k] != b[k]}


def hash_tokens(text: str, buckets: int, max_tokens: int = 32) -> list[int]:
    """Hashed ids of the lower-cased words and word bigrams of ``text`` (stable across processes).

    >>> hash_tokens("Lift the cube", 1000) == hash_tokens("lift  the CUBE!", 1000)
    True
    """
    words = _WORD_RE.findall(text.lower())[:max_tokens]
    grams = words + [f"{a}_{b}" for a, b in zip(words, words[1:])]
    return [zlib.crc32(g.encode()) % buckets for g in grams] or [0]


def require_torch():
    """The ``torch`` module, or MissingDependencyError naming the package to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the pinned stack
        raise MissingDependencyError("torch", "The compact critic") from exc
    return torch


def build_model(config: CompactConfig):
    """The compact critic network (a ``torch.nn.Module``) for ``config``."""
    torch = require_torch()
    nn = torch.nn

    class FrameEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [], 3
            for i, c in enumerate(config.channels):
                k, stride = STEMS[config.stem] if i == 0 else (3, 2)
                layers += [nn.Conv2d(cin, c, k, stride=stride, padding=k // 2 if k % 2 else 0, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                cin = c
            self.convs = nn.Sequential(*layers)
            side = config.image_size // config.downsample
            # Flatten (not pool) the last map: where things are (the cube's height) is the signal.
            self.proj = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, config.dim), nn.LayerNorm(config.dim))
            self.n_views = n_views(config.views)
            if self.n_views > 1:  # only then: a one-view critic keeps the weights of older checkpoints
                self.fuse = nn.Sequential(nn.Linear(self.n_views * config.dim, config.dim), nn.LayerNorm(config.dim))

        def forward(self, x):  # x: uint8 [N, S, V*S, 3], the views tiled left to right
            v = self.n_views
            if v > 1:
                n, s = x.shape[:2]
                x = x.reshape(n, s, v, s, 3).transpose(1, 2).reshape(n * v, s, s, 3)
            x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            f = self.proj(self.convs(x))
            return self.fuse(f.reshape(-1, v * f.shape[-1])) if v > 1 else f

    class CompactNet(nn.Module):
        def __init__(self):
            super().__init__()
            d = config.dim
            self.encoder = FrameEncoder()
            self.text = nn.EmbeddingBag(config.vocab_buckets, d, mode="mean")
            self.role = nn.Embedding(4, d)  # initial, clip, current, text
            self.time_proj = nn.Linear(8, d)
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
            layer = nn.TransformerEncoderLayer(d, config.heads, d * config.ff_mult, config.dropout,
                                               batch_first=True, norm_first=True, activation="gelu")
            self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.drop = nn.Dropout(config.dropout)
            self.progress_head = nn.Linear(d, 1)
            self.failure_head = nn.Linear(d, 1)
            # training-time auxiliary: progress and failure of every frame token (dense supervision)
            self.frame_head = nn.Linear(d, 2)
            freqs = torch.pi * 2.0 ** torch.arange(4).float()
            self.register_buffer("freqs", freqs, persistent=False)

        def time_embedding(self, t):  # t: [B, S] in [0, 1]
            a = t[..., None] * self.freqs
            return self.time_proj(torch.cat([a.sin(), a.cos()], dim=-1))

        def forward_tokens(self, feats, roles, times, text_ids, text_offsets, frame_outputs: bool = False):
            """feats [B, S, d] frame features; roles [B, S] long; times [B, S] float; text as EmbeddingBag.

            Returns progress and failure logits [B]; with ``frame_outputs`` also per-frame logits [B, S, 2].
            """
            b = feats.shape[0]
            x = feats + self.role(roles) + self.time_embedding(times)
            txt = self.text(text_ids, text_offsets) + self.role.weight[3]
            x = torch.cat([self.cls.expand(b, -1, -1), txt[:, None], x], dim=1)
            out = self.norm(self.transformer(x))
            h = self.drop(out[:, 0])
            p, f = self.progress_head(h).squeeze(-1), self.failure_head(h).squeeze(-1)
            if frame_outputs:
                return p, f, self.frame_head(self.drop(out[:, 2:]))
            return p, f

        def forward(self, frames, roles, times, text_ids, text_offsets):
            """frames uint8 [B, S, H, W, 3] -> (progress logits [B], failure logits [B])."""
            b, s = frames.shape[:2]
            feats = self.encoder(frames.reshape(b * s, *frames.shape[2:])).reshape(b, s, -1)
            return self.forward_tokens(feats, roles, times, text_ids, text_offsets)

    return CompactNet()


def sequence_layout(clip_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Roles and times of the frame tokens ``[initial, clip_1 .. clip_T, current]``.

    >>> roles, times = sequence_layout(3)
    >>> roles.tolist(), times.tolist()
    ([0, 1, 1, 1, 2], [0.0, 0.0, 0.5, 1.0, 1.0])
    """
    roles = np.array([ROLE_INITIAL] + [ROLE_CLIP] * clip_len + [ROLE_CURRENT], np.int64)
    clip_t = np.linspace(0.0, 1.0, clip_len) if clip_len > 1 else np.ones(1)
    times = np.concatenate([[0.0], clip_t, [1.0]]).astype(np.float32)
    return roles, times


def text_batch(instructions: Sequence[str], buckets: int):
    """EmbeddingBag inputs ``(ids, offsets)`` for a batch of instructions."""
    torch = require_torch()
    ids, offsets = [], []
    for s in instructions:
        offsets.append(len(ids))
        ids.extend(hash_tokens(s, buckets))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def inference_encoder(model):
    """The model's frame encoder prepared for inference: each conv's BatchNorm folded into it (fewer passes over
    the feature maps; about 1.5x faster on a CPU for this small CNN)."""
    import copy

    torch = require_torch()
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    enc = copy.deepcopy(model.encoder).eval()
    layers, fused, i = list(enc.convs), [], 0
    while i < len(layers):
        if (isinstance(layers[i], torch.nn.Conv2d) and i + 1 < len(layers)
                and isinstance(layers[i + 1], torch.nn.BatchNorm2d)):
            fused.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            fused.append(layers[i])
            i += 1
    enc.convs = torch.nn.Sequential(*fused)
    return enc
