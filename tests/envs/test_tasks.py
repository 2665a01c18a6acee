"""Task oracles: progress stages, events and failures on scripted Stack / PickPlaceCan, humanoid Lift."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import envs
from envs.tasks.base import frac
from policies.scripted import ScriptedPolicy
from primo_loop.errors import UnsupportedError

pytest.importorskip("robosuite")


def rollout(env, policy, seed, replan_on_failure=False):
    env.reset(seed=seed)
    policy.reset(seed=seed)
    progress, stages, info = [], [], {}
    for _ in range(env.horizon):
        _, _, terminated, truncated, info = env.step(policy.act())
        progress.append(info["oracle/progress"])
        if not stages or stages[-1] != info["oracle/stage"]:
            stages.append(info["oracle/stage"])
        if terminated or truncated:
            break
    return np.array(progress), stages, info


def test_frac():
    assert frac(2.0) == 1.0 and frac(-1.0) == 0.0 and frac(0.5) == 0.5


def test_specs_are_documented():
    for task in envs.TASKS:
        spec = envs.task_spec(task)
        assert spec.instruction and len(spec.canonical_steps) >= 3 and spec.stages[-1] == "done"
        assert spec.oracle.__module__.startswith("envs.tasks.") and spec.horizon >= 200


@pytest.fixture(scope="module")
def stack():
    env = envs.make_env("Stack", "Panda", terminate_on_success=True)
    yield env
    env.close()


def test_stack_scripted_success_stages(stack):
    progress, stages, info = rollout(stack, ScriptedPolicy(stack, seed=0), seed=0)
    assert info["is_success"] and progress[-1] == 1.0
    assert stages[0] == "reach" and stages[-1] == "done"
    assert {"lift", "align", "place"} <= set(stages)
    # progress climbs: the best value over each quarter of the episode never goes down much
    quarters = [q.max() for q in np.array_split(progress, 4)]
    assert all(b >= a - 0.05 for a, b in zip(quarters, quarters[1:]))
    events = stack.privileged()["events"]
    assert events[-1] == "the red cube was stacked on the green cube" and not stack.privileged()["failed"]


def test_stack_drop_fails_and_progress_falls(stack):
    stack.terminate_on_success = False
    try:
        policy = ScriptedPolicy(stack, failure="drop", seed=3)
        progress, _, info = rollout(stack, policy, seed=3)
    finally:
        stack.terminate_on_success = True
    p = stack.privileged()
    assert p["failed"] and p["failure_event"] == "the red cube was dropped" and not info["is_success"]
    assert progress.max() >= 0.4 and progress[-1] <= 0.3


def test_pick_place_can_scripted_success():
    env = envs.make_env("PickPlaceCan", "Panda", terminate_on_success=True)
    try:
        progress, stages, info = rollout(env, ScriptedPolicy(env, seed=1), seed=1)
        assert info["is_success"] and stages[-1] == "done" and "transport" in stages
        assert env.privileged()["events"][-1] == "the can was placed in the bin"
        assert progress[:20].max() < 0.3
    finally:
        env.close()


def test_pick_place_can_unsupported_robot():
    with pytest.raises(UnsupportedError, match="PickPlaceCan: Panda"):
        envs.make_env("PickPlaceCan", "Jaco")


def test_humanoid_lift_env_and_base_shift():
    from gymnasium.utils.env_checker import check_env

    from envs.robots import BASE_SHIFT, fix_model

    env = envs.make_env("Lift", "GR1ArmsOnly", image_size=32, horizon=10)
    try:
        assert env.action_space.shape == (24,)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env, skip_render_check=True)
        env.reset(seed=0)
        base = env.unwrapped.raw_obs["robot0_base_pos"]
        np.testing.assert_allclose(base, np.array([-0.55, 0.0, 0.95]) + BASE_SHIFT["GR1ArmsOnly"], atol=1e-6)
        fix_model("GR1ArmsOnly", env.unwrapped.rs_env.sim)  # idempotent: no second shift
        env.reset(seed=0)
        np.testing.assert_allclose(env.unwrapped.raw_obs["robot0_base_pos"], base, atol=1e-6)
        ctrl = env.unwrapped.sim_view.robot.part_controllers["right"]
        for _ in range(3):
            _, _, _, _, info = env.step(env.action_space.sample())
        # the arm controller's frame (shoulder mount, at (-0.55, -0.13, 1.31) unshifted) follows the shifted body
        np.testing.assert_allclose(ctrl.origin_pos, np.array([-0.55, -0.13, 1.31]) + BASE_SHIFT["GR1ArmsOnly"],
                                   atol=0.02)
        assert 0.0 <= info["oracle/progress"] <= 1.0 and env.render_frame().shape == (32, 32, 3)
    finally:
        env.close()


def test_humanoid_scripted_only_on_lift():
    from policies.scripted import check_scripted, scripted_robots

    check_scripted("Lift", "GR1ArmsOnly")
    assert "GR1ArmsOnly" in scripted_robots("Lift") and "GR1ArmsOnly" not in scripted_robots("Stack")
    with pytest.raises(UnsupportedError, match="humanoid 'GR1ArmsOnly' on 'Stack'.*Lift"):
        check_scripted("Stack", "GR1ArmsOnly")


# ----- Door ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def door():
    env = envs.make_env("Door", "Panda", terminate_on_success=True)
    yield env
    env.close()


def test_door_spec_and_registration():
    import gymnasium as gym

    spec = envs.task_spec("Door")
    assert spec.env_name == "Door" and dict(spec.env_kwargs) == {"use_latch": True}
    assert spec.stages == ("reach", "grasp", "turn", "open", "done")
    assert "push_away" not in spec.failure_modes and {"drop", "offset_grasp", "close_early", "freeze"} == set(
        spec.failure_modes)
    assert envs.env_id("Door") == "primo/Door-v0" and "primo/Door-v0" in gym.registry
    assert "handle" in spec.instruction and "door" in spec.instruction
    assert spec.robots == ("Panda", "Sawyer", "IIWA", "Kinova3")  # >= 90% of 20 nominal scripted episodes
    with pytest.raises(UnsupportedError, match="Door: Panda"):
        envs.make_env("Door", "UR5e")


def _set_door(env, hinge=None, handle=None):
    """Put the door in a made-up state and let the oracle read it (no physics step)."""
    o = env.oracle
    sim = env.sim_view.sim
    if hinge is not None:
        sim.data.qpos[o.hinge_addr] = hinge
    if handle is not None:
        sim.data.qpos[o.handle_addr] = handle
    sim.forward()
    o.step(np.zeros(env.action_space.shape))
    return env.privileged()


def test_door_progress_stages_on_synthetic_states(door):
    from envs.tasks.door import OPEN_ANGLE

    door.reset(seed=0)
    p0 = door.privileged()
    assert p0["stage"] == "reach" and p0["progress"] < 0.3 and p0["hinge_angle"] == pytest.approx(0.0, abs=0.01)
    turned = _set_door(door, handle=-0.9)  # the lever turned, but not held: no credit for the turn
    assert turned["progress"] < 0.3 and turned["handle_angle"] == pytest.approx(-0.9)
    half = _set_door(door, hinge=OPEN_ANGLE / 2, handle=0.0)  # ajar, nobody holding it
    assert half["stage"] == "open" and half["progress"] == pytest.approx(0.6 + 0.39 * 0.5, abs=1e-6)
    more = _set_door(door, hinge=OPEN_ANGLE * 0.9)
    assert more["progress"] > half["progress"] and not more["success"]
    done = _set_door(door, hinge=OPEN_ANGLE + 0.05)
    assert done["stage"] == "done" and done["progress"] == 1.0 and done["success"]
    assert done["events"][-1] == "the door was opened"
    closed = _set_door(door, hinge=OPEN_ANGLE / 4)  # regression: the door swung back
    assert closed["progress"] < half["progress"] and not closed["success"]
    shut = _set_door(door, hinge=0.0)
    assert shut["progress"] < 0.3 and shut["stage"] in ("reach", "grasp")


def test_door_scripted_success_stages(door):
    progress, stages, info = rollout(door, ScriptedPolicy(door, seed=0), seed=0)
    assert info["is_success"] and progress[-1] == 1.0
    assert stages == ["reach", "grasp", "turn", "open", "done"]
    quarters = [q.max() for q in np.array_split(progress, 4)]
    assert all(b >= a - 0.05 for a, b in zip(quarters, quarters[1:]))
    p = door.privileged()
    assert p["events"] == ["the gripper reached the door handle", "the door handle was grasped",
                           "the door handle was turned", "the door was opened"] and not p["failed"]


def test_door_let_go_fails(door):
    from envs.tasks.door import LET_GO

    door.terminate_on_success = False
    try:
        policy = ScriptedPolicy(door, failure="drop", seed=0)
        progress, _, info = rollout(door, policy, seed=0)
    finally:
        door.terminate_on_success = True
    p = door.privileged()
    assert policy.failure_injected_at is not None and not info["is_success"]
    assert p["failed"] and p["failure_event"] == LET_GO and progress.max() > 0.6
    # let go part-way, the door stays ajar: progress is where the door is (it falls only if the door closes)
    assert p["stage"] == "open" and progress[-1] == pytest.approx(0.6 + 0.39 * p["hinge_angle"] / 0.3, abs=1e-6)
