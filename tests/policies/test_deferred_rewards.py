"""Deferred critic rewards reach SB3's learners exactly (policies.sb3.deferred).

The key property: on a fake env with a fake critic whose verdicts arrive late and out of step, the rewards the
learner trains on (what SAC's replay buffer can sample, what PPO's rollout buffer holds at its update, with the
returns and advantages computed from them) equal, value for value, those of a synchronous critic on the same
episodes, for delta and progress shaping.
"""
from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from policies.demo_sac import DemoReplayBuffer
from policies.sb3 import AgentConfig, train
from policies.sb3.deferred import (
    DeferredDemoReplayBuffer,
    DeferredNStepReplayBuffer,
    DeferredReplayBuffer,
    DeferredRewardsCallback,
    DeferredRolloutBuffer,
    check_model_buffers,
    deferred_buffer_class,
)
from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.testing.slow import PolledRunner
from primo_loop.tracker import TrackerConfig
from primo_loop.training.online import RefreshConfig
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop

LATE = [3, 0, 7, 1, 12, 2, 5]  # env steps each critic batch takes
FAKE = "primo_loop.testing.fakes:ProgressEnv"


def odd_critic() -> ScriptedCritic:
    """Oracle progress with query-dependent noise and an unreadable answer now and then (phi held)."""
    def fn(q: CriticQuery) -> CriticVerdict:
        if q.step % 35 == 0 and q.step:
            return CriticVerdict(progress=None)
        p = q.privileged["progress"]
        return CriticVerdict(progress=float(np.clip(p + 0.1 * np.sin(q.step + 7 * p), 0.0, 1.0)))
    return ScriptedCritic(fn)


def critic_env(late: bool, shaping: str, single: bool = False):
    """Two fake envs with the critic: one vector wrapper, or (``single``) a wrapper in each sub-env."""
    if single:
        venv = DummyVecEnv([lambda k=k: CriticInTheLoop(
            ProgressEnv(horizon=30), critic=odd_critic(), critic_every=5, terminate=False, shaping=shaping,
            gamma=0.97, async_critic=late, max_pending=8, async_runner=PolledRunner(LATE[k:]) if late else None)
            for k in range(2)])
        venv.seed(3)
        return venv
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=30) for _ in range(2)])
    venv.seed(3)
    return VecCriticInTheLoop(venv, critic=odd_critic(), critic_every=5, terminate=False, shaping=shaping,
                              gamma=0.97, async_critic=late, max_pending=8,
                              async_runner=PolledRunner(LATE) if late else None)


class Each(BaseCallback):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        self.fn(self)
        return True

    def _on_rollout_end(self) -> None:
        if hasattr(self.model, "rollout_buffer"):
            self.fn(self, rollout_end=True)


def sac_run(late: bool, shaping: str, steps: int, check=None, single: bool = False):
    env = critic_env(late, shaping, single)
    model = SAC("MlpPolicy", env, learning_starts=10_000, buffer_size=1000, seed=0, gamma=0.97,
                replay_buffer_class=deferred_buffer_class("sac"), policy_kwargs={"net_arch": [8]})
    model.learn(steps, callback=Each(check or (lambda cb: None)))
    return model, env


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_sac_replay_buffer_holds_only_the_synchronous_rewards(shaping):
    steps = 232  # 116 per worker: episodes of 30 steps end with verdicts still on their way
    sync, _ = sac_run(False, shaping, steps)
    ref = sync.replay_buffer
    assert ref.pos == steps // 2 and isinstance(ref, DeferredReplayBuffer) and ref.held == 0
    seen = {"held": 0, "sizes": []}

    def check(cb):  # what the buffer could sample at every step is exactly the synchronous rewards
        rb = cb.model.replay_buffer
        assert np.array_equal(rb.rewards[:rb.pos], ref.rewards[:rb.pos])
        assert np.array_equal(rb.observations[:rb.pos], ref.observations[:rb.pos])
        seen["held"] = max(seen["held"], rb.held)
        seen["sizes"].append(rb.pos)

    late, env = sac_run(True, shaping, steps, check)
    rb = late.replay_buffer
    assert seen["held"] >= 3  # rows did wait for verdicts
    assert rb.pos < ref.pos and rb.held > 0  # the newest still wait when learning stops
    rb.settle(env.drain())
    assert rb.pos == ref.pos and rb.held == 0 and rb.corrected > 0
    for name in ("rewards", "observations", "next_observations", "actions", "dones", "timeouts"):
        assert np.array_equal(getattr(rb, name), getattr(ref, name)), name
    assert sum(t.stats.late for t in env.trackers) > 0


def test_sac_over_single_env_wrappers_in_a_vec_env():
    """Each sub-env with its own asynchronous wrapper: the corrections come in each sub-env's info."""
    sync, _ = sac_run(False, "delta", 232, single=True)
    late, env = sac_run(True, "delta", 232, single=True)
    rb = late.replay_buffer
    assert rb.held > 0
    for w in env.envs:  # ids are unique in the process, so one buffer takes every wrapper's corrections
        rb.settle(w.drain())
    n = sync.replay_buffer.pos
    assert rb.held == 0 and rb.pos == n
    assert np.array_equal(rb.rewards[:n], sync.replay_buffer.rewards[:n]) and rb.corrected > 0


def test_sac_learns_with_late_rewards_and_refuses_to_sample_nothing():
    env = critic_env(True, "delta")
    model = SAC("MlpPolicy", env, learning_starts=40, batch_size=16, buffer_size=500, seed=0,
                replay_buffer_class=DeferredReplayBuffer, policy_kwargs={"net_arch": [8]})
    model.learn(120)
    assert model.replay_buffer.size() > 0 and model.replay_buffer.corrected > 0
    env = critic_env(True, "delta")
    model = SAC("MlpPolicy", env, learning_starts=0, batch_size=4, seed=0,
                replay_buffer_class=DeferredReplayBuffer, policy_kwargs={"net_arch": [8]})
    with pytest.raises(ConfigError, match="learning_starts"):
        model.learn(20)


def ppo_run(late: bool, shaping: str):
    env = critic_env(late, shaping)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, gamma=0.97,
                rollout_buffer_class=DeferredRolloutBuffer, policy_kwargs={"net_arch": [8]})
    rollouts = []

    def snap(cb, rollout_end=False):
        if rollout_end:
            rb = cb.model.rollout_buffer
            rollouts.append({k: np.array(getattr(rb, k)) for k in ("rewards", "returns", "advantages", "values")})
            rollouts[-1]["bootstrapped"] = rb.bootstrapped

    deferred = DeferredRewardsCallback(env)
    model.learn(256, callback=[deferred, Each(snap)])  # two rollouts of 2 x 64 steps
    if late:  # the delays it logs are the ones the verdicts had
        assert max(deferred.delays) >= max(LATE) and sum(t.stats.late for t in env.trackers) > 0
    return rollouts, env


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_ppo_rollout_buffer_is_completed_to_the_synchronous_rewards_before_the_update(shaping):
    sync, _ = ppo_run(False, shaping)
    late, env = ppo_run(True, shaping)
    assert len(sync) == len(late) == 2
    for s, a in zip(sync, late):
        for key in ("rewards", "returns", "advantages", "values"):
            assert np.array_equal(s[key], a[key]), key  # value for value, the second rollout after an update
    assert sum(r["bootstrapped"] for r in late) > 0  # truncated episodes' last rewards settled late, bootstrapped
    assert env._async.pipeline.stats.waits > 0  # the buffer waited for the critic before the update


def test_config_routes_async_critic_to_the_buffers():
    base = dict(env=FAKE, reward="critic", steps=100, workers=1, horizon=30, eval_every=0, progress_bar=False)
    on = TrackerConfig(async_critic=True, max_pending=4)
    assert AgentConfig(**base, tracker=on).hyperparameters()["replay_buffer_class"] is DeferredReplayBuffer
    ppo = AgentConfig(**base, algo="ppo", tracker=on).hyperparameters()
    assert ppo["rollout_buffer_class"] is DeferredRolloutBuffer
    assert "replay_buffer_class" not in AgentConfig(**base).hyperparameters()  # synchronous: SB3's own
    assert deferred_buffer_class("sac", DemoReplayBuffer) is DeferredDemoReplayBuffer
    with pytest.raises(ConfigError, match="settles deferred rewards"):
        deferred_buffer_class("sac", dict)
    # online refresh and an asynchronous critic combine (tests/policies/test_deferred_refresh.py)
    assert AgentConfig(**base, tracker=on, refresh=RefreshConfig(every=100)).refresh.every == 100
    # n-step returns survive the buffer swap (SB3 sets them up only for its own default buffer)
    nstep = AgentConfig(**base, tracker=on, algo_kwargs={"n_steps": 5, "gamma": 0.95}).hyperparameters()
    assert nstep["replay_buffer_class"] is DeferredNStepReplayBuffer and "n_steps" not in nstep
    assert nstep["replay_buffer_kwargs"] == {"n_steps": 5, "gamma": 0.95}
    model = SAC("MlpPolicy", critic_env(True, "delta"), buffer_size=100, **{k: nstep[k] for k in (
        "replay_buffer_class", "replay_buffer_kwargs", "gamma")})
    assert isinstance(model.replay_buffer, NStepReplayBuffer) and model.replay_buffer.n_steps == 5


def test_train_agent_options_and_a_run_with_the_background_critic(tmp_path, load_script):
    script = load_script("scripts/train_agent.py")
    args = script.build_parser().parse_args(["--out", str(tmp_path / "x"), "--reward", "critic",
                                             "--tracker.async-critic", "--tracker.max-pending", "6"])
    from primo_loop.config_cli import from_namespace

    cfg = from_namespace(AgentConfig, args)
    assert cfg.tracker.async_critic is True and cfg.tracker.max_pending == 6
    for algo, extra in (("sac", {"learning_starts": 60, "batch_size": 16}), ("ppo", {"n_steps": 32, "batch_size": 32})):
        summary = train(AgentConfig(env=FAKE, algo=algo, reward="critic", steps=96, workers=2, horizon=30,
                                    eval_every=0, checkpoint_every=0, out=str(tmp_path / algo), progress_bar=False,
                                    tracker=TrackerConfig(critic_every=5, async_critic=True),
                                    algo_kwargs={**extra, "policy_kwargs": {"net_arch": [8]}}),
                        critic=odd_critic())
        assert summary["timesteps"] >= 96 and summary["critic"]["queries"] > 0


def test_a_synchronous_runs_buffer_is_refused_for_an_asynchronous_critic():
    env = critic_env(True, "delta")
    check_model_buffers(SAC("MlpPolicy", env, replay_buffer_class=DeferredReplayBuffer, buffer_size=100))
    check_model_buffers(PPO("MlpPolicy", env, n_steps=8, batch_size=8, rollout_buffer_class=DeferredRolloutBuffer))
    with pytest.raises(ConfigError, match="without --tracker.async-critic"):
        check_model_buffers(SAC("MlpPolicy", env, buffer_size=100))
    with pytest.raises(ConfigError, match="without --tracker.async-critic"):
        check_model_buffers(PPO("MlpPolicy", env, n_steps=8, batch_size=8))
