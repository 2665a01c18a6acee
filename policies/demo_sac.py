"""SAC that learns from the scripted demonstrations :class:`policies.warmup.ScriptedWarmup` records.

:class:`DemoSAC`

* stores the executed action (``info["executed_action"]``) in its replay buffer instead of the one it sampled,
  so the demonstrations are ordinary transitions rewarded by whatever reward the run uses (sparse, dense,
  critic or oracle shaping);
* with ``replay_buffer_class=DemoReplayBuffer`` keeps them apart, never overwritten, and draws a fixed share of
  every batch from them (symmetric sampling, as in RLPD; Ball et al., 2023);
* with ``bc_steps > 0`` first fits its actor to them by behaviour cloning, once, when learning starts;
* with ``bc_regularize=True`` follows every SAC gradient step with one behaviour-cloning step on a batch of
  demonstrations (same optimizer), so the early, poorly trained Q-function cannot pull the actor away from
  what the demonstrations do; SAC still improves the actor wherever the demonstrations say nothing;
* with ``n_steps > 1`` (``algo_kwargs={"n_steps": N}``, ``--sb3.n-steps N``) learns Q from n-step returns, on the demonstrations and on its own
  data alike (:class:`DemoReplayBuffer`);
* with ``q_warmup_steps > 0`` then runs that many SAC updates in which only the Q-function learns (the actor's
  and the entropy coefficient's learning rates are held at 0), so Q has evaluated the cloned policy before
  the actor starts to follow it (``algo_kwargs={"q_warmup_steps": N}``; from Python only).

Without demonstrations it is SB3's SAC.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from policies.warmup import EXECUTED


class _NStepBuffer(NStepReplayBuffer):
    """SB3's n-step replay buffer, sampling exactly as the one-step ``ReplayBuffer`` when ``n_steps == 1``."""

    def _get_samples(self, batch_inds, env=None) -> ReplayBufferSamples:
        if self.n_steps == 1:
            return ReplayBuffer._get_samples(self, batch_inds, env=env)
        return super()._get_samples(batch_inds, env=env)


class DemoReplayBuffer(_NStepBuffer):
    """Every transition goes to the main (circular) buffer; those a step marked with ``info["executed_action"]``
    also go to ``demos`` (up to ``demo_capacity``, kept for the whole run), a whole episode at a time.
    ``sample`` draws ``demo_fraction`` of each batch from ``demos`` once it holds any.

    With ``n_steps > 1`` both sample n-step returns (discount ``gamma``), which carry the reward of the
    demonstrations' later stages back to their start n times faster than one-step targets (as DQfD and DDPGfD do).
    """

    def __init__(self, buffer_size: int, observation_space: Any, action_space: Any, device: Any = "auto",
                 n_envs: int = 1, optimize_memory_usage: bool = False, handle_timeout_termination: bool = True,
                 demo_fraction: float = 0.5, demo_capacity: int = 20_000, n_steps: int = 1, gamma: float = 0.99):
        if not 0.0 <= demo_fraction < 1.0:
            raise ValueError(f"Expected 0 <= demo_fraction < 1, actually: {demo_fraction!r}")
        if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"Expected n_steps to be an integer >= 1, actually: {n_steps!r}")
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs,
                         optimize_memory_usage=optimize_memory_usage,
                         handle_timeout_termination=handle_timeout_termination, n_steps=int(n_steps), gamma=gamma)
        self.demo_fraction = float(demo_fraction)
        self._pending: list[list[tuple]] = [[] for _ in range(n_envs)]  # each env's demonstration so far
        self.demos = _NStepBuffer(demo_capacity, observation_space, action_space, device=device, n_envs=1,
                                  handle_timeout_termination=handle_timeout_termination, n_steps=int(n_steps),
                                  gamma=gamma)

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        super().add(obs, next_obs, action, reward, done, infos)
        reward, done = np.asarray(reward), np.asarray(done)
        for i, info in enumerate(infos):
            if EXECUTED in info:
                self._pending[i].append(tuple(np.array(x[i:i + 1]) for x in (obs, next_obs, action, reward, done))
                                        + ({**info},))
            if self._pending[i] and (done[i] or EXECUTED not in info):
                self._store_demo(i)

    def _store_demo(self, i: int) -> None:
        """Move env ``i``'s finished demonstration into ``demos`` as one contiguous episode, so that n-step
        returns never run from one worker's episode into another's. A demonstration the hand-over cut short
        ends in a time-limit mark: its last step bootstraps instead of running on into the next one."""
        episode, self._pending[i] = self._pending[i], []
        *_, last_done, last_info = episode[-1]
        if not last_done[0]:
            last_info["TimeLimit.truncated"] = True
        for o, no, a, r, d, info in episode:
            if self.demos.full:
                return
            self.demos.add(o, no, a, r, d, [info])

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        n_demo = int(round(batch_size * self.demo_fraction)) if self.demos.size() else 0
        if n_demo == 0:
            return super().sample(batch_size, env=env)
        online, demo = super().sample(batch_size - n_demo, env=env), self.demos.sample(n_demo, env=env)
        return ReplayBufferSamples(*(None if a is None else th.cat([a, b]) for a, b in zip(online, demo)))


class DemoSAC(SAC):
    """SAC that learns from executed demonstrations (see the module doc).

    Args:
        bc_steps: behaviour-cloning steps on the demonstrations before the first SAC update (needs
            ``replay_buffer_class=DemoReplayBuffer``) [0].
        bc_lr: their learning rate.
        bc_regularize: one behaviour-cloning step after every SAC gradient step.
        q_warmup_steps: Q-function-only SAC updates after the cloning, before the actor (and the entropy
            coefficient) start to learn: Q first evaluates the cloned policy, so the actor does not follow
            an untrained Q [0].
        *args, **kwargs: SB3's SAC.
    """

    def __init__(self, *args: Any, bc_steps: int = 0, bc_lr: float = 1e-3, bc_regularize: bool = False,
                 q_warmup_steps: int = 0, **kwargs: Any):
        self.bc_steps, self.bc_lr, self.bc_regularize = int(bc_steps), float(bc_lr), bool(bc_regularize)
        self.q_warmup_steps, self._q_warming = int(q_warmup_steps), False
        self.bc_done, self.bc_loss = False, None
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)
        if not self._q_warming:
            return
        held = [self.actor.optimizer] + ([self.ent_coef_optimizer] if self.ent_coef_optimizer is not None else [])
        for group in (g for opt in held for g in opt.param_groups):
            group["lr"] = 0.0  # the actor and the entropy coefficient hold still: Adam with lr 0 moves nothing

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        for i, info in enumerate(infos):
            if EXECUTED in info:
                buffer_action[i] = self.policy.scale_action(np.asarray(info[EXECUTED], dtype=np.float32))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        demos = getattr(self.replay_buffer, "demos", None)
        has_demos = demos is not None and demos.size() > 0
        if has_demos and not self.bc_done:
            self._start_from_demos(demos, batch_size)
        if not (self.bc_regularize and has_demos):
            super().train(gradient_steps, batch_size)
            return
        for _ in range(gradient_steps):  # alternate: one SAC step, one cloning step
            super().train(1, batch_size)
            self.bc_loss = self._clone_demos(demos, batch_size, 1, self.actor.optimizer)
        self.logger.record("train/bc_loss", self.bc_loss)

    def _start_from_demos(self, demos: ReplayBuffer, batch_size: int) -> None:
        """Once, at the first update with demonstrations: clone them, then warm the Q-function up."""
        if self.bc_steps:
            self.bc_loss = self._clone_demos(demos, batch_size, self.bc_steps,
                                             th.optim.Adam(self.actor.parameters(), lr=self.bc_lr))
            self.logger.record("train/bc_loss", self.bc_loss)
        if self.q_warmup_steps:
            self._q_warming = True
            try:
                super().train(self.q_warmup_steps, batch_size)
            finally:
                self._q_warming = False
        self.bc_done = True

    def _clone_demos(self, demos: ReplayBuffer, batch_size: int, steps: int, optim: th.optim.Optimizer) -> float:
        """Gaussian negative log-likelihood of the demonstrated actions before the tanh squashing."""
        self.policy.set_training_mode(True)
        loss = th.zeros(())
        for _ in range(steps):
            batch = demos.sample(batch_size)
            mean, log_std, _ = self.actor.get_action_dist_params(batch.observations)
            target = th.atanh(batch.actions.clamp(-0.97, 0.97))  # saturated demo actions stay finite
            loss = (0.5 * ((target - mean) / log_std.exp()) ** 2 + log_std).sum(dim=1).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
        return float(loss.detach())


def value_check(model: SAC, source: str = "demos") -> dict[str, Any]:
    """The learned Q-function along the stored episodes, next to the discounted return they collected.

    For every transition of every complete episode in the replay buffer (``source="demos"``: the
    demonstrations of a :class:`DemoReplayBuffer`; ``"all"``: the main buffer), three numbers:

    * ``q_data``: min over the critics of Q(s, a) for the action taken;
    * ``q_policy``: the same for the actor's deterministic action;
    * ``ret``: the discounted return from s to the episode's end, with the model's gamma. At a time-limit
      end Q bootstraps on, so there ``ret`` is a lower bound of the behaviour's value; at a terminal it is exact.

    Returns ``{"gamma", "episodes", "steps", "q_data", "q_policy", "ret"}``: the last three are
    ``[episodes, max_len]`` arrays, NaN past each episode's end; ``steps`` is the episodes' lengths.
    """
    rb = model.replay_buffer
    if source == "demos":
        if getattr(rb, "demos", None) is None or not rb.demos.size():
            raise ValueError("the replay buffer holds no demonstrations; use source='all'")
        buf = rb.demos
    elif source == "all":
        buf = rb
    else:
        raise ValueError(f"Expected source 'demos' or 'all', actually: {source!r}")
    n = buf.size()
    order = (np.arange(buf.pos, buf.pos + n) % buf.buffer_size) if buf.full else np.arange(n)
    gamma = float(model.gamma)
    episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for j in range(buf.n_envs):
        ends = np.flatnonzero((buf.dones[order, j] > 0) | (buf.timeouts[order, j] > 0))
        start = 0
        if buf.full and len(ends):  # the oldest episode's beginning has been overwritten
            start, ends = ends[0] + 1, ends[1:]
        for end in ends:
            rows = order[start:end + 1]
            episodes.append((buf.observations[rows, j], buf.actions[rows, j], buf.rewards[rows, j]))
            start = end + 1
    if not episodes:
        raise ValueError("no complete episode in the replay buffer")
    length = max(len(e[2]) for e in episodes)
    out = {k: np.full((len(episodes), length), np.nan) for k in ("q_data", "q_policy", "ret")}
    model.policy.set_training_mode(False)

    def min_q(o: th.Tensor, a: th.Tensor) -> np.ndarray:
        return th.min(th.cat(model.critic(o, a), dim=1), dim=1).values.numpy()

    with th.no_grad():
        for i, (obs, act, rew) in enumerate(episodes):
            o = th.as_tensor(obs, dtype=th.float32)
            out["q_data"][i, :len(rew)] = min_q(o, th.as_tensor(act, dtype=th.float32))
            out["q_policy"][i, :len(rew)] = min_q(o, model.actor(o, deterministic=True))
            g = 0.0
            for t in reversed(range(len(rew))):
                g = float(rew[t]) + gamma * g
                out["ret"][i, t] = g
    return {"gamma": gamma, "episodes": len(episodes), "steps": [len(e[2]) for e in episodes], **out}
