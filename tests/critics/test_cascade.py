"""The cascade critic (primo_loop.critics.cascade): the student answers every query, the share rules pick the teacher's
queries, the teacher's verdicts become labels matched with the student's answers, and override goes through the
deferred rewards exactly. Teacher delays are deterministic (:class:`~primo_loop.testing.slow.PolledRunner`)."""
from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from primo_loop.critics import make_critic
from primo_loop.critics.base import capabilities
from primo_loop.critics.cascade import CascadeCritic, teacher_reason
from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.testing.slow import PolledRunner
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.wrappers import VecCriticInTheLoop

RULES = dict(every=10, failure_threshold=0.5, failure_margin=0.1, progress_jump=0.2)


def episode(n: int, privileged: bool = True) -> list[CriticQuery]:
    """Queries of one episode at steps 0, 10, ...: one initial frame object, as the tracker passes it."""
    first = np.zeros((4, 4, 3), np.uint8)
    out = []
    for k in range(n):
        f = np.full((4, 4, 3), k, np.uint8)
        out.append(CriticQuery("x", first, f[None], f, step=10 * k,
                               privileged={"progress": k / n, "failed": False} if privileged else None))
    return out


def student_table(progress: dict[int, float], failure: dict[int, float] | None = None) -> ScriptedCritic:
    """A student whose answer at step s is progress[s] (and failure[s], default 0)."""
    failure = failure or {}
    return ScriptedCritic(lambda q: CriticVerdict(progress=progress[q.step], failure_prob=failure.get(q.step, 0.0)))


def teacher_fn() -> ScriptedCritic:
    """A teacher that answers 0.9 - step / 1000 (never the privileged progress: labels must be its own)."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=0.9 - q.step / 1000, failure_prob=0.0))


def test_share_rules_in_order_of_precedence():
    v = CriticVerdict(progress=0.5, failure_prob=0.1)
    assert teacher_reason(0, v, None, **RULES) == "every"
    assert teacher_reason(20, v, 0.5, **RULES) == "every"
    assert teacher_reason(21, v, 0.5, **RULES) is None
    assert teacher_reason(21, v, 0.29, **RULES) == "jump"  # moved 0.21 > 0.2
    assert teacher_reason(21, v, 0.3, **RULES) is None  # moved exactly 0.2: not more
    assert teacher_reason(21, CriticVerdict(progress=0.5, failure_prob=0.6), 0.5, **RULES) == "failure"
    assert teacher_reason(21, CriticVerdict(progress=0.5, failure_prob=0.61), 0.5, **RULES) is None
    assert teacher_reason(21, CriticVerdict(progress=None), 0.5, **RULES) == "unreadable"
    off = dict(RULES, every=0, failure_margin=None, progress_jump=None)
    assert teacher_reason(0, CriticVerdict(progress=0.5, failure_prob=0.5), 0.0, **off) is None


def test_the_rules_pick_the_right_queries_and_the_student_answers_every_one():
    # steps:          0    10   20    30    40    50   60    70
    progress = {0: 0.0, 10: 0.1, 20: 0.15, 30: 0.5, 40: 0.55, 50: 0.6, 60: 0.6, 70: 0.65}
    failure = {50: 0.45, 60: 0.39}  # 50 within 0.1 of the 0.5 threshold, 60 not
    student, teacher = student_table(progress, failure), teacher_fn()
    cascade = CascadeCritic(student=student, teacher=teacher, every=4, runner=PolledRunner([3]))
    answers = [cascade.assess([q])[0] for q in episode(8)]
    assert [a.progress for a in answers] == [progress[s] for s in range(0, 80, 10)]  # the student's, every one
    cascade.drain()
    asked = sorted(q.step for call in teacher.calls for q in call)
    # 0 and 40: every 4th query; 30: a jump of 0.35; 50: failure probability near the threshold
    assert asked == [0, 30, 40, 50]
    labels = cascade.take_labels()
    assert {(lb.query.step, lb.reason) for lb in labels} == {(0, "every"), (30, "jump"), (40, "every"),
                                                            (50, "failure")}
    assert cascade.stats.asked == 4 and cascade.stats.queries == 8 and cascade.stats.share == 0.5
    assert cascade.take_labels() == []  # taken once


def test_labels_match_teacher_and_student_on_the_same_query_and_carry_no_privileged_state():
    progress = {s: s / 200 for s in range(0, 200, 10)}
    teacher = teacher_fn()
    cascade = CascadeCritic(student=student_table(progress), teacher=teacher, every=3, runner=PolledRunner([2, 5, 0]))
    for q in episode(20):
        cascade.assess([q])
    cascade.drain()
    labels = cascade.take_labels()
    assert [lb.query.step for lb in labels] == list(range(0, 200, 30))
    for lb in labels:
        assert lb.query.privileged is None  # what a label holds is what the student may see
        assert lb.teacher.progress == pytest.approx(0.9 - lb.query.step / 1000)
        assert lb.student.progress == progress[lb.query.step]
        assert lb.gap == pytest.approx(lb.teacher.progress - lb.student.progress)
    summary = cascade.summary()
    assert summary["teacher_student_gap"] == pytest.approx(np.mean([0.9 - s / 1000 - s / 200
                                                                    for s in range(0, 200, 30)]))
    # the teacher's batches arrive late: the delay counts the cascade calls in between
    assert max(lb.delay_calls for lb in labels) >= 2 and summary["teacher_delay_s"] is not None


def test_a_busy_teacher_drops_queries_and_an_unreadable_one_teaches_nothing():
    progress = {s: 0.1 for s in range(0, 100, 10)}
    cascade = CascadeCritic(student=student_table(progress), teacher=ScriptedCritic(
        lambda q: CriticVerdict(progress=None if q.step == 10 else 0.3)), every=1, max_pending=2,
        runner=PolledRunner([100]))
    for q in episode(6):
        assert cascade.assess([q])[0].progress == 0.1  # the loop never waits for the teacher
    # a batch of 1 in flight that never returns and one waiting; the other 4 picked queries were dropped
    assert cascade.stats.asked == 2 and cascade.stats.dropped == 4
    cascade.drain()
    assert [lb.query.step for lb in cascade.take_labels()] == [0]
    assert cascade.stats.unreadable == 1 and cascade.summary()["teacher_student_gap"] == pytest.approx(0.2)


def test_teacher_failure_is_held_as_an_unreadable_label():
    cascade = CascadeCritic(student=student_table({0: 0.1, 10: 0.1}), teacher=ScriptedCritic(raise_on=[0]),
                            every=1, runner=PolledRunner([0]))
    for q in episode(2):
        cascade.assess([q])
    cascade.drain()
    assert cascade.stats.unreadable == 1 and [lb.query.step for lb in cascade.take_labels()] == [10]


def test_capabilities_registry_and_options():
    assert capabilities(CascadeCritic(student=ScriptedCritic(), teacher="oracle")).needs_privileged
    free = CascadeCritic(student=ScriptedCritic(), teacher=ScriptedCritic(lambda q: CriticVerdict(0.5)))
    assert not capabilities(free).needs_privileged and capabilities(free).needs_frames
    built = make_critic("cascade", student=ScriptedCritic(), teacher="oracle", every=5, progress_jump=None,
                        teacher_options={"noise_std": 0.1})
    assert built.every == 5 and built.teacher.noise_std == 0.1 and built.progress_jump is None
    with pytest.raises(ConfigError, match="failure_margin"):
        CascadeCritic(student=ScriptedCritic(), failure_margin=1.5)
    with pytest.raises(ConfigError, match="every"):
        CascadeCritic(student=ScriptedCritic(), every=-1)


def test_override_returns_the_teachers_verdict_for_its_queries():
    progress = {s: 0.1 for s in range(0, 100, 10)}
    cascade = CascadeCritic(student=student_table(progress), teacher=teacher_fn(), every=3, override=True,
                            runner=PolledRunner([4]))
    got = [cascade.assess([q])[0].progress for q in episode(7)]
    assert got == pytest.approx([0.9, 0.1, 0.1, 0.87, 0.1, 0.1, 0.84])
    assert cascade.stats.overridden == 3


def vec_run(critic, steps: int, late: bool, runner=None):
    """Two fake envs under the critic; returns each transition's reward as a learner finally holds it."""
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=23) for _ in range(2)])
    venv.seed(4)
    w = VecCriticInTheLoop(venv, critic=critic, critic_every=5, terminate=False, async_critic=late, max_pending=16,
                           async_runner=runner)
    w.reset()
    rng = np.random.default_rng(0)
    rewards, where = [], {}
    for _ in range(steps):
        _, r, _, infos = w.step(rng.uniform(-0.3, 1.0, size=(2, 1)).astype(np.float32))
        for i, info in enumerate(infos):
            rewards.append(float(r[i]))
            if info["critic/pending_id"] is not None:
                where[info["critic/pending_id"]] = len(rewards) - 1
            for c in info["critic/corrections"]:
                rewards[where.pop(c.transition_id)] = float(np.float32(c.reward))  # as a float32 buffer stores it
    for c in w.drain():
        rewards[where.pop(c.transition_id)] = float(np.float32(c.reward))
    assert not where
    return np.array(rewards), w


def jumpy() -> ScriptedCritic:
    """A student that reads progress from the frame's pixel, coarsely (so progress jumps now and then)."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=round(q.current[0, 0, 1] / 255 * 3) / 3, failure_prob=0.0))


def test_episodes_are_told_apart_in_a_vector_env():
    """The jump rule compares a query with the student's previous answer in the same episode: two sub-envs whose
    queries interleave in one batch, and new episodes after resets, are kept apart."""
    teacher = ScriptedCritic()
    cascade = CascadeCritic(student=jumpy(), teacher=teacher, every=0, failure_margin=None, progress_jump=0.3,
                            runner=PolledRunner([0]))
    seen: list[tuple[int, float]] = []  # (id of the episode's initial frame, student progress), in order
    inner = cascade.student.fn
    cascade.student.fn = lambda q: (seen.append((id(q.initial), (v := inner(q)).progress)), v)[1]
    vec_run(cascade, 80, late=False)
    cascade.drain()
    last: dict[int, float] = {}
    expect = 0
    for key, p in seen:
        expect += key in last and abs(p - last[key]) > 0.3
        last[key] = p
    assert expect > 0 and cascade.stats.reasons["jump"] == expect == cascade.stats.asked


def test_override_in_asynchronous_mode_settles_the_rewards_of_the_teachers_verdicts_exactly():
    """With override the teacher's verdicts decide the reward where it answered; in asynchronous mode the batch
    arrives late and the deferred rewards settle to what the same cascade gives synchronously, value for value."""
    def cascade() -> CascadeCritic:
        return CascadeCritic(student=jumpy(), teacher=ScriptedCritic(), every=3, override=True,
                             runner=PolledRunner([2, 0, 5]))

    sync, _ = vec_run(cascade(), 70, late=False)
    late, w = vec_run(cascade(), 70, late=True, runner=PolledRunner([3, 1, 6]))
    np.testing.assert_array_equal(late, sync)
    assert w.critic.stats.overridden > 0
    plain, _ = vec_run(CascadeCritic(student=jumpy(), teacher=ScriptedCritic(), every=3), 70, late=False)
    assert not np.array_equal(plain, sync)  # the teacher's verdicts changed the rewards
