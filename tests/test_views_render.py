"""A critic that reads several cameras gets them: the wrappers draw its views where the env's frames lack them."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ScriptedCritic
from primo_loop.types import CriticVerdict

TWO = ("agentview", "robot0_eye_in_hand")
SHADE = {"agentview": 10, "robot0_eye_in_hand": 200, "frontview": 90}


class OneCameraEnv(gym.Env):
    """Renders its one camera by default, any named camera on request (as RobosuiteEnv.render_frame does)."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    cameras = ("frontview",)
    instruction = "lift the block"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 0.0, False, self.t >= 6, {}

    def render_frame(self, camera=None):
        return np.full((8, 8, 3), SHADE[camera or "frontview"], np.uint8)


class TwoViewCritic(ScriptedCritic):
    views = TWO

    def __init__(self):
        super().__init__(lambda q: CriticVerdict(progress=0.5))


def test_the_critics_views_are_drawn_for_it_tiled_in_its_order():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop

    critic = TwoViewCritic()
    env = CriticInTheLoop(OneCameraEnv(), critic, critic_every=2)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.step(np.zeros(1, np.float32))
    assert env.views == TWO and [q.views for q in critic.queries] == [TWO, TWO]
    cur = critic.queries[-1].current
    assert cur.shape == (8, 16, 3) and cur[:, :8].max() == 10 and cur[:, 8:].min() == 200
    vec_critic = TwoViewCritic()
    venv = VecCriticInTheLoop(DummyVecEnv([OneCameraEnv, OneCameraEnv]), vec_critic, critic_every=2)
    venv.reset()
    assert venv.views == TWO and [q.views for q in vec_critic.queries] == [TWO, TWO]
    cur = vec_critic.queries[0].current
    assert cur.shape == (8, 16, 3) and cur[:, :8].max() == 10 and cur[:, 8:].min() == 200


def test_named_views_or_a_users_frames_are_left_alone_and_an_env_that_cannot_draw_them_is_refused():
    from primo_loop.wrappers import CriticInTheLoop

    critic = TwoViewCritic()  # the caller's views win (here: what a one-camera critic would get)
    env = CriticInTheLoop(OneCameraEnv(), critic, views=("frontview",))
    env.reset(seed=0)
    assert critic.queries[0].views == ("frontview",) and critic.queries[0].current.max() == 90
    with pytest.raises(ConfigError, match=r"reads the cameras \['agentview', 'robot0_eye_in_hand'\].*cameras="):
        CriticInTheLoop(OneCameraEnv(), TwoViewCritic(), render_fn=lambda: np.zeros((8, 8, 3), np.uint8))
    plain = ScriptedCritic(lambda q: CriticVerdict(progress=0.5))  # no views: the env's frames as they are
    env = CriticInTheLoop(OneCameraEnv(), plain)
    env.reset(seed=0)
    assert env.views == ("frontview",) and plain.queries[0].current.shape == (8, 8, 3)


def test_critics_declare_their_views(tiny_ckpt, tmp_path):
    import dataclasses

    from primo_loop.critics import make_critic
    from primo_loop.critics.compact import build_model, save_checkpoint

    one = make_critic("compact", checkpoint=str(tiny_ckpt))
    cfg = dataclasses.replace(one.config, views=TWO)
    two = make_critic("compact", checkpoint=str(save_checkpoint(tmp_path / "two", cfg, build_model(cfg).state_dict())))
    assert one.views == () and two.views == TWO
    cascade = make_critic("cascade", student=two, teacher="oracle")
    assert cascade.views == TWO


class PlainEnv(gym.Env):
    """Any Gymnasium env: one frame from render(), no cameras to ask for."""

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"
    observation_space, action_space = OneCameraEnv.observation_space, OneCameraEnv.action_space
    step = OneCameraEnv.step

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def render(self):
        return np.full((8, 8, 3), 90, np.uint8)


def test_the_two_view_default_gives_way_to_its_one_view_twin_on_an_env_that_cannot_draw_cameras(
        tiny_ckpt, tmp_path, monkeypatch, caplog):
    import dataclasses

    import primo_loop.critics.compact as compact
    import primo_loop.wrappers.common as common
    from primo_loop.critics import make_critic
    from primo_loop.wrappers import CriticInTheLoop

    one = make_critic("compact", checkpoint=str(tiny_ckpt))
    cfg = dataclasses.replace(one.config, views=TWO)
    two = compact.save_checkpoint(tmp_path / "two", cfg, compact.build_model(cfg).state_dict())
    monkeypatch.setattr(compact, "DEFAULT_CHECKPOINT", two)
    monkeypatch.setitem(compact.SHIPPED, "default", two)
    monkeypatch.setitem(compact.SHIPPED, "one_view", tiny_ckpt)
    monkeypatch.setattr(common, "_SAID_ONE_VIEW", False)
    env = CriticInTheLoop(PlainEnv(), critic="compact", instruction="lift the block")
    assert env.critic.checkpoint == tiny_ckpt and env.views == ()
    assert "one-view twin" in caplog.text and env.reset(seed=0)[1]["critic/progress"] is not None
    caplog.clear()
    CriticInTheLoop(PlainEnv(), critic="compact", instruction="lift the block")
    assert "one-view twin" not in caplog.text  # said once
    # an env that draws cameras keeps the two-view default; a chosen checkpoint is never swapped
    assert CriticInTheLoop(OneCameraEnv(), critic="compact").critic.checkpoint == two
    with pytest.raises(ConfigError, match="reads the cameras"):
        CriticInTheLoop(PlainEnv(), critic="compact", critic_options={"checkpoint": str(two)},
                        instruction="lift the block")
