"""Deferred critic rewards reach SB3's learners exactly (asynchronous critic, ``--tracker.async-critic``).

With an asynchronous critic (:mod:`primo_loop.asynchronous`) a step may return a provisional reward and
``info["critic/pending_id"]``; its final reward (what a synchronous critic gives) arrives later as a
:class:`~primo_loop.ledger.RewardCorrection` in a later step's ``info["critic/corrections"]``, or from the wrapper's
``drain()``. Through SB3's own hooks (buffer classes and a callback; the algorithms are not forked):

* **SAC** (:class:`DeferredReplayBuffer`, :class:`DeferredDemoReplayBuffer`): a row of transitions (one per
  worker) is held back while any of its rewards is pending; the corrections rewrite the held rewards, and a row
  enters SB3's storage once all of them are final, in order. So a sampled transition is never one still waiting
  (nothing unsettled is in the storage), n-step returns read contiguous settled rows, and what is sampled is
  the synchronous reward. SB3's ``learning_starts`` must exceed the critic's delay in steps, or the first
  update finds nothing settled (an error says so). With online critic refresh, a due refresh or relabel first
  drains the critic (:func:`settle_before_refresh`), and the refresher maps each row when it is released
  (``on_store``) with its final shaping: the relabelled buffer equals the synchronous run's.
* **PPO** (:class:`DeferredRolloutBuffer` with :class:`DeferredRewardsCallback`): the callback notes in which
  row each pending reward lies and applies the corrections as they come; before returns and advantages are
  computed, the buffer drains the critic (waits for the verdicts still out) and completes its rewards. A
  truncated episode's last reward carries PPO's bootstrap ``gamma * V(terminal observation)``, recomputed by
  the same expression, so the completed buffer equals the synchronous one value for value.

A checkpoint of the replay buffer leaves out rows still held (their verdicts die with the process). The corrections
are raw rewards: a ``VecNormalize`` that normalises rewards (PPO stores them normalised) is not supported.
"""
from __future__ import annotations

import copy
import logging
from collections import deque
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback

from policies.demo_sac import DemoReplayBuffer
from primo_loop.errors import ConfigError

log = logging.getLogger(__name__)

PENDING = "critic/pending_id"
CORRECTIONS = "critic/corrections"


class _Row:
    """One ``add`` call held back: the arguments, and the workers whose reward is still pending."""

    def __init__(self, args: tuple, infos: list[dict[str, Any]]):
        self.args = args  # (obs, next_obs, action, reward, done), copied
        self.infos = infos
        self.waiting: set[int] = set()


class DeferredRewards:
    """Mixin for SB3 replay buffers: hold rows back until their rewards are final (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._held: deque[_Row] = deque()
        self._where: dict[int, tuple[_Row, int]] = {}
        self.corrected = 0
        # called as on_store(row index, infos) just before a row enters SB3's storage (online critic refresh
        # maps buffer rows to episode steps by it: a row's index is the one it gets when released)
        self.on_store: Any = None

    @property
    def held(self) -> int:
        """Rows (env steps) held back, waiting for a verdict."""
        return len(self._held)

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        row = _Row(tuple(copy.deepcopy(x) for x in (obs, next_obs, action)) + (np.array(reward, dtype=np.float32),
                                                                                np.array(done)),
                   [dict(info) for info in infos])
        for i, info in enumerate(infos):
            if info.get(PENDING) is not None:
                row.waiting.add(i)
                self._where[int(info[PENDING])] = (row, i)
        self._held.append(row)
        for info in infos:
            self.settle(info.get(CORRECTIONS, ()))
        self._release()

    def settle(self, corrections) -> None:
        """Write final rewards into the held rows (corrections of transitions already gone are ignored)."""
        for c in corrections:
            found = self._where.pop(int(c.transition_id), None)
            if found is None:
                continue
            row, i = found
            row.args[3][i] = c.reward
            if c.shaping is not None and "critic/shaping" in row.infos[i]:
                row.infos[i]["critic/shaping"] = c.shaping  # the final critic term, as a synchronous step gives
            row.waiting.discard(i)
            self.corrected += 1
        self._release()

    def _release(self) -> None:
        while self._held and not self._held[0].waiting:
            row = self._held.popleft()
            on_store = getattr(self, "on_store", None)  # absent from a buffer pickled before it existed
            if on_store is not None:
                on_store(self.pos, row.infos)
            super().add(*row.args, row.infos)

    def sample(self, batch_size: int, env: Any = None):
        if self.size() == 0:
            raise ConfigError(f"The replay buffer holds no settled transition yet ({self.held} env steps wait for "
                              "the asynchronous critic); expected learning_starts above the critic's delay in env "
                              "steps: raise learning_starts (--sb3.learning-starts)")
        return super().sample(batch_size, env=env)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._held:
            log.info("replay buffer saved without %d env steps still waiting for the critic", len(self._held))
        state["_held"], state["_where"], state["on_store"] = deque(), {}, None
        return state


class DeferredReplayBuffer(DeferredRewards, ReplayBuffer):
    """SB3's ReplayBuffer that stores a transition only once its reward is final."""


class DeferredNStepReplayBuffer(DeferredRewards, NStepReplayBuffer):
    """SB3's NStepReplayBuffer (``n_steps > 1``) that stores a transition only once its reward is final."""


class DeferredDemoReplayBuffer(DeferredRewards, DemoReplayBuffer):
    """:class:`policies.demo_sac.DemoReplayBuffer` that stores a transition only once its reward is final."""


class DeferredRolloutBuffer(RolloutBuffer):
    """SB3's RolloutBuffer whose pending rewards are completed before returns and advantages are computed.

    :class:`DeferredRewardsCallback` attaches the critic wrapper and the model, notes where pending rewards lie and
    applies corrections as they come; :meth:`compute_returns_and_advantage` drains the rest first.
    """

    def reset(self) -> None:
        super().reset()
        self.pending: dict[int, tuple[int, int, Any]] = {}  # id -> (row, env, terminal obs if bootstrapped)
        self.source = getattr(self, "source", None)  # the critic wrapper (its drain())
        self.policy = getattr(self, "policy", None)
        self.gamma_boot = getattr(self, "gamma_boot", None)
        self.bootstrapped = 0  # settled rewards that carry PPO's bootstrap (truncated episodes' last steps)

    def note(self, infos, dones) -> None:
        """Before the step's ``add``: the pending rewards of the row about to be written."""
        for i, info in enumerate(infos):
            if info.get(PENDING) is None:
                continue
            boot = None
            if dones[i] and info.get("terminal_observation") is not None and info.get("TimeLimit.truncated", False):
                boot = info["terminal_observation"]  # PPO adds gamma * V(this) to the stored reward
            self.pending[int(info[PENDING])] = (self.pos, i, boot)

    def settle(self, corrections) -> None:
        """Write final rewards into the rows already added (with PPO's bootstrap where it added one)."""
        for c in corrections:
            found = self.pending.pop(int(c.transition_id), None)
            if found is None:
                continue
            row, i, boot = found
            self.rewards[row, i] = c.reward
            if boot is not None:  # the expression of SB3's collect_rollouts, on the same network and input
                with th.no_grad():
                    terminal_obs = self.policy.obs_to_tensor(boot)[0]
                    terminal_value = self.policy.predict_values(terminal_obs)[0]
                rewards = self.rewards[row]  # SB3: ``rewards[idx] += self.gamma * terminal_value``
                rewards[i] += self.gamma_boot * terminal_value
                self.bootstrapped += 1

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        if self.pending:
            if self.source is None:
                raise ConfigError("The rollout buffer has rewards pending and no critic wrapper to wait for; "
                                  "expected DeferredRewardsCallback among the learn() callbacks")
            self.settle(self.source.drain())
            if self.pending:
                raise ConfigError(f"{len(self.pending)} rewards are still pending after the critic was drained; "
                                  "expected every verdict to settle its transitions (a bug in the critic wrapper)")
        super().compute_returns_and_advantage(last_values, dones)


def settle_before_refresh(buffer: DeferredRewards, wrapper: Any, infos: list[dict[str, Any]]) -> int:
    """Online critic refresh with an asynchronous critic: before the refresher reads the replay buffer's rewards
    (and uses the critic), wait for every verdict on its way, so every row SB3 added before this step enters the
    storage with its final reward (and, through ``on_store``, the refresher's map at the index it got there).
    This step's own transitions are not added yet (SB3 adds after the callbacks): their corrections join this
    step's infos, which the coming ``add`` settles. Returns how many corrections the wait brought.

    Raises:
        ConfigError: a row is still held after the wait (a verdict that settles nothing: a bug in the wrapper).
    """
    for info in infos:  # this step's corrections, before the rows they complete are needed
        buffer.settle(info.get(CORRECTIONS, ()))
    drained = list(wrapper.drain())
    buffer.settle(drained)
    own = {int(info[PENDING]) for info in infos if info.get(PENDING) is not None}
    mine = tuple(c for c in drained if int(c.transition_id) in own)
    if mine:
        infos[0][CORRECTIONS] = tuple(infos[0].get(CORRECTIONS, ())) + mine
    if buffer.held:
        raise ConfigError(f"{buffer.held} env steps still wait for the critic after it was drained; expected "
                          "every verdict to settle its transitions (a bug in the critic wrapper)")
    return len(drained)


def deferred_buffer_class(algo: str, given: type | None = None) -> type:
    """The buffer class that settles deferred rewards for ``algo`` ("sac" or "ppo"), in place of ``given``
    (the class the run would use otherwise; None: SB3's default)."""
    if algo == "ppo":
        options = {None: DeferredRolloutBuffer, RolloutBuffer: DeferredRolloutBuffer}
        base: type = DeferredRolloutBuffer
    else:
        options = {None: DeferredReplayBuffer, ReplayBuffer: DeferredReplayBuffer,
                   NStepReplayBuffer: DeferredNStepReplayBuffer, DemoReplayBuffer: DeferredDemoReplayBuffer}
        base = DeferredRewards
    if given in options:
        return options[given]
    if isinstance(given, type) and issubclass(given, base):
        return given
    raise ConfigError(f"An asynchronous critic needs a buffer that settles deferred rewards; the run's "
                      f"{getattr(given, '__name__', given)!r} does not: expected one of "
                      f"{sorted({c.__name__ for c in options.values()})} (policies.sb3.deferred), or a subclass")


def check_model_buffers(model: Any) -> None:
    """Refuse a model whose buffer would take pending rewards as final (e.g. resumed from a synchronous run)."""
    buffer = getattr(model, "rollout_buffer", None)
    if buffer is None:
        buffer = getattr(model, "replay_buffer", None)
    if buffer is not None and not isinstance(buffer, (DeferredRewards, DeferredRolloutBuffer)):
        raise ConfigError(f"An asynchronous critic needs a buffer that settles deferred rewards; this model's "
                          f"{type(buffer).__name__} (a run started without --tracker.async-critic) would train on "
                          "provisional rewards: resume it without --tracker.async-critic, or start a new --out")


class DeferredRewardsCallback(BaseCallback):
    """Feeds a :class:`DeferredRolloutBuffer` (PPO): the critic wrapper to drain, the pending ids of each step and
    the corrections as they arrive (a SAC replay buffer reads its infos itself). For both, records in the SB3
    logger ``critic/delay_steps`` (mean delay of the last ``window`` verdicts, env steps), ``critic/delay_steps_max``,
    ``critic/late`` (verdicts that arrived after their episode ended) and ``critic/waiting_steps`` (SAC: env steps
    held back from the replay buffer).

    Args:
        wrapper: the :class:`~primo_loop.wrappers.VecCriticInTheLoop` of the training env (its ``drain()``).
        window: verdicts the delay statistics cover.
    """

    def __init__(self, wrapper: Any, window: int = 1000):
        super().__init__()
        self.wrapper = wrapper
        self.delays: deque[int] = deque(maxlen=window)

    def _on_training_start(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, DeferredRolloutBuffer):
            buffer.source = self.wrapper
            buffer.policy, buffer.gamma_boot = self.model.policy, self.model.gamma

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        buffer = getattr(self.model, "rollout_buffer", None)
        if isinstance(buffer, DeferredRolloutBuffer):
            buffer.note(infos, self.locals["dones"])
            for info in infos:
                buffer.settle(info.get(CORRECTIONS, ()))
        for info in infos:
            self.delays.extend(info.get("critic/delay_steps", ()))
        if self.delays:
            self.logger.record("critic/delay_steps", float(np.mean(self.delays)))
            self.logger.record("critic/delay_steps_max", int(max(self.delays)))
        if self.wrapper is not None:
            self.logger.record("critic/late", sum(t.stats.late for t in self.wrapper.trackers))
        replay = getattr(self.model, "replay_buffer", None)
        if isinstance(replay, DeferredRewards):
            self.logger.record("critic/waiting_steps", replay.held)
        return True
