from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from primo_loop.critics.oracle import OracleCritic
from primo_loop.errors import UnknownNameError
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.types import CriticVerdict
from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop


def actions(n: int, seed: int = 0) -> np.ndarray:
    """Mostly forward, with a stretch backwards that makes the fake env 'fail' (x < -0.5)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.2, 1.0, size=(n, 1)).astype(np.float32)
    a[40:90] = -1.0
    return a


def test_single_env_rewards_info_and_truncation():
    env = ProgressEnv(horizon=30)
    w = CriticInTheLoop(env, critic=OracleCritic(), critic_every=5, gamma=1.0, env_weight=0.0)
    obs, info = w.reset(seed=1)
    phi0 = info["critic/progress"]
    assert info["critic/queried"] is True and info["critic/progress"] == pytest.approx(info["oracle/progress"])
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = w.step(np.array([0.3], dtype=np.float32))
        total += r
        steps += 1
        assert info["critic/queried"] == (steps % 5 == 0 and steps < 30)
        if term or trunc:
            break
    assert (term, trunc, steps) == (False, True, 30)  # the horizon truncates, never terminates
    # gamma=1: the shaped return telescopes to the last query's progress minus the baseline's
    assert total == pytest.approx(w.tracker.phi - phi0)
    assert w.tracker.phi == pytest.approx(min(1.0, 0.03 * 25 + phi0), abs=1e-5)
    assert env.renders == 6  # frames only at reset and query steps (not on the step the env ended)


def test_critic_termination_is_terminated_with_reason():
    env = ProgressEnv(horizon=200)
    w = CriticInTheLoop(env, critic=OracleCritic(), critic_every=10, failure_patience=2)
    w.reset(seed=0)
    acts = actions(200)
    for t in range(200):
        obs, r, term, trunc, info = w.step(acts[t])
        if term or trunc:
            break
    assert term and not trunc
    assert info["critic/terminated_reason"] in ("failure", "regression")
    assert info["oracle/failed"] or info["critic/terminated_reason"] == "regression"


def test_by_name_and_unknown_name():
    w = CriticInTheLoop(ProgressEnv(), critic="oracle", critic_options={"noise_std": 0.0})
    assert w.critic.name == "oracle"
    with pytest.raises(UnknownNameError, match="Did you mean 'oracle'"):
        CriticInTheLoop(ProgressEnv(), critic="oracel")


def test_raising_critic_is_held_or_raised():
    critic = ScriptedCritic(raise_on=[10])
    w = CriticInTheLoop(ProgressEnv(), critic=critic, critic_every=5, gamma=1.0, env_weight=0.0)
    w.reset(seed=0)
    rewards = [w.step(np.array([1.0], dtype=np.float32))[1] for _ in range(12)]
    assert w.tracker.stats.errors == 1 and w.raised_batches == 1 and rewards[9] == 0.0  # held at the failed query
    assert rewards[4] > 0 and w.tracker.stats.queries == 3
    w = CriticInTheLoop(ProgressEnv(), critic=ScriptedCritic(raise_on=[5]), critic_every=5, on_critic_error="raise")
    w.reset(seed=0)
    with pytest.raises(RuntimeError, match="scripted critic failure"):
        for _ in range(5):
            w.step(np.array([1.0], dtype=np.float32))


def _single_trace(seed: int, acts: np.ndarray, **opts):
    w = CriticInTheLoop(ProgressEnv(horizon=60), critic=OracleCritic(), **opts)
    w.reset(seed=seed)
    trace = []
    for a in acts:
        obs, r, term, trunc, info = w.step(a)
        trace.append((round(float(r), 6), bool(term or trunc)))
        if term or trunc:
            w.reset()
    return trace


def test_vec_matches_single_env_on_same_seeds():
    n, seeds = 150, [3, 4]
    acts = [actions(n, s) for s in seeds]
    opts = dict(critic_every=10, failure_patience=2)
    critic = ScriptedCritic()
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=60) for _ in seeds])
    venv.seed(seeds[0])  # SB3 seeds sub-env i with seed + i
    vw = VecCriticInTheLoop(venv, critic=critic, **opts)
    vw.reset()
    vec_trace = [[], []]
    reasons = []
    for t in range(n):
        obs, rews, dones, infos = vw.step(np.stack([acts[0][t], acts[1][t]]))
        for i in range(2):
            vec_trace[i].append((round(float(rews[i]), 6), bool(dones[i])))
            if dones[i]:
                assert "terminal_observation" in infos[i]
                critic_end = infos[i]["critic/terminated_reason"] is not None
                reasons.append(infos[i]["critic/terminated_reason"])
                assert infos[i]["TimeLimit.truncated"] == (not critic_end)
    for i, s in enumerate(seeds):
        assert vec_trace[i] == _single_trace(s, acts[i], **opts)
    assert None in reasons and "failure" in reasons  # episodes ended both by time and by the critic
    # all due queries of both sub-envs went out together: never more calls than query steps
    sizes = [len(c) for c in critic.calls]
    assert max(sizes) == 2 and len(critic.calls) <= n // 10 + 1 + 2 * 4


def test_vec_critic_reset_sets_terminal_observation_and_new_baseline():
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=500)])
    critic = ScriptedCritic(lambda q: CriticVerdict(progress=0.5, failure_prob=1.0 if q.step >= 10 else 0.0))
    vw = VecCriticInTheLoop(venv, critic=critic, critic_every=5, failure_patience=2)
    vw.reset()
    for t in range(1, 16):
        obs, rews, dones, infos = vw.step(np.array([[0.5]], dtype=np.float32))
        if dones[0]:
            break
    assert t == 15 and infos[0]["critic/terminated_reason"] == "failure"
    assert infos[0]["TimeLimit.truncated"] is False
    assert infos[0]["terminal_observation"][1] == pytest.approx(15 / 500)
    assert obs[0][1] == 0.0  # the new episode's first observation
    assert critic.calls[-1][0].step == 0 and vw.trackers[0].step == 0


@pytest.mark.timeout(120)
def test_vec_over_subprocess_workers():
    venv = SubprocVecEnv([lambda: ProgressEnv(horizon=40) for _ in range(2)], start_method="spawn")
    try:
        critic = ScriptedCritic()
        vw = VecCriticInTheLoop(venv, critic=critic, critic_every=10)
        vw.reset()
        for _ in range(45):
            obs, rews, dones, infos = vw.step(np.full((2, 1), 0.5, dtype=np.float32))
        assert all(len(c) == 2 for c in critic.calls)
        assert np.isfinite(rews).all() and infos[0]["critic/queried"] is False
    finally:
        vw.close()


def test_a_critic_built_by_the_wrapper_is_closed_with_it_and_one_passed_in_is_not():
    """A cascade built from its name belongs to the wrapper: closing the wrapper stops its teacher runner. A critic
    object passed in belongs to the caller (it may serve other wrappers) and stays open."""
    from primo_loop.critics.cascade import CascadeCritic
    from primo_loop.testing.slow import PolledRunner

    def parts():
        runner = PolledRunner([1])
        return runner, dict(student=ScriptedCritic(lambda q: CriticVerdict(progress=0.1)),
                            teacher=ScriptedCritic(lambda q: CriticVerdict(progress=0.2)), runner=runner)

    for make in (lambda env, opts: CriticInTheLoop(env, "cascade", critic_options=opts, critic_every=5),
                 lambda env, opts: VecCriticInTheLoop(DummyVecEnv([lambda: env]), "cascade", critic_options=opts,
                                                      critic_every=5)):
        runner, opts = parts()
        wrapper = make(ProgressEnv(horizon=12, size=16), opts)
        assert wrapper.owns_critic and isinstance(wrapper.critic, CascadeCritic)
        wrapper.close()
        assert runner.closed
    runner, opts = parts()
    mine = CascadeCritic(**opts)
    CriticInTheLoop(ProgressEnv(horizon=12, size=16), mine, critic_every=5).close()
    assert not runner.closed
