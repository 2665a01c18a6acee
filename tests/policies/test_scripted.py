"""Scripted policies: nominal success, oracle progress, injected failures, replan, make_policy."""
from __future__ import annotations

import numpy as np
import pytest

import envs
from policies import make_policy
from policies.scripted import FAILURE_MODES, ScriptedPolicy
from primo_loop.errors import UnknownNameError

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def lift():
    env = envs.make_env("Lift", "Panda", horizon=130)
    yield env
    env.close()


def run(env, policy, seed, steps=None, on_step=None):
    env.reset(seed=seed)
    policy.reset(seed=seed)
    progress = []
    info = {}
    for _ in range(steps or env.horizon):
        _, _, terminated, truncated, info = env.step(policy.act())
        progress.append(info["oracle/progress"])
        if on_step is not None:
            on_step(env, policy)
        if terminated or truncated:
            break
    return np.array(progress), info


def test_nominal_lift_succeeds_and_progress_rises(lift):
    policy = ScriptedPolicy(lift, seed=0)
    progress, info = run(lift, policy, seed=0)
    assert info["is_success"] and progress[-1] == 1.0
    assert progress[0] < 0.2
    assert not lift.privileged()["failed"]
    events = lift.privileged()["events"]
    assert events == ["the gripper reached the cube", "the cube was grasped", "the cube was lifted"]


def test_drop_makes_progress_fall_and_fail(lift):
    policy = ScriptedPolicy(lift, failure="drop", seed=0)
    progress, info = run(lift, policy, seed=0)
    p = lift.privileged()
    assert policy.failure_injected_at is not None
    assert progress.max() > 0.9 and progress[-1] < 0.35
    assert p["failed"] and p["failure_event"] == "the cube was dropped" and not info["is_success"]


def test_replan_after_drop_recovers(lift):
    policy = ScriptedPolicy(lift, failure="drop", seed=1)
    state = {"replanned": False}

    def replan_once(env, pol):
        if env.privileged()["failed"] and not state["replanned"]:
            state["replanned"] = True
            pol.replan()

    _, info = run(lift, policy, seed=1, on_step=replan_once)
    assert state["replanned"] and info["is_success"]
    p = lift.privileged()
    assert not p["failed"] and "the cube was dropped" in p["events"]


@pytest.mark.parametrize("mode", ["offset_grasp", "close_early", "push_away", "freeze"])
def test_failure_modes_fail(lift, mode):
    policy = ScriptedPolicy(lift, failure=mode, seed=2)
    _, info = run(lift, policy, seed=2)
    p = lift.privileged()
    assert not info["is_success"] and p["failed"], p["events"]
    assert policy.failure_injected_at is not None


def test_make_policy_and_bad_names(lift):
    with pytest.raises(UnknownNameError, match="Did you mean 'drop'"):
        ScriptedPolicy(lift, failure="dorp")
    with pytest.raises(UnknownNameError):
        make_policy("scripte", lift)
    rnd = make_policy("random", lift, seed=0)
    a = rnd.act()
    assert a.shape == (7,) and lift.action_space.contains(a)
    assert isinstance(make_policy("scripted", lift), ScriptedPolicy)
    assert set(FAILURE_MODES) == {"drop", "offset_grasp", "close_early", "push_away", "freeze"}


def test_same_seed_same_episode_and_noise(lift):
    def trace(seed, noise):
        policy = ScriptedPolicy(lift, failure="freeze", seed=seed, noise=noise)
        lift.reset(seed=seed)
        policy.reset(seed=seed)
        acts = []
        for _ in range(3):
            acts.append(policy.act())
            lift.step(acts[-1])
        return np.array(acts), policy._freeze_at

    a, fa = trace(5, 0.1)
    b, fb = trace(5, 0.1)
    c, _ = trace(5, 0.0)
    np.testing.assert_array_equal(a, b)
    assert fa == fb and not np.allclose(a, c)
    assert np.all(np.abs(a) <= 1.0)


def test_humanoid_lift_succeeds_with_the_right_hand():
    env = envs.make_env("Lift", "GR1ArmsOnly", horizon=120)
    try:
        policy = ScriptedPolicy(env, seed=0)
        grasped = []
        left0 = {}

        def watch(e, pol):
            grasped.append(e.privileged()["grasped"])
            left0.setdefault("pos", e.unwrapped.sim_view.eef_pos("left"))

        progress, info = run(env, policy, seed=0, on_step=watch)
        assert info["is_success"] and progress[-1] == 1.0 and progress[0] < 0.2
        assert any(grasped)  # palm + fingers count as a grasp (SimView.grasping)
        p = env.privileged()
        assert not p["failed"] and p["events"][-2:] == ["the cube was grasped", "the cube was lifted"]
        # the left arm is held still
        assert np.linalg.norm(env.unwrapped.sim_view.eef_pos("left") - left0["pos"]) < 0.03
    finally:
        env.close()


# ----- slow: per-robot success rates and every failure mode on every task -------------------------------------
def _pairs():
    import envs as e
    from policies.scripted import scripted_robots

    return [(t, r) for t in e.TASKS for r in e.supported_robots(t) if r in scripted_robots(t)]


@pytest.mark.slow
@pytest.mark.parametrize("task,robot", _pairs())
def test_scripted_success_rate(task, robot):
    from policies.scripted import evaluate

    result = evaluate(task, robot, episodes=10)
    assert result["success_rate"] >= 0.8, result


@pytest.mark.slow
@pytest.mark.parametrize("task", envs.TASKS)
@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_every_failure_mode_fails(task, mode):
    from policies.scripted import evaluate

    if mode not in envs.task_spec(task).failure_modes:
        pytest.skip(f"{mode} not used for {task}")
    result = evaluate(task, "Panda", episodes=3, failure=mode)
    assert result["success_rate"] == 0.0 and result["failure_flagged"] == 1.0, result


@pytest.mark.slow
@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_humanoid_lift_failure_modes_fail(mode):
    from policies.scripted import evaluate

    result = evaluate("Lift", "GR1ArmsOnly", episodes=3, failure=mode)
    assert result["success_rate"] == 0.0 and result["failure_flagged"] == 1.0, result


# ----- Door: its own phases (turn the lever, pull the door) behind the same constructor ---------------------------
@pytest.fixture(scope="module")
def door():
    env = envs.make_env("Door", "Panda")
    yield env
    env.close()


def test_door_gets_its_own_policy_from_every_entry_point(door, lift):
    import copy

    from policies.scripted import DoorPolicy
    from primo_loop.errors import UnsupportedError

    assert type(ScriptedPolicy(door)) is DoorPolicy and type(make_policy("scripted", door)) is DoorPolicy
    assert type(ScriptedPolicy(lift)) is ScriptedPolicy  # other tasks keep the shared machine
    assert type(copy.deepcopy(ScriptedPolicy(lift, seed=3))) is ScriptedPolicy
    with pytest.raises(UnsupportedError, match="push_away.*Door"):
        ScriptedPolicy(door, failure="push_away")


@pytest.mark.parametrize("mode", ["offset_grasp", "close_early"])
def test_door_missed_grasps_fail(door, mode):
    policy = ScriptedPolicy(door, failure=mode, seed=0)
    progress, info = run(door, policy, seed=0)
    p = door.privileged()
    assert policy.failure_injected_at is not None and not info["is_success"]
    assert p["failure_event"] == "the grasp missed the door handle" and progress.max() < 0.4
    assert p["hinge_angle"] < 0.02  # the door never moved


def test_door_axis_rotation():
    from policies.scripted.door import axis_rotation

    r = axis_rotation(np.array([0.3, -1.0, 0.2]), 0.7)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(r @ np.array([0.3, -1.0, 0.2]), [0.3, -1.0, 0.2], atol=1e-12)  # the axis stays
    np.testing.assert_allclose(axis_rotation(np.array([0, 0, 1.0]), 0.4)[:2, :2],
                               [[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]], atol=1e-12)
