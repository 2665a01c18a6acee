"""RobosuiteEnv(cameras=...): two cameras rendered tiled, carried into the critic's queries."""
from __future__ import annotations

import numpy as np
import pytest

import envs
from primo_loop.errors import UnknownNameError
from primo_loop.testing.fakes import ScriptedCritic
from primo_loop.types import CriticVerdict

pytest.importorskip("robosuite")

TWO = ("agentview", "robot0_eye_in_hand")


def Recorder() -> ScriptedCritic:
    """A critic that answers 0.0 and keeps every query it is asked (``.queries``)."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=0.0))


@pytest.mark.slow
def test_two_cameras_render_tiled_under_the_env_profile_and_reach_the_critic():
    from primo_loop.wrappers import CriticInTheLoop

    env = envs.make_env("Lift", "Panda", cameras=TWO, image_size=32, horizon=4, obs_mode="both")
    try:
        assert env.cameras == TWO and env.camera == "agentview"
        obs, _ = env.reset(seed=0)
        assert obs["pixels"].shape == (32, 64, 3) and env.observation_space["pixels"].shape == (32, 64, 3)
        frame = env.render_frame()
        assert frame.shape == (32, 64, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame[:, :32], env.render_frame("agentview"))
        np.testing.assert_array_equal(frame[:, 32:], env.render_frame("robot0_eye_in_hand"))
        assert not np.array_equal(frame[:, :32], frame[:, 32:])  # two different pictures
        critic = Recorder()
        wrapped = CriticInTheLoop(env, critic, critic_every=2)
        wrapped.reset(seed=0)
        for _ in range(2):
            wrapped.step(np.zeros(env.action_space.shape, np.float32))
        assert [q.views for q in critic.queries] == [TWO, TWO] and critic.queries[-1].current.shape == (32, 64, 3)
    finally:
        env.close()


@pytest.mark.slow
def test_an_unknown_camera_is_named():
    with pytest.raises(UnknownNameError, match="robot0_eye_in_hand"):
        envs.make_env("Lift", "Panda", cameras=("agentview", "robot0_eye_in_hnd"), image_size=32)


def test_the_humanoids_right_hand_camera_gives_the_eye_in_hand_view():
    env = envs.make_env("Lift", "GR1ArmsOnly", cameras=TWO, image_size=32, horizon=4)
    try:
        assert env.cameras == TWO  # the view keeps the name a two-view critic was trained on
        env.reset(seed=0)
        frame = env.render_frame()
        np.testing.assert_array_equal(frame[:, 32:], env.render_frame("robot0_eye_in_right_hand"))
        assert not np.array_equal(frame[:, 32:], env.render_frame("robot0_eye_in_left_hand"))
    finally:
        env.close()
    from envs.adapter import resolve_camera

    # a robot that has the camera renders its own
    assert resolve_camera("robot0_eye_in_hand", ["agentview", "robot0_eye_in_hand"]) == "robot0_eye_in_hand"
    with pytest.raises(UnknownNameError, match="Unknown camera 'robot0_eye_in_hand'; valid: agentview"):
        resolve_camera("robot0_eye_in_hand", ["agentview"])
