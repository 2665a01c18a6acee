"""Recovery executor (and the experiment in benchmarks/recovery.py) on the 1-D fake env (no simulator)."""
from __future__ import annotations


import numpy as np
import pytest

from policies.recovery import RecoveryConfig, RecoveryExecutor
from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.wrappers import CriticInTheLoop


class FakeReplanner:
    """Pushes the marker forward; with ``failure`` it turns back after ``fail_at`` steps (a "drop") until
    ``replan()``, after which it goes forward for good."""

    def __init__(self, env, failure: str | None = None, seed: int = 0, fail_at: int = 6):
        self.failure, self.fail_at = failure, fail_at
        self.replans = 0

    def reset(self, seed: int | None = None) -> None:
        self.t, self.failing, self.failure_injected_at = 0, False, None
        self.injecting = self.failure is not None

    def act(self, obs) -> np.ndarray:
        self.t += 1
        if self.injecting and self.t > self.fail_at:
            self.failing = True
            if self.failure_injected_at is None:
                self.failure_injected_at = self.t
        return np.array([-1.0 if self.failing else 1.0], dtype=np.float32)

    def replan(self) -> None:
        self.replans += 1
        self.failing = self.injecting = False


def monitored(horizon=60, **tracker):
    return CriticInTheLoop(ProgressEnv(horizon=horizon), ScriptedCritic(), critic_every=5, **tracker)


def test_unmonitored_failure_fails_and_monitored_recovers():
    cfg = RecoveryConfig(hold_steps=5)
    env = ProgressEnv(horizon=60)
    out = RecoveryExecutor(env, FakeReplanner(env, "drop"), cfg).run(seed=0)
    assert not out.success and out.ended_by == "time_limit" and out.replans == 0 and out.failure_injected_at == 7

    env = monitored()
    policy = FakeReplanner(env, "drop")
    out = RecoveryExecutor(env, policy, cfg).run(seed=0)
    assert out.success and out.ended_by == "success"
    assert out.replans == 1 == policy.replans and out.reasons == ["regression"]
    assert out.first_signal_step == 15 > out.failure_injected_at
    assert env.tracker.step == out.steps  # the env was never reset: one episode throughout


def test_nominal_runs_raise_no_alarm():
    env = monitored()
    out = RecoveryExecutor(env, FakeReplanner(env, None), RecoveryConfig(hold_steps=5)).run(seed=1)
    assert out.success and out.signals == 0 and out.replans == 0


def test_retry_budget_ends_the_episode():
    env = monitored()
    out = RecoveryExecutor(env, FakeReplanner(env, "drop"), RecoveryConfig(max_retries=0, hold_steps=5)).run(seed=0)
    assert not out.success and out.ended_by == "critic" and out.replans == 0 and out.signals == 1


def test_signals_in_cooldown_rearm_without_spending_retries():
    # a critic that keeps saying "failed" after the replan, as a latched failure flag would
    def verdict(q):
        from primo_loop.types import CriticVerdict
        return CriticVerdict(progress=q.privileged["progress"], failure_prob=1.0 if 5 <= q.step <= 40 else 0.0)

    env = CriticInTheLoop(ProgressEnv(horizon=80), ScriptedCritic(verdict), critic_every=5)
    policy = FakeReplanner(env, None)
    out = RecoveryExecutor(env, policy, RecoveryConfig(max_retries=1, cooldown_steps=50, hold_steps=30)).run(seed=0)
    assert out.replans == 1 and out.signal_steps == [10, 20, 30] and out.success


def test_executor_needs_terminating_tracker():
    env = CriticInTheLoop(ProgressEnv(), ScriptedCritic(), terminate=False)
    with pytest.raises(ConfigError, match="terminate=True"):
        RecoveryExecutor(env, FakeReplanner(env))
    with pytest.raises(ConfigError):
        RecoveryConfig(hold_steps=0)


def test_experiment_report_and_resume(tmp_path, monkeypatch):
    """The study in benchmarks/recovery.py, run with the executor on the fake env."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    experiment = importlib.import_module("benchmarks.recovery")
    ExperimentConfig, read_episodes = experiment.ExperimentConfig, experiment.read_episodes
    run_experiment, write_report = experiment.run_experiment, experiment.write_report

    def make_env(task, robot, horizon, image_size):
        return ProgressEnv(horizon=horizon)

    cfg = ExperimentConfig(env="Fake", critic="scripted", conditions=("nominal", "drop"), episodes=3, horizon=60,
                           tracker_options={"critic_every": 5}, recovery=RecoveryConfig(hold_steps=5),
                           out=str(tmp_path))
    rows = run_experiment(cfg, make_env=make_env, make_policy=FakeReplanner, critic=ScriptedCritic())
    assert len(rows) == 12
    result = write_report(cfg, rows, "python scripts/recovery.py ...")
    s = result["summary"]
    assert s["drop"]["success_unmonitored"][:2] == (0.0, 0) and s["drop"]["success_monitored"][:2] == (1.0, 3)
    assert s["nominal"]["false_alarms"][:2] == (0.0, 0)
    for name in ("recovery.md", "recovery.png", "recovery.json", "episodes.jsonl"):
        assert (tmp_path / name).is_file()
    assert "| drop | 0% (0/3) | 100% (3/3) |" in (tmp_path / "recovery.md").read_text()
    # a killed run left a half line: it is skipped, and a re-run only does what is missing
    with (tmp_path / "episodes.jsonl").open("a") as f:
        f.write('{"condition": "dr')
    cfg.episodes = 4
    rows = run_experiment(cfg, make_env=make_env, make_policy=FakeReplanner, critic=ScriptedCritic())
    assert len(rows) == 16 and len(read_episodes(tmp_path / "episodes.jsonl")) == 16
    assert "3 episodes per bar" in (tmp_path / "recovery.md").read_text()
