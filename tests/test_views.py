"""Views: several cameras tiled side by side in one frame, carried by queries, the tracker and the wrappers; a critic
that reads several cameras gets them: the wrappers draw its views where the env's frames lack them."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ScriptedCritic
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.views import pick_view, resize_views, split_views, tile_views

TWO = ("agentview", "robot0_eye_in_hand")


def _tiled(n=3, s=8):
    left = np.zeros((n, s, s, 3), np.uint8)
    right = np.full((n, s, s, 3), 200, np.uint8)
    return tile_views([left, right])


def test_tile_split_and_resize_keep_each_view_apart():
    f = _tiled(2, 8)
    assert f.shape == (2, 8, 16, 3)
    tiles = split_views(f, 2)
    assert tiles.shape == (2, 2, 8, 8, 3) and tiles[:, 0].max() == 0 and tiles[:, 1].min() == 200
    small = resize_views(f, 4, 2)
    assert small.shape == (2, 4, 8, 3)
    assert small[:, :, :4].max() == 0 and small[:, :, 4:].min() == 200  # no bleeding across the seam
    assert pick_view(f, TWO, None).min() == 0 and pick_view(f, TWO, "robot0_eye_in_hand").min() == 200


def test_query_checks_that_frames_tile_its_views():
    f = _tiled(3, 8)
    q = CriticQuery("lift", f[0], f, f[-1], views=list(TWO))
    assert q.views == TWO  # a list is stored as a tuple
    square = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ConfigError, match=r"tile 2 views .*\(width 2 x 8 = 16\), actually: height 8, width 8"):
        CriticQuery("lift", square[0], square, square[-1], views=TWO)
    with pytest.raises(ConfigError, match="distinct"):
        CriticQuery("lift", f[0], f, f[-1], views=("a", "a"))
    # one view (named or not) accepts any frame shape, as before views existed
    wide = np.zeros((2, 8, 12, 3), np.uint8)
    assert CriticQuery("lift", wide[0], wide, wide[-1], views=("agentview",)).views == ("agentview",)


class TwoCameraEnv(gym.Env):
    """A tiny env rendering two cameras tiled, as RobosuiteEnv(cameras=...) does."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    cameras = TWO
    instruction = "lift the block"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 0.0, False, self.t >= 6, {}

    def render_frame(self):
        return _tiled(1, 8)[0]


def Recorder() -> ScriptedCritic:
    """A critic that answers 0.5 and keeps every query it is asked (``.queries``)."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=0.5))


def test_wrappers_put_the_env_cameras_into_every_query():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop

    critic = Recorder()
    env = CriticInTheLoop(TwoCameraEnv(), critic, critic_every=2)
    env.reset(seed=0)
    for _ in range(4):
        env.step(np.zeros(1, np.float32))
    assert len(critic.queries) == 3 and all(q.views == TWO for q in critic.queries)
    assert critic.queries[-1].current.shape == (8, 16, 3)
    # a user's own render_fn: the views are what the user says (none: one unnamed view)
    mine = Recorder()
    env = CriticInTheLoop(TwoCameraEnv(), mine, critic_every=2, render_fn=lambda: np.zeros((8, 8, 3), np.uint8))
    env.reset(seed=0)
    assert mine.queries[0].views == ()
    with pytest.raises(ConfigError, match="tile 2 views"):
        CriticInTheLoop(TwoCameraEnv(), Recorder(), views=TWO,
                        render_fn=lambda: np.zeros((8, 8, 3), np.uint8)).reset(seed=0)
    vec_critic = Recorder()
    venv = VecCriticInTheLoop(DummyVecEnv([TwoCameraEnv, TwoCameraEnv]), vec_critic, critic_every=2)
    venv.reset()
    assert len(vec_critic.queries) == 2 and all(q.views == TWO for q in vec_critic.queries)


def test_rollout_videos_draw_a_tiled_frame_wider():
    from primo_loop.viz import annotate_frames, layout_for

    frames = _tiled(2, 32)  # [32, 64]: black view left, grey view right
    out = annotate_frames(list(frames), [0, 10], horizon=20, oracle=[0.0] * 21, critic_steps=[0, 10],
                          critic=[0.0, 0.5], instruction="lift the block")
    lay = layout_for(64)
    assert out[0].shape[1] == lay.width == 64 * lay.scale
    # the tiled picture spans the canvas at one scale: rows of the black view then the grey one, half and half
    half = lay.width // 2
    rows = [r for r in out[0] if (r[:half] == 0).all() and (r[half:] == 200).all()]
    assert len(rows) == 32 * lay.scale


# ------------------------------------------------------------------ the critic's own views, drawn for it

SHADE = {"agentview": 10, "robot0_eye_in_hand": 200, "frontview": 90}


class OneCameraEnv(TwoCameraEnv):
    """Renders its one camera by default, any named camera on request (as RobosuiteEnv.render_frame does)."""

    cameras = ("frontview",)

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
    observation_space, action_space = TwoCameraEnv.observation_space, TwoCameraEnv.action_space
    step = TwoCameraEnv.step

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
