"""Asynchronous critic queries (primo_loop.asynchronous) in both wrappers, and the deferred rewards they settle.

The slow critic is a :class:`~primo_loop.testing.slow.PolledRunner`: batch k arrives after ``delays[k]`` env steps,
deterministically, with no threads; one test runs the real background thread on a critic held by an event.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from primo_loop.asynchronous import Asked, QueryPipeline
from primo_loop.errors import ConfigError
from primo_loop.ledger import RewardLedger
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.testing.slow import PolledRunner
from primo_loop.tracker import TrackerConfig
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop

LATE = [3, 0, 7, 1, 12, 2, 5]  # env steps each batch takes: late and out of step with the critic's cadence


def actions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.6, 1.0, size=(n, 1)).astype(np.float32)


def odd_critic() -> ScriptedCritic:
    """Oracle progress with noise that depends on the query only (so batching cannot change it), and an
    unreadable answer at every 35th step (phi is held)."""
    def fn(q: CriticQuery) -> CriticVerdict:
        if q.step % 35 == 0 and q.step:
            return CriticVerdict(progress=None)
        p = q.privileged["progress"]
        return CriticVerdict(progress=float(np.clip(p + 0.1 * np.sin(q.step + 7 * p), 0.0, 1.0)), failure_prob=0.0)
    return ScriptedCritic(fn)


def query(step: int = 0) -> CriticQuery:
    f = np.zeros((4, 4, 3), np.uint8)
    return CriticQuery("x", f, f[None], f, step=step)


class Settled:
    """Each transition's reward as a learner would finally hold it: the step's reward, replaced by the
    correction of its pending id when that arrives."""

    def __init__(self):
        self.rewards: list[float] = []
        self.where: dict[int, int] = {}
        self.pending = self.corrected = 0

    def step(self, reward: float, info: dict) -> None:
        self.rewards.append(float(reward))
        if info["critic/pending_id"] is not None:
            self.where[info["critic/pending_id"]] = len(self.rewards) - 1
            self.pending += 1
        self.correct(info["critic/corrections"])

    def correct(self, corrections) -> None:
        for c in corrections:
            self.rewards[self.where.pop(c.transition_id)] = c.reward
            self.corrected += 1


def single_run(acts: np.ndarray, runner=None, **opts) -> tuple[Settled, CriticInTheLoop]:
    w = CriticInTheLoop(ProgressEnv(horizon=37), critic=odd_critic(), critic_every=5, terminate=False,
                        async_runner=runner, **opts)
    w.reset(seed=5)
    out = Settled()
    for a in acts:
        obs, r, term, trunc, info = w.step(a)
        out.step(r, info)
        if term or trunc:
            w.reset()
    out.correct(w.drain())
    return out, w


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_single_env_settled_rewards_equal_the_synchronous_ones(shaping):
    acts = actions(130, seed=1)
    sync, _ = single_run(acts, shaping=shaping, gamma=0.97, termination_penalty=-1.0)
    late, w = single_run(acts, runner=PolledRunner(LATE), async_critic=True, max_pending=2, shaping=shaping,
                         gamma=0.97, termination_penalty=-1.0)
    assert sync.pending == 0
    assert late.pending > 40 and late.corrected == late.pending and not late.where  # every one settled, once
    assert late.rewards == sync.rewards  # value for value, not approximately
    assert w.stats.late > 0  # episodes ended with verdicts on their way; those still settled their rewards
    assert w._async.pipeline.stats.waits > 0  # the bound of 2 made steps wait


def test_verdicts_apply_in_order_with_their_delay_in_info():
    w = CriticInTheLoop(ProgressEnv(horizon=100), critic=odd_critic(), critic_every=5, async_critic=True,
                        async_runner=PolledRunner([4]))
    obs, info = w.reset(seed=0)
    assert info["critic/progress"] is None and info["critic/delay_steps"] == ()  # the baseline is on its way
    seen = []
    for t in range(1, 31):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
        for d in info["critic/delay_steps"]:
            seen.append((t - d, d))
        assert info["critic/queried"] == bool(info["critic/delay_steps"])
    assert [s for s, _ in seen] == list(range(0, 30, 5))  # query steps, in order, none lost
    assert {d for _, d in seen} == {4}  # launched on the step asked, arrived 4 polls (steps) later


def test_an_episode_ending_with_verdicts_on_their_way_does_not_wait_and_loses_nothing():
    w = CriticInTheLoop(ProgressEnv(horizon=12), critic=odd_critic(), critic_every=5, async_critic=True,
                        async_runner=PolledRunner([6]))
    w.reset(seed=0)
    pending, settled = {}, {}
    for t in range(1, 13):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
        if info["critic/pending_id"] is not None:
            pending[info["critic/pending_id"]] = t
        settled.update({c.transition_id: c.reward for c in info["critic/corrections"]})
    assert trunc and w.tracker.ledger.unanswered == 1  # the query of step 10 is on its way as the episode ends
    old = w.tracker.ledger
    w.reset()  # no wait for it
    assert w._async.pipeline.stats.waits == 0
    left = set(pending) - set(settled)
    assert sorted(pending[k] for k in left) == [10, 11, 12]  # the steps that need the step-10 verdict
    for t in range(1, 8):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
        for c in info["critic/corrections"]:
            assert c.transition_id in left and c.transition_id not in settled  # the old episode's, once each
            settled[c.transition_id] = c.reward
    assert set(settled) == set(pending) and old.waiting == 0 and old.unanswered == 0  # nothing lost
    assert w.stats.late == 1  # the step-10 verdict, applied to the ended episode's ledger only
    assert w.tracker.step == 7 and not w.tracker.done


def test_early_termination_acts_when_the_verdict_arrives():
    def failing(q):
        return CriticVerdict(progress=0.5, failure_prob=1.0 if q.step >= 10 else 0.0)
    w = CriticInTheLoop(ProgressEnv(horizon=200), critic=ScriptedCritic(failing), critic_every=5,
                        failure_patience=2, termination_penalty=-3.0, async_critic=True,
                        async_runner=PolledRunner([3]))
    w.reset(seed=0)
    for t in range(1, 60):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
        if term or trunc:
            break
    # synchronously the episode ends at step 15; here on the step the verdict of step 15 arrives
    assert term and not trunc and info["critic/terminated_reason"] == "failure"
    assert t > 15 and t - info["critic/delay_steps"][-1] == 15
    with pytest.raises(RuntimeError, match="call reset"):
        w.step(np.array([0.5], np.float32))


def test_a_termination_decided_by_drain_shows_on_the_next_step():
    def failing(q):
        return CriticVerdict(progress=0.5, failure_prob=1.0)
    w = CriticInTheLoop(ProgressEnv(horizon=200), critic=ScriptedCritic(failing), critic_every=5,
                        failure_patience=1, async_critic=True, async_runner=PolledRunner([50]))
    w.reset(seed=0)
    for _ in range(5):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
    assert not term
    w.drain()
    obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
    assert term and info["critic/terminated_reason"] == "failure"
    # the verdicts the drain applied (steps 0 and 5, applied at step 5) are reported by this step
    assert info["critic/queried"] and info["critic/delay_steps"] == (5, 0)


def test_a_verdict_arriving_on_the_envs_last_step_ends_nothing():
    def failing(q):
        return CriticVerdict(progress=0.5, failure_prob=1.0 if q.step >= 10 else 0.0)
    w = CriticInTheLoop(ProgressEnv(horizon=17), critic=ScriptedCritic(failing), critic_every=5,
                        failure_patience=2, termination_penalty=-3.0, async_critic=True,
                        async_runner=PolledRunner([2]))
    w.reset(seed=0)
    for t in range(1, 18):
        obs, r, term, trunc, info = w.step(np.array([0.5], np.float32))
    # the step-15 verdict (the second failure) arrives on step 17, where the env truncates: time ended it
    assert trunc and not term and info["critic/delay_steps"] == (2,) and info["critic/terminated_reason"] is None
    assert w.stats.terminations == 0

def vec_run(acts: list[np.ndarray], runner=None, **opts):
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=30) for _ in acts])
    venv.seed(3)
    critic = odd_critic()
    vw = VecCriticInTheLoop(venv, critic=critic, critic_every=5, terminate=False, async_runner=runner, **opts)
    vw.reset()
    settled = [Settled() for _ in acts]
    owner: dict[int, int] = {}
    for t in range(len(acts[0])):
        obs, rews, dones, infos = vw.step(np.stack([a[t] for a in acts]))
        for i, info in enumerate(infos):
            settled[i].step(np.float32(rews[i]), {**info, "critic/corrections": ()})
            if info["critic/pending_id"] is not None:
                owner[info["critic/pending_id"]] = i
        for info in infos:
            for c in info["critic/corrections"]:
                settled[owner[c.transition_id]].correct([c._replace(reward=np.float32(c.reward))])
    for c in vw.drain():
        settled[owner[c.transition_id]].correct([c._replace(reward=np.float32(c.reward))])
    return settled, vw, critic


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_vec_settled_rewards_equal_the_synchronous_ones_and_queries_are_batched(shaping):
    acts = [actions(100, seed=s) for s in (7, 8, 9)]
    sync, _, _ = vec_run(acts, shaping=shaping)
    late, vw, critic = vec_run(acts, runner=PolledRunner(LATE), async_critic=True, max_pending=8, shaping=shaping)
    for s, a in zip(sync, late):
        assert s.pending == 0 and a.pending > 20 and not a.where
        assert a.rewards == s.rewards
    assert sum(tr.stats.late for tr in vw.trackers) > 0
    # queries of all sub-envs waited together: batches are larger than one step's queries, never over the bound
    sizes = [len(c) for c in critic.calls]
    assert max(sizes) > 3 and max(sizes) <= 8
    assert vw._async.pipeline.stats.waits > 0
    assert sum(sizes) == sum(tr.stats.queries for tr in vw.trackers)  # every query answered once


def test_pipeline_bound_order_and_one_batch_at_a_time():
    calls = []

    def call(queries):
        calls.append([q.step for q in queries])
        return [CriticVerdict(progress=q.step / 100) for q in queries]

    runner = PolledRunner([6])
    pipe = QueryPipeline(call, max_pending=3, runner=runner)
    ledger = RewardLedger("delta", 1.0, 1.0, 1.0)
    got = []
    for step in range(10):
        ledger.asked(step)
        got += pipe.put([Asked(0, ledger, step, query(step))])
        assert pipe.pending <= 3
        got += pipe.poll()
    got += pipe.drain()
    assert [a.step for a, _ in got] == list(range(10))  # in order, each once
    assert [v.progress for _, v in got] == [s / 100 for s in range(10)]
    assert calls[0] == [0] and all(len(c) >= 1 for c in calls) and sum(map(len, calls)) == 10
    assert pipe.stats.waits > 0 and pipe.pending == 0
    with pytest.raises(ConfigError, match="max_pending"):
        QueryPipeline(call, max_pending=0, runner=runner)
    with pytest.raises(ConfigError, match="max_pending"):
        TrackerConfig(max_pending=0)


def test_background_thread_keeps_stepping_while_the_critic_works():
    gate = threading.Event()
    inner = odd_critic()

    class Held:
        name = "held"

        def assess(self, queries):
            assert gate.wait(timeout=30), "the test never released the critic"
            return inner.assess(queries)

    w = CriticInTheLoop(ProgressEnv(horizon=100), critic=Held(), critic_every=5, async_critic=True, max_pending=50)
    try:
        w.reset(seed=0)
        infos = [w.step(np.array([0.5], np.float32))[4] for _ in range(20)]
        # the critic has answered nothing, yet twenty steps went by, each with its pending reward
        assert all(i["critic/delay_steps"] == () and i["critic/pending_id"] is not None for i in infos)
        gate.set()
        corrections = w.drain()
        assert sorted(c.transition_id for c in corrections) == [i["critic/pending_id"] for i in infos]
        assert w.stats.queries == 5 and w.tracker.progress is not None
    finally:
        gate.set()
        w.close()


def test_critic_errors_in_the_background_are_held_or_raised():
    w = CriticInTheLoop(ProgressEnv(), critic=ScriptedCritic(raise_on=[5]), critic_every=5, async_critic=True,
                        async_runner=PolledRunner([1]))
    w.reset(seed=0)
    for _ in range(12):
        w.step(np.array([1.0], np.float32))
    w.drain()
    assert w.stats.errors == 1 and w.raised_batches == 1
    w = CriticInTheLoop(ProgressEnv(), critic=ScriptedCritic(raise_on=[5]), critic_every=5, async_critic=True,
                        on_critic_error="raise", async_runner=PolledRunner([1]))
    w.reset(seed=0)
    with pytest.raises(RuntimeError, match="scripted critic failure"):
        for _ in range(12):
            w.step(np.array([1.0], np.float32))
