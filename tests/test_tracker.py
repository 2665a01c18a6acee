from __future__ import annotations

import pytest

from primo_loop.errors import ConfigError, UnknownNameError
from primo_loop.tracker import (
    EpisodeTracker,
    TrackerConfig,
    failure_streak,
    regression_streak,
    sample_clip_indices,
    shaping_term,
)
from primo_loop.types import CriticVerdict

import numpy as np


def frame(step: int) -> np.ndarray:
    f = np.zeros((4, 4, 3), dtype=np.uint8)
    f[0, 0, 0] = step
    return f


def run(tracker: EpisodeTracker, verdicts: dict[int, CriticVerdict | None], steps: int, env_reward=0.0):
    """Drive a tracker by hand; ``verdicts[step]`` answers the query of that step."""
    q = tracker.reset("do it", frame(0))
    tracker.apply(verdicts.get(0, CriticVerdict(progress=0.0)))
    results = []
    for t in range(1, steps + 1):
        tracker.advance()
        if tracker.needs_frame:
            tracker.add_frame(frame(t))
        q = tracker.make_query()
        if q is not None:
            tracker.apply(verdicts.get(t, CriticVerdict(progress=tracker.phi)))
        res = tracker.finish_step(env_reward)
        results.append(res)
        if res.terminated:
            break
    return results


def test_clip_indices_keep_anchors_and_order():
    for n in range(1, 40):
        for k in (1, 2, 5, 8):
            idx = sample_clip_indices(n, k)
            assert len(idx) == k
            assert idx[-1] == n - 1
            assert idx == sorted(idx)
            if k > 1:
                assert idx[0] == 0
    with pytest.raises(ConfigError):
        sample_clip_indices(0, 8)


def test_query_cadence_and_frames_only_when_needed():
    tr = EpisodeTracker(TrackerConfig(critic_every=5, frame_every=2, clip_len=3))
    queries = {}
    tr.reset("x", frame(0))
    tr.apply(CriticVerdict(progress=0.0))
    for t in range(1, 21):
        tr.advance()
        if tr.needs_frame:
            tr.add_frame(frame(t))
        q = tr.make_query()
        if q is not None:
            queries[t] = q
            tr.apply(CriticVerdict(progress=t / 20))
        tr.finish_step(0.0)
    assert sorted(queries) == [5, 10, 15, 20]
    assert tr.frame_steps == [0, 2, 4, 5, 6, 8, 10, 12, 14, 15, 16, 18, 20]
    q = queries[20]
    assert q.clip.shape == (3, 4, 4, 3)
    assert q.initial[0, 0, 0] == 0 and q.current[0, 0, 0] == 20
    assert [int(f[0, 0, 0]) for f in q.clip] == [0, 10, 20]


def test_no_query_when_frame_missing_raises():
    tr = EpisodeTracker(TrackerConfig(critic_every=1))
    tr.reset("x", frame(0))
    tr.apply(CriticVerdict(progress=0.0))
    tr.advance()
    assert tr.needs_frame
    with pytest.raises(RuntimeError, match="render"):
        tr.make_query()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_delta_shaping_telescopes(gamma):
    rng = np.random.default_rng(0)
    progress = {t: CriticVerdict(progress=float(rng.uniform())) for t in range(0, 61, 3)}
    tr = EpisodeTracker(TrackerConfig(critic_every=3, gamma=gamma, env_weight=0.0, terminate=False))
    results = run(tr, progress, 60)
    discounted = sum(gamma**t * r.reward for t, r in enumerate(results))
    T = len(results)
    assert discounted == pytest.approx(gamma**T * progress[60].progress - progress[0].progress)
    if gamma == 1.0:  # between queries phi is held, so the undiscounted term is zero there
        assert all(r.reward == 0.0 for t, r in enumerate(results, start=1) if t % 3)


def test_progress_mode_and_weights():
    tr = EpisodeTracker(TrackerConfig(critic_every=2, shaping="progress", env_weight=2.0, critic_weight=0.5))
    results = run(tr, {2: CriticVerdict(progress=0.4)}, 3, env_reward=1.0)
    assert [r.reward for r in results] == pytest.approx([2.0, 2.2, 2.2])
    tr = EpisodeTracker(TrackerConfig(critic_every=2, shaping="none"))
    assert [r.reward for r in run(tr, {2: CriticVerdict(progress=0.4)}, 3, env_reward=1.0)] == [1.0] * 3


def test_failure_termination_needs_patience():
    v = {10: CriticVerdict(0.5, failure_prob=0.9), 20: CriticVerdict(0.5, failure_prob=0.1),
         30: CriticVerdict(0.5, failure_prob=0.8), 40: CriticVerdict(0.5, failure_prob=0.95)}
    tr = EpisodeTracker(TrackerConfig(critic_every=10, failure_patience=2, termination_penalty=-1.0))
    results = run(tr, v, 100)
    assert len(results) == 40 and results[-1].terminated and results[-1].reason == "failure"
    assert results[-1].info["critic/terminated_reason"] == "failure"
    assert results[-1].reward == pytest.approx(-1.0 + 0.99 * 0.5 - 0.5)
    assert tr.stats.terminations == 1
    with pytest.raises(RuntimeError):
        tr.advance()


def test_regression_termination_after_peak():
    v = {5: CriticVerdict(0.8), 10: CriticVerdict(0.45), 15: CriticVerdict(0.6), 20: CriticVerdict(0.4),
         25: CriticVerdict(0.3)}
    tr = EpisodeTracker(TrackerConfig(critic_every=5, regression_delta=0.3, regression_patience=2))
    results = run(tr, v, 50)
    assert len(results) == 25 and results[-1].reason == "regression"
    # below min_peak progress never counts as regression
    v = {5: CriticVerdict(0.25), 10: CriticVerdict(0.0), 15: CriticVerdict(0.0)}
    assert not any(r.terminated for r in run(EpisodeTracker(TrackerConfig(critic_every=5)), v, 30))


def test_terminate_false_never_ends():
    v = {t: CriticVerdict(0.1, failure_prob=1.0) for t in range(0, 101, 10)}
    results = run(EpisodeTracker(TrackerConfig(terminate=False)), v, 100)
    assert len(results) == 100 and not any(r.terminated for r in results)


def test_unreadable_verdicts_hold_phi_and_are_counted():
    v = {10: CriticVerdict(0.5), 20: CriticVerdict(None, raw="garbage"), 30: None,
         40: CriticVerdict(float("nan")), 50: CriticVerdict(0.7)}
    tr = EpisodeTracker(TrackerConfig(critic_every=10, gamma=1.0, env_weight=0.0))
    results = run(tr, v, 50)
    assert [r.reward for r in results if r.reward] == pytest.approx([0.5, 0.2])
    assert tr.stats.unreadable == 2 and tr.stats.errors == 1 and tr.stats.queries == 6
    assert results[19].info["critic/progress"] == 0.5  # held through the unreadable answer


def test_unreadable_does_not_break_failure_streak_rules():
    v = {10: CriticVerdict(0.5, failure_prob=0.9), 20: CriticVerdict(None), 30: CriticVerdict(0.5, failure_prob=0.9)}
    results = run(EpisodeTracker(TrackerConfig(critic_every=10)), v, 60)
    assert len(results) == 30 and results[-1].reason == "failure"


def test_pure_rules():
    assert shaping_term("none", 0.1, 0.9, 0.9) == 0.0
    assert failure_streak(3, 0.49, 0.5) == 0
    assert regression_streak(0, 0.5, 0.8, 0.3) == 1


def test_config_errors_name_the_fix():
    with pytest.raises(UnknownNameError, match="Did you mean 'delta'"):
        TrackerConfig(shaping="detla")
    with pytest.raises(ConfigError, match="critic_every"):
        TrackerConfig(critic_every=0)
    with pytest.raises(UnknownNameError, match="clip_len"):
        TrackerConfig.from_options(clip_lenght=4)
    with pytest.raises(ConfigError, match="gamma"):
        TrackerConfig(gamma=1.5)
    assert TrackerConfig(critic_every=7).frame_every == 7


def test_rearm_continues_the_episode_with_fresh_streaks():
    tr = EpisodeTracker(TrackerConfig(critic_every=10, failure_patience=2, regression_patience=2))
    v = {10: CriticVerdict(0.9), 20: CriticVerdict(0.3), 30: CriticVerdict(0.3)}
    results = run(tr, v, 100)
    assert len(results) == 30 and results[-1].reason == "regression"
    n_frames, step = len(tr.frames), tr.step
    tr.rearm()
    assert not tr.done and tr.reason is None and tr.running_max == pytest.approx(0.3)
    assert len(tr.frames) == n_frames and tr.step == step and tr.phi == pytest.approx(0.3)
    for t in range(31, 51):  # same low progress: no longer a regression from the new maximum
        tr.advance()
        if tr.needs_frame:
            tr.add_frame(frame(t))
        if tr.make_query() is not None:
            tr.apply(CriticVerdict(0.3))
        assert not tr.finish_step(0.0).terminated
    assert tr.frame_steps[-1] == 50 and tr.stats.terminations == 1


# ------------------------------------------------------------------- rules a planted bug must not pass

def test_min_peak_gates_regression():
    """A drop counts as regression only once progress has peaked at ``min_peak``: here the drop (0.25) is larger
    than ``regression_delta`` (0.2), so only the gate keeps the episode going."""
    v = {5: CriticVerdict(0.25), 10: CriticVerdict(0.0), 15: CriticVerdict(0.0)}
    gated = run(EpisodeTracker(TrackerConfig(critic_every=5, regression_delta=0.2, min_peak=0.3)), v, 30)
    assert len(gated) == 30 and not any(r.terminated for r in gated)
    lower = run(EpisodeTracker(TrackerConfig(critic_every=5, regression_delta=0.2, min_peak=0.2)), v, 30)
    assert len(lower) == 15 and lower[-1].reason == "regression"


def test_termination_penalty_is_paid_once_on_the_ending_step():
    v = {10: CriticVerdict(0.5, failure_prob=0.9), 20: CriticVerdict(0.5, failure_prob=0.9)}
    tr = EpisodeTracker(TrackerConfig(critic_every=10, failure_patience=2, shaping="none", termination_penalty=-5.0))
    results = run(tr, v, 100)
    assert [r.reward for r in results] == [0.0] * 19 + [-5.0]
    assert [r.terminated for r in results] == [False] * 19 + [True]


def test_window_samples_the_clip_from_the_last_frames_only():
    tr = EpisodeTracker(TrackerConfig(critic_every=10, frame_every=1, clip_len=3, window=4))
    queries = []
    tr.reset("x", frame(0))
    tr.apply(CriticVerdict(0.0))
    for t in range(1, 11):
        tr.advance()
        if tr.needs_frame:
            tr.add_frame(frame(t))
        if (q := tr.make_query()) is not None:
            queries.append(q)
            tr.apply(CriticVerdict(0.1))
        tr.finish_step(0.0)
    q = queries[-1]
    assert [int(f[0, 0, 0]) for f in q.clip] == [7, 9, 10]  # the last 4 kept frames: steps 7..10
    assert int(q.initial[0, 0, 0]) == 0 and int(q.current[0, 0, 0]) == 10  # the anchors stay
    with pytest.raises(ConfigError, match="window"):
        sample_clip_indices(5, 3, window=0)


def test_evaluation_replays_the_window(tmp_path):
    """The evaluator builds the clips the tracker would, window included."""
    from primo_loop.data.dataset import EpisodeDataset
    from primo_loop.data.synthetic import make_dataset
    from primo_loop.evaluate import EvalConfig, evaluate
    from primo_loop.testing.fakes import ScriptedCritic
    from primo_loop.tracker import replay_schedule

    make_dataset(tmp_path / "ds", n_episodes=1, failure_rate=0.0)
    ep = next(iter(EpisodeDataset(tmp_path / "ds")))
    critic = ScriptedCritic(lambda q: CriticVerdict(progress=0.5))
    evaluate(critic, [tmp_path / "ds"], None, EvalConfig(critic_every=10, frame_every=5, clip_len=3, window=2,
                                                         split_by="none"))
    queries = [q for batch in critic.calls for q in batch]
    schedule = replay_schedule(ep.frame_steps, 10, 5, 3, window=2)
    assert [q.step for q in queries] == [s for s, _, _ in schedule]
    for q, (_, _, clip) in zip(queries, schedule):
        np.testing.assert_array_equal(q.clip, ep.frames[clip])
    unwindowed = replay_schedule(ep.frame_steps, 10, 5, 3)
    assert any(a != b for (_, _, a), (_, _, b) in zip(schedule, unwindowed))  # the window changes the clips
    assert not all(np.array_equal(ep.frames[a], ep.frames[b])
                   for (_, _, ca), (_, _, cb) in zip(schedule, unwindowed) for a, b in zip(ca, cb))


def test_every_tracker_option_has_a_docstring():
    """Each TrackerConfig field is followed by its own docstring (the command line's help is generated from them)."""
    import ast
    import inspect

    import primo_loop.tracker_config as module

    cls = next(n for n in ast.parse(inspect.getsource(module)).body
               if isinstance(n, ast.ClassDef) and n.name == "TrackerConfig")
    docs = {}
    for field, after in zip(cls.body, cls.body[1:]):
        if isinstance(field, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[field.target.id] = after.value.value
    assert set(docs) == set(TrackerConfig.__dataclass_fields__)
    assert all(len(text.split()) >= 3 for text in docs.values())


def test_a_verdict_is_reported_beside_the_oracle_at_its_own_query_step():
    """An asynchronous verdict for the query of step 5 arriving at step 8 is set against the oracle's progress
    at step 5 (what the critic saw), not at step 8; a synchronous one against its own step's."""
    tracker = EpisodeTracker(TrackerConfig(critic_every=5, clip_len=2))
    tracker.reset("lift", frame(0), {"progress": 0.0})
    tracker.apply(CriticVerdict(progress=0.0))
    assert tracker.finish_step(0.0).info["critic/oracle_at_query"] == 0.0
    for t in range(1, 9):
        tracker.advance({"progress": t / 10})
        if tracker.needs_frame:
            tracker.add_frame(frame(t))
        tracker.make_query()  # the query of step 5 is made, its verdict held back
        if t == 8:
            tracker.apply(CriticVerdict(progress=0.4), step=5)
        info = tracker.finish_step(0.0).info
    assert info["critic/delay_steps"] == (3,) and info["critic/oracle_at_query"] == pytest.approx(0.5)
    # a step without a verdict reports none, and an env without privileged progress reports None
    tracker.advance({"progress": 0.9})
    assert tracker.finish_step(0.0).info["critic/oracle_at_query"] is None
    plain = EpisodeTracker(TrackerConfig(critic_every=5, clip_len=2))
    plain.reset("lift", frame(0))
    plain.apply(CriticVerdict(progress=0.2))
    assert plain.finish_step(0.0).info["critic/oracle_at_query"] is None
