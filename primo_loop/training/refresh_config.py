"""The settings of online critic refresh (:class:`RefreshConfig`), apart from the refresher itself
(:mod:`primo_loop.training.online`) so that configs and run folders can name them without loading it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from primo_loop.errors import ConfigError, check_counts, from_options

#: file-name prefix of the refresh state saved next to each training checkpoint
STATE_PREFIX = "refresh_state"


@dataclass
class RefreshConfig:
    """Options of online critic refresh (each field's docstring says what it does and its default)."""

    every: int = 10_000
    """env steps between refreshes (0: refresh off)"""
    grad_steps: int = 200
    """AdamW steps per refresh"""
    lr: float = 3e-4
    """learning rate (constant: a fine-tune, not a fresh training)"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    batch_episodes: int = 8
    """episodes per batch"""
    queries_per_episode: int = 16
    """at most this many queries per episode per batch"""
    fresh_fraction: float = 0.5
    """share of each batch drawn from the episodes since the last refresh"""
    label_fraction: float = 1.0
    """labelling budget: the share of finished episodes whose privileged labels the critic trains on (drawn per
    episode, seeded); every episode is still relabelled in the buffer and measured in the error statistics"""
    max_episodes: int = 5000
    """newest episodes kept for training and relabelling (about 110 kB each at 64 px)"""
    min_episodes: int = 20
    """a refresh waits until this many episodes are stored"""
    failure_weight: float = 0.5
    """weight of the failure loss, as in training.compact.TrainConfig"""
    aux_weight: float = 0.5
    """weight of the auxiliary loss, as in training.compact.TrainConfig"""
    augment: bool = True
    """colour/shift augmentation per episode"""
    rehearsal_data: list[str] = field(default_factory=list)
    """dataset folders (scripts/collect.py) mixed into every batch, e.g. the scripted rollouts the critic was first
    trained on: fine-tuned on an agent's states alone, the critic forgets the stages that agent has not reached
    (measured: the embedded critic reads scripted Lift lifts at 0.997 of the oracle's 1.0, the same critic after
    8 refreshes on an agent that never lifted at 0.82); from Python also one string, folders separated by commas"""
    rehearsal_fraction: float = 0.25
    """share of each batch drawn from rehearsal_data; with fresh_fraction at most 1"""
    seed: int = 0
    """seed of batch sampling and augmentation"""

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ConfigError(f"Expected refresh option `every` to be an integer >= 0 (0: off), actually: "
                              f"{self.every!r}")
        check_counts(self, ("grad_steps", "batch_episodes", "queries_per_episode", "max_episodes",
                            "min_episodes"), "refresh option")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"Expected refresh option `lr` > 0, actually: {self.lr!r}")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ConfigError(f"Expected refresh option `label_fraction` in (0, 1], actually: {self.label_fraction!r}")
        if not 0.0 <= self.fresh_fraction <= 1.0:
            raise ConfigError(f"Expected refresh option `fresh_fraction` in [0, 1], actually: {self.fresh_fraction!r}")
        if isinstance(self.rehearsal_data, str):
            self.rehearsal_data = [d.strip() for d in self.rehearsal_data.split(",") if d.strip()]
        self.rehearsal_data = [str(d) for d in self.rehearsal_data]
        if self.rehearsal_data and not 0.0 < self.rehearsal_fraction <= 1.0 - self.fresh_fraction:
            raise ConfigError("Expected refresh option `rehearsal_fraction` in (0, 1 - fresh_fraction] = "
                              f"(0, {1.0 - self.fresh_fraction:g}], actually: {self.rehearsal_fraction!r}")

    @classmethod
    def from_options(cls, **options: Any) -> RefreshConfig:
        """Build from keyword options, naming unknown ones with the closest valid name."""
        return from_options(cls, "refresh option", options)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
