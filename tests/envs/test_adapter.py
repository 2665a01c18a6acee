"""RobosuiteEnv: Gymnasium/SB3 compliance, seeding, horizon, rendering, info keys."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from primo_loop.errors import ConfigError, UnknownNameError, UnsupportedError

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def lift():
    env = envs.make_env("Lift", "Panda", image_size=64, horizon=12)
    yield env
    env.close()


def test_registered_ids_and_names():
    for task in envs.TASKS:
        assert f"primo/{task}-v0" in gym.registry
        assert envs.env_id(task) == f"primo/{task}-v0"
        assert "Panda" in envs.supported_robots(task)
    assert "Lift" in envs.TASKS and "GR1ArmsOnly" in envs.supported_robots("Lift")


def test_bad_names_raise_with_hint():
    with pytest.raises(UnknownNameError, match="Did you mean 'Lift'"):
        envs.make_env("Lfit")
    with pytest.raises(UnknownNameError, match="Did you mean 'Sawyer'"):
        envs.make_env("Lift", "sawyr")
    with pytest.raises(UnknownNameError):
        envs.make_env("Lift", obs_mode="image")
    with pytest.raises(ConfigError):
        envs.make_env("Lift", image_size=0)


def test_unsupported_pair_names_working_robots():
    unsupported = [(t, r) for t in envs.TASKS for r in envs.ROBOTS if r not in envs.supported_robots(t)]
    if not unsupported:
        pytest.skip("every task supports every robot")
    task, robot = unsupported[0]
    with pytest.raises(UnsupportedError, match="Panda"):
        envs.make_env(task, robot)


def test_spaces_and_info(lift):
    obs, info = lift.reset(seed=0)
    assert lift.observation_space.dtype == np.float32 and obs.dtype == np.float32
    assert lift.observation_space.contains(obs)
    assert lift.action_space.dtype == np.float32 and lift.action_space.shape == (7,)
    for key in ("is_success", "oracle/progress", "oracle/failed", "oracle/stage"):
        assert key in info
    assert lift.instruction == "pick up the cube and lift it"
    assert (lift.task, lift.robot, lift.camera, lift.image_size, lift.horizon) == ("Lift", "Panda", "agentview", 64, 12)
    p = lift.privileged()
    assert {"progress", "failed", "failure_event", "stage", "success", "events", "canonical_steps"} <= set(p)
    assert 0.0 <= p["progress"] <= 1.0 and p["failed"] is False and p["events"] == []


def test_horizon_truncates_never_terminates(lift):
    lift.reset(seed=1)
    for t in range(1, lift.horizon + 1):
        _, reward, terminated, truncated, info = lift.step(np.zeros(7, np.float32))
        assert isinstance(reward, float) and not terminated
        assert truncated == (t == lift.horizon)
    assert lift.step_count == lift.horizon


def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        out.append(env.step(a)[0])
    return np.stack(out)


def test_seeding_is_deterministic(lift):
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 7)).astype(np.float32)
    a = _rollout(lift, 3, actions)
    _rollout(lift, 4, actions)  # something in between must not leak into the next episode
    b = _rollout(lift, 3, actions)
    c = _rollout(lift, 5, actions)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], c[0])


def test_render_frame_upright_and_sized(lift):
    lift.reset(seed=0)
    frame = lift.render_frame()
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    big = lift.render_frame(size=96)
    assert big.shape == (96, 96, 3)
    # agentview looks down at the white table: the bottom rows are bright table, the top rows are not
    gray = big.astype(np.float32).mean(axis=2)
    assert gray[-10:].mean() > 150
    assert gray[-10:].mean() > gray[:10].mean() + 20
    with pytest.raises(UnknownNameError):
        lift.render_frame(camera="nope")


def test_pixel_modes_and_render_mode():
    env = envs.make_env("Lift", "Panda", image_size=32, obs_mode="both", horizon=5, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"state", "pixels"}
        assert obs["pixels"].shape == (32, 32, 3) and obs["pixels"].dtype == np.uint8
        assert env.observation_space.contains(obs)
        assert env.render().shape == (32, 32, 3)
    finally:
        env.close()


def test_terminate_on_success_flag(lift):
    lift.terminate_on_success = True
    try:
        lift.reset(seed=0)
        lift.oracle.success = lambda: True  # force the success branch without a full scripted rollout
        _, _, terminated, truncated, info = lift.step(np.zeros(7, np.float32))
        assert terminated and not truncated and info["is_success"] and info["oracle/progress"] == 1.0
    finally:
        lift.terminate_on_success = False
        del lift.oracle.success


@pytest.mark.parametrize("task", envs.TASKS)
def test_check_env_gymnasium_and_sb3(task):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(envs.env_id(task), robot="Panda", image_size=32, horizon=20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()


def test_render_profile_is_validated():
    with pytest.raises(UnknownNameError, match="render_profile 'fsat'; valid: default, fast.*Did you mean 'fast'"):
        envs.make_env("Lift", render_profile="fsat")


def test_fast_profile_frames(lift):
    lift.reset(seed=0)
    fast = lift.render_frame(profile="fast")
    default = lift.render_frame(profile="default")
    assert fast.dtype == np.uint8 and fast.shape == (64, 64, 3)
    assert np.abs(fast.astype(int) - default).mean() > 0.5  # a different picture of the same state
    np.testing.assert_array_equal(fast, lift.render_frame(profile="fast"))
    for _ in range(3):
        lift.step(np.ones(7, np.float32))
    assert not np.array_equal(fast, lift.render_frame(profile="fast"))  # it follows the simulator
    lift.reset(seed=0)
    np.testing.assert_array_equal(fast, lift.render_frame(profile="fast"))  # same state, same frame
    # upright, like the default frame: bright table at the bottom
    gray = lift.render_frame(size=96, profile="fast").astype(np.float32).mean(axis=2)
    assert gray[-10:].mean() > 150 and gray[-10:].mean() > gray[:10].mean() + 20
    # the robot and gripper are drawn where they were: on 2x2-averaged frames (aliased edges smoothed) few
    # pixels change much: 0.2% measured, 4.1% with the robot and gripper left out of the fast picture
    half = lambda x: x.astype(float).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # noqa: E731
    assert (np.abs(half(fast) - half(default)).max(axis=2) > 60).mean() < 0.015


def test_default_profile_is_robosuites_frame_and_hard_reset_reuses_the_cache():
    from envs import render

    env = envs.make_env("Lift", "Panda", image_size=48, horizon=5, hard_reset=True, render_profile="fast",
                        has_offscreen_renderer=True)
    try:
        env.reset(seed=2)
        assert env.render_profile == "fast"
        ours = env.render_frame(profile="default")
        ctx = env.rs_env.sim._render_context_offscreen
        ctx.gl_ctx.make_current()  # robosuite's renderer does not make its context current itself
        theirs = env.rs_env.sim.render(camera_name="agentview", width=48, height=48)[::-1]
        np.testing.assert_array_equal(ours, theirs)  # "default" is today's frame, pixel for pixel
        first = env.render_frame()
        hits = render.CACHE_STATS["hits"]
        env.reset(seed=2)  # a hard reset rebuilds the model: the renderer is remade, the simplification reused
        again = env.render_frame()
        assert render.CACHE_STATS["hits"] == hits + 1
        np.testing.assert_array_equal(first, again)
    finally:
        env.close()


def test_check_env_with_fast_pixels():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("primo/Lift-v0", robot="Panda", image_size=32, horizon=20, obs_mode="both",
                   render_profile="fast", render_mode="rgb_array")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=False)
        assert env.unwrapped.render().shape == (32, 32, 3)
    finally:
        env.close()
