"""SB3 callbacks of a training run, one module-level class each: critic statistics, checkpoints that prune old
replay buffers, the eval log, seeded resumable evaluation, and online critic refresh."""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback

from policies.sb3.run_folder import append_eval_row, prune_checkpoints, refresh_state_path
from policies.sb3.vec_envs import find_critic_wrapper

log = logging.getLogger(__name__)


def eval_seed(seed: int, timesteps: int) -> int:
    """The seed of a run's evaluation at ``timesteps`` env steps: it differs between runs and between a run's
    evaluations, and a resumed run evaluates on the same initial states as one that was never stopped.

    Unseeded, every robosuite env draws its initial states from the seed it was built with (0 for all, see
    ``envs.adapter``), so every run of every seed would be evaluated on the same sequence of states.
    """
    return int(np.random.SeedSequence([seed + 10_000, timesteps]).generate_state(1)[0])


class CriticStatsCallback(BaseCallback):
    """Records ``critic/*`` in the SB3 logger: query, unreadable, error and termination counts, mean
    latency per query (ms) and mean progress over the last ``window`` answered queries.

    Where the env reports its privileged progress (``info["oracle/progress"]``, as every robosuite task
    does), it also records how the critic's answers stand against it over the same window:
    ``critic/oracle_mae`` (mean absolute difference, progress in [0, 1]) and ``critic/oracle_bias``
    (critic minus oracle), each verdict against the oracle at its own query's step (``critic/oracle_at_query``: an
    asynchronous verdict arrives steps later, when the state has moved on). A bias that climbs during training is
    the agent finding states the critic overrates: the learned reward is being exploited, whatever the training
    return says."""

    def __init__(self, window: int = 1000):
        super().__init__()
        self.progress: deque[float] = deque(maxlen=window)
        self.latency: deque[float] = deque(maxlen=window)
        self.gap: deque[float] = deque(maxlen=window)  # critic minus oracle progress, answered queries
        self.wrapper = None

    def _on_training_start(self) -> None:
        self.wrapper = find_critic_wrapper(self.training_env)

    def _on_step(self) -> bool:
        if self.wrapper is None:
            return True
        for info in self.locals.get("infos", ()):
            if info.get("critic/queried"):
                # read queries only: through an unreadable or failed one, critic/progress is the held value
                if info.get("critic/progress") is not None and info.get("critic/verdict", "read") == "read":
                    progress = float(info["critic/progress"])
                    self.progress.append(progress)
                    # against the oracle at the query's own step (an asynchronous verdict arrives later)
                    oracle = info.get("critic/oracle_at_query")
                    if oracle is not None:
                        self.gap.append(progress - oracle)
                self.latency.append(float(info.get("critic/latency_s") or 0.0))
        self.record()
        return True

    def record(self) -> None:
        stats = [t.stats for t in self.wrapper.trackers]
        rec = self.logger.record
        rec("critic/queries", sum(s.queries for s in stats))
        rec("critic/unreadable", sum(s.unreadable for s in stats))
        rec("critic/errors", sum(s.errors for s in stats))
        rec("critic/raised_batches", self.wrapper.raised_batches)
        rec("critic/terminations", sum(s.terminations for s in stats))
        rec("critic/frames_rendered", sum(s.frames_rendered for s in stats))
        if self.latency:
            rec("critic/latency_ms", 1000.0 * float(np.mean(self.latency)))
        if self.progress:
            rec("critic/progress_mean", float(np.mean(self.progress)))
        if self.gap:
            rec("critic/oracle_mae", float(np.mean(np.abs(self.gap))))
            rec("critic/oracle_bias", float(np.mean(self.gap)))
        record_cascade(rec, self.wrapper.critic)


def record_cascade(rec: Any, critic: Any) -> None:
    """A cascade critic's teacher statistics as ``critic/teacher_*`` (``critic/teacher_student_gap``: teacher minus
    student progress on the queries both answered; ``critic/teacher_share``; ``critic/teacher_delay_s``); a value
    with nothing behind it yet (no teacher verdict arrived) is not recorded."""
    from primo_loop.critics.cascade import CascadeCritic

    if isinstance(critic, CascadeCritic):
        for key, value in critic.summary().items():
            if value is not None:
                rec(f"critic/{key}", value)

class PrunedCheckpoints(CheckpointCallback):
    """SB3's CheckpointCallback that also deletes the replay buffers of all but the newest ``keep``."""

    def __init__(self, *args: Any, keep: int = 2, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keep = keep

    def _on_step(self) -> bool:
        saved = self.n_calls % self.save_freq == 0
        ok = super()._on_step()
        if saved:
            prune_checkpoints(Path(self.save_path), self.keep)
        return ok

class EvalLog(BaseCallback):
    """Appends one row per evaluation to ``eval.csv`` (called by EvalCallback after each eval)."""

    def __init__(self, path: Path, t0: float):
        super().__init__()
        self.path, self.t0 = path, t0

    def _on_step(self) -> bool:
        ev = self.parent
        # an env that reports no ``is_success`` is evaluated on its return: its success rate is left empty
        success = float(np.mean(ev._is_success_buffer)) if ev._is_success_buffer else None
        append_eval_row(self.path, {"timesteps": self.num_timesteps, "success_rate": success,
                                    "mean_reward": float(ev.last_mean_reward), "episodes": ev.n_eval_episodes,
                                    "wall_s": round(time.time() - self.t0, 1)})
        if success is not None:
            self.logger.record("eval/success_rate", success)
        return True

class ResumableEval(EvalCallback):
    """SB3's EvalCallback that seeds every evaluation with :func:`eval_seed` and, on a resumed run, first
    does the evaluation due at the resume step when ``eval.csv`` lacks it: a run killed between a checkpoint
    and the evaluation of the same step (the evaluation comes second) would otherwise resume past it and
    leave a hole in its curve."""

    def __init__(self, *args: Any, evaluate_at_start: bool = False, seed: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.evaluate_at_start = evaluate_at_start
        self.seed = seed

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:  # SB3's own test for "evaluate now"
            self.eval_env.seed(eval_seed(self.seed, self.num_timesteps))  # applied at evaluate_policy's reset
        return super()._on_step()

    def _on_training_start(self) -> None:
        super()._on_training_start()
        if self.evaluate_at_start:
            log.info("evaluating at %d steps: the evaluation due there was lost to the kill", self.num_timesteps)
            self._on_step()  # n_calls is 0 here, so the evaluation fires

class CriticRefreshCallback(BaseCallback):
    """Drives online critic refresh (:class:`~primo_loop.training.online.CriticRefresher`): tells it which
    buffer row each step's transitions go to (with an asynchronous critic, the row each gets when the
    :class:`~policies.sb3.deferred.DeferredRewards` buffer releases it; a due refresh or relabel first drains the
    critic so every earlier row is stored), lets it refresh and relabel when due, records ``refresh/*``
    (and a row of ``OUT/refresh.csv``) per refresh, and saves its state next to each checkpoint. It must
    run before the checkpoint callback, so a saved buffer and a saved state agree."""

    def __init__(self, refresher: Any, csv_path: Path, save_freq: int, save_path: Path):
        super().__init__()
        self.refresher, self.csv_path = refresher, csv_path
        self.save_freq, self.save_path = save_freq, save_path
        self.wrapper = None

    def _on_training_start(self) -> None:
        from policies.sb3.deferred import DeferredRewards

        self.wrapper = find_critic_wrapper(self.training_env)
        rb = self.model.replay_buffer
        # an asynchronous critic's buffer stores a row once its rewards are final, at an index known then
        self.deferred = isinstance(rb, DeferredRewards)
        if self.deferred:
            rb.on_store = self.refresher.record

    def _on_step(self) -> bool:
        from policies.sb3.deferred import settle_before_refresh

        rb = self.model.replay_buffer
        infos = self.locals["infos"]
        if self.deferred and self.refresher.due(self.num_timesteps):
            settle_before_refresh(rb, self.wrapper, infos)
        stats = self.refresher.on_step(self.num_timesteps, rb.pos, list(infos), rb.rewards,
                                       running=list(self.wrapper.episode_ids), record=not self.deferred)
        if stats is not None:
            for key, value in stats.items():
                self.logger.record(f"refresh/{key}", value)
            append_eval_row(self.csv_path, {"timesteps": self.num_timesteps, **stats}, fields=None)
        if self.save_freq and self.n_calls % self.save_freq == 0:
            self.save_path.mkdir(parents=True, exist_ok=True)
            self.refresher.save(refresh_state_path(self.save_path, self.num_timesteps))
        return True

    def _on_training_end(self) -> None:
        # the critic as the agent last saw it, loadable like any compact checkpoint
        self.refresher.export(self.csv_path.parent / "critic", run=str(self.csv_path.parent),
                              timesteps=int(self.num_timesteps))
