"""The options of the critic in the loop (:class:`TrackerConfig`), read by :class:`~primo_loop.tracker.EpisodeTracker`
and the wrappers; ``primo_loop.tracker`` re-exports them."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from primo_loop.errors import ConfigError, check_choice, check_counts, from_options

SHAPING_MODES = ("delta", "progress", "none")


@dataclass
class TrackerConfig:
    """Options of the critic in the loop; each field's docstring below is its help text."""

    critic_every: int = 10
    """Query the critic every N env steps, and at step 0 for the baseline."""
    frame_every: int | None = None
    """Keep a frame for the clip every M steps (None: critic_every); frames are rendered only on these steps
    and on query steps."""
    clip_len: int = 8
    """Frames per clip sent to the critic, the initial and current anchors included."""
    window: int | None = None
    """Sample the clip from the last `window` kept frames only (None: from all frames since reset); the
    initial frame stays the query's initial anchor."""
    shaping: str = "delta"
    """The critic's reward term: delta (potential-based, gamma * phi_next - phi), progress (phi itself) or
    none."""
    gamma: float = 0.99
    """Discount of the potential-based term; match the agent's gamma."""
    env_weight: float = 1.0
    """Weight of the env's own reward."""
    critic_weight: float = 1.0
    """Weight of the critic's shaping term."""
    terminate: bool = True
    """End episodes early on the critic's failure and regression signals."""
    failure_threshold: float = 0.5
    """Failure probability that counts as a failure signal."""
    failure_patience: int = 2
    """Consecutive failure signals that end the episode."""
    regression_delta: float = 0.3
    """Drop of progress below its running maximum that counts as a regression signal."""
    regression_patience: int = 2
    """Consecutive regression signals that end the episode."""
    min_peak: float = 0.3
    """Regression is judged only once progress has peaked at least this high."""
    termination_penalty: float = 0.0
    """Added once, to the reward of the step on which the critic ends the episode."""
    async_critic: bool = False
    """Ask the critic in the background and keep stepping (for slow critics); verdicts apply when they arrive,
    and rewards that wait for one are settled later (info critic/pending_id, critic/corrections)."""
    max_pending: int = 64
    """Asynchronous mode: the most queries waiting or in flight; at the bound a step waits for the critic."""

    def __post_init__(self) -> None:
        self.shaping = check_choice("shaping mode", self.shaping, SHAPING_MODES)
        check_counts(self, ("critic_every", "clip_len", "failure_patience", "regression_patience", "max_pending"))
        if self.frame_every is None:
            self.frame_every = self.critic_every
        if self.frame_every < 1:
            raise ConfigError(f"Expected `frame_every` >= 1, actually: {self.frame_every!r}")
        if self.window is not None and self.window < 1:
            raise ConfigError(f"Expected `window` >= 1 or None, actually: {self.window!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"Expected `gamma` in (0, 1], actually: {self.gamma!r}")
        for name in ("failure_threshold", "regression_delta", "min_peak"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"Expected `{name}` in [0, 1], actually: {value!r}")

    @classmethod
    def from_options(cls, **options: Any) -> TrackerConfig:
        """Build from keyword options, naming unknown ones with the closest valid name."""
        return from_options(cls, "tracker option", options)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
