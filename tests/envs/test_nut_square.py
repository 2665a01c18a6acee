"""NutAssemblySquare: spec and registration, oracle stages on made-up states, a scripted episode, a drop."""
from __future__ import annotations

import numpy as np
import pytest

import envs
from policies.scripted import ScriptedPolicy
from primo_loop.errors import UnsupportedError

TASK = "NutAssemblySquare"


def test_spec_and_registration():
    import gymnasium as gym

    spec = envs.task_spec(TASK)
    assert spec.env_name == "NutAssemblySquare" and "square nut" in spec.instruction and "peg" in spec.instruction
    assert spec.stages == ("reach", "grasp", "lift", "carry", "place", "done")
    assert set(spec.failure_modes) == {"drop", "offset_grasp", "close_early", "freeze"}
    assert envs.env_id(TASK) == "primo/NutAssemblySquare-v0" and "primo/NutAssemblySquare-v0" in gym.registry
    assert spec.robots == ("Panda", "Sawyer")  # >= 90% of 20 nominal scripted episodes


def test_unsupported_arm_is_refused():
    pytest.importorskip("robosuite")
    for robot in ("IIWA", "UR5e"):  # 45% and 5% of 20 nominal scripted episodes
        with pytest.raises(UnsupportedError, match=f"{robot}.*NutAssemblySquare: Panda, Sawyer"):
            envs.make_env(TASK, robot)


@pytest.fixture(scope="module")
def nut():
    pytest.importorskip("robosuite")
    env = envs.make_env(TASK, "Panda", terminate_on_success=True, image_size=48)
    yield env
    env.close()


def _put_nut(env, xy=None, z=None, eef_away=True):
    """Put the nut at a made-up place (flat, same yaw) and let the oracle read it (no physics step)."""
    o = env.oracle
    sim = env.sim_view.sim
    joint = o.nut.joints[0]
    qpos = np.array(sim.data.get_joint_qpos(joint))
    if xy is not None:
        qpos[:2] = xy
    if z is not None:
        qpos[2] = z
    sim.data.set_joint_qpos(joint, qpos)
    sim.forward()
    o.step(np.zeros(env.action_space.shape))
    return env.privileged()


def test_progress_stages_on_made_up_states(nut):
    from envs.tasks.nut_square import NUT_HALF_HEIGHT

    nut.reset(seed=0)
    o = nut.oracle
    p0 = nut.privileged()
    assert p0["stage"] == "reach" and p0["progress"] < 0.25 and not p0["success"]
    peg = o.peg_pos()[:2]
    rest = o.rest_z
    top = o.peg_top() + NUT_HALF_HEIGHT
    above = _put_nut(nut, xy=peg, z=top + 0.03)  # over the peg but not down it: nothing credited unheld
    assert above["progress"] < 0.25 and above["stage"] in ("reach", "grasp")
    half = _put_nut(nut, z=(top + o.on_height()) / 2)  # half-way down the peg, nobody holding it
    down = (top - (top + o.on_height()) / 2) / (top - o.on_height())
    assert half["stage"] == "place" and half["progress"] == pytest.approx(0.8 + 0.15 * down, abs=1e-6)
    lower = _put_nut(nut, z=o.on_height() + 0.005)
    assert lower["progress"] > half["progress"] and not lower["success"]
    done = _put_nut(nut, z=rest)  # down at the table, the gripper far away: robosuite's success
    assert done["stage"] == "done" and done["progress"] == 1.0 and done["success"]
    assert done["events"][-1] == "the square nut was placed on the peg"
    up = _put_nut(nut, z=top - 0.01)  # regression: pulled back up the peg
    assert up["progress"] < half["progress"] and not up["success"]
    beside = _put_nut(nut, xy=peg + np.array([0.0, 0.05]), z=rest)  # beside the peg, on the table
    assert beside["progress"] < 0.25 and not beside["success"] and not beside["failed"]
    gone = _put_nut(nut, xy=np.array([0.0, 0.6]), z=rest)  # past the table's edge
    assert gone["failed"] and gone["failure_event"] == "the square nut fell off the table"


def test_scripted_episode_stages_events_and_frame(nut):
    nut.reset(seed=0)
    first = nut.render_frame()
    assert first.shape == (48, 48, 3) and first.dtype == np.uint8
    policy = ScriptedPolicy(nut, seed=0)
    policy.reset(seed=0)
    progress, stages, info = [], [], {}
    for _ in range(nut.horizon):
        _, _, terminated, truncated, info = nut.step(policy.act())
        progress.append(info["oracle/progress"])
        if not stages or stages[-1] != info["oracle/stage"]:
            stages.append(info["oracle/stage"])
        if terminated or truncated:
            break
    progress = np.array(progress)
    assert info["is_success"] and progress[-1] == 1.0 and len(progress) < 200
    assert stages == ["reach", "grasp", "lift", "carry", "place", "done"]
    quarters = [q.max() for q in np.array_split(progress, 4)]
    assert all(b >= a - 0.05 for a, b in zip(quarters, quarters[1:]))
    p = nut.privileged()
    assert p["events"] == ["the gripper reached the square nut", "the square nut was grasped",
                           "the square nut was lifted", "the square nut was placed on the peg"] and not p["failed"]
    assert np.abs(nut.render_frame().astype(int) - first).mean() > 0.5  # the frame follows the nut and arm


def test_drop_away_from_the_peg_fails_and_progress_falls(nut):
    nut.terminate_on_success = False
    try:
        policy = ScriptedPolicy(nut, failure="drop", seed=0)
        nut.reset(seed=0)
        policy.reset(seed=0)
        progress = []
        for _ in range(150):
            _, _, _, _, info = nut.step(policy.act())
            progress.append(info["oracle/progress"])
    finally:
        nut.terminate_on_success = True
    p = nut.privileged()
    assert policy.failure_injected_at is not None and not info["is_success"]
    assert p["failed"] and p["failure_event"] == "the square nut was dropped away from the peg"
    assert max(progress) > 0.5 and progress[-1] < 0.25


def test_hard_reset_rebuilds_the_oracle_and_seeds_the_nut():
    pytest.importorskip("robosuite")
    env = envs.make_env(TASK, "Panda", hard_reset=True, horizon=5)
    try:
        env.reset(seed=4)
        pos = env.oracle.object_pos().copy()
        assert env.privileged()["stage"] == "reach"
        env.reset(seed=5)
        assert not np.allclose(env.oracle.object_pos(), pos)
        env.reset(seed=4)  # a new model: the oracle reads the new one, the nut is where seed 4 puts it
        np.testing.assert_allclose(env.oracle.object_pos(), pos, atol=1e-9)
        assert env.oracle.peg_dist() > 0.2 and env.sim_view.sim is env.rs_env.sim
    finally:
        env.close()
