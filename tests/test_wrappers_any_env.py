"""Both critic wrappers on envs that are not ours: frames from ``render()``, the instruction as an argument,
privileged state optional; Gymnasium's own ``check_env`` and recreation from ``env.spec``; verdicts checked."""
from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from primo_loop.critics.oracle import OracleCritic
from primo_loop.errors import ConfigError, CriticOutputError
from primo_loop.testing.fakes import PlainEnv, ProgressEnv, ScriptedCritic
from primo_loop.types import CriticVerdict
from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop

PLAIN_ID = "primo_test/Plain-v0"
if PLAIN_ID not in gym.registry:
    gym.register(PLAIN_ID, entry_point="primo_loop.testing.fakes:PlainEnv", max_episode_steps=30)


def frame_critic() -> ScriptedCritic:
    """Reads the step number the fake envs draw into pixel (0, 0): a critic that needs frames, not state."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=min(1.0, q.current[0, 0, 0] / 30.0)))


def run(env, steps: int = 12) -> list[dict]:
    env.reset(seed=0)
    infos = []
    for _ in range(steps):
        infos.append(env.step(env.action_space.sample())[4])
    return infos


def assert_no_recreation_warning(record) -> None:
    texts = [str(w.message) for w in record]
    assert not [t for t in texts if "RecordConstructorArgs" in t or "cannot be recreated" in t], texts


# ------------------------------------------------------------------------------------------ single env

def test_plain_env_frames_from_render_and_the_instruction_argument():
    critic = frame_critic()
    w = CriticInTheLoop(gym.make(PLAIN_ID, render_mode="rgb_array"), critic, instruction="push right",
                        critic_every=4, clip_len=3)
    infos = run(w, 12)
    assert w.instruction == "push right" and critic.calls[0][0].instruction == "push right"
    # each query's current frame is the one rendered on its own step (copied: the env reuses its buffer)
    assert [c[0].current[0, 0, 0] for c in critic.calls] == [0, 4, 8, 12]
    assert [int(f[0, 0, 0]) for f in w.frames] == [0, 4, 8, 12]
    assert infos[3]["critic/progress"] == pytest.approx(4 / 30)
    assert "oracle/progress" not in infos[3] and infos[3]["critic/queried"]


def test_render_fn_wins_over_render():
    calls = []

    def render_fn():
        calls.append(1)
        return np.full((4, 4, 3), 7, dtype=np.uint8)

    w = CriticInTheLoop(PlainEnv(render_mode="rgb_array"), frame_critic(), instruction="x", render_fn=render_fn,
                        critic_every=5)
    run(w, 5)
    assert len(calls) == 2 and w.frames[-1].shape == (4, 4, 3)


def test_a_missing_piece_is_one_error_naming_what_to_pass():
    with pytest.raises(ConfigError, match=r'pass instruction="\.\.\."'):
        CriticInTheLoop(PlainEnv(render_mode="rgb_array"), frame_critic())
    with pytest.raises(ConfigError, match=r'render_mode="rgb_array".*render_fn='):
        CriticInTheLoop(PlainEnv(), frame_critic(), instruction="x")
    # only a critic that declares it needs privileged state fails without it, and says so
    w = CriticInTheLoop(PlainEnv(render_mode="rgb_array"), OracleCritic(), instruction="x")
    with pytest.raises(ConfigError, match="'oracle' reads privileged simulator state.*'oracle/progress'"):
        w.reset(seed=0)


def test_our_fake_env_still_provides_everything_itself():
    env = ProgressEnv()
    w = CriticInTheLoop(env, OracleCritic(), critic_every=5)
    run(w, 5)
    assert w.instruction == env.instruction and env.renders == 2  # render_frame, not render()


def test_check_env_and_recreation_from_spec_on_a_plain_env():
    critic = frame_critic()
    w = CriticInTheLoop(gym.make(PLAIN_ID, render_mode="rgb_array"), critic, instruction="push right",
                        critic_every=3, gamma=1.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        check_env(w, skip_render_check=False)
    assert_no_recreation_warning(record)
    again = gym.make(w.spec)
    assert isinstance(again, CriticInTheLoop) and again.critic is critic
    assert again.tracker.config == w.tracker.config and again.instruction == "push right"
    a, b = run(w, 9), run(again, 9)
    assert [i["critic/progress"] for i in a] == [i["critic/progress"] for i in b]


@pytest.fixture
def pusher():
    pytest.importorskip("mujoco")
    envs_made = []

    def make(**kw):
        env = gym.make("Pusher-v5", render_mode="rgb_array", width=32, height=32, **kw)
        envs_made.append(env)
        return env

    yield make
    for env in envs_made:
        env.close()


def test_pusher_v5_with_the_critic_in_the_loop(pusher):
    """A Gymnasium MuJoCo env: check_env passes on the wrapped env and it is recreated from its spec."""
    critic = ScriptedCritic(lambda q: CriticVerdict(progress=float(q.current.mean()) / 255.0))
    w = CriticInTheLoop(pusher(), critic, instruction="push the puck to the goal", critic_every=5, clip_len=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # Pusher's other render modes ("human" needs a display) fail check_env unwrapped too on a headless machine
        check_env(w, skip_render_check=True)
    assert_no_recreation_warning(record)
    infos = run(w, 10)
    assert infos[4]["critic/queried"] and 0.0 < infos[4]["critic/progress"] < 1.0
    assert critic.calls[-1][0].current.shape == (32, 32, 3)
    again = gym.make(w.spec)
    assert isinstance(again, CriticInTheLoop) and again.tracker.config.critic_every == 5
    again.close()
    with pytest.raises(ConfigError, match="'oracle' reads privileged"):
        CriticInTheLoop(pusher(), "oracle", instruction="push").reset(seed=0)


@pytest.mark.slow
def test_check_env_and_spec_on_our_robosuite_lift():
    pytest.importorskip("robosuite")
    import envs

    env = envs.make_env("Lift", "Panda", image_size=32, horizon=20)
    try:
        w = CriticInTheLoop(env, OracleCritic(), critic_every=5)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            check_env(w, skip_render_check=True)
        assert_no_recreation_warning(record)
        assert w.instruction == env.instruction
    finally:
        env.close()
    made = gym.make(envs.env_id("Lift"), image_size=32, horizon=20, render_mode="rgb_array")
    w = CriticInTheLoop(made, "oracle", critic_every=5)
    again = gym.make(w.spec)
    try:
        assert isinstance(again, CriticInTheLoop) and again.critic.name == "oracle"
        infos = run(again, 5)
        assert infos[-1]["critic/progress"] == pytest.approx(infos[-1]["oracle/progress"])
    finally:
        again.close()
        made.close()


# ------------------------------------------------------------------------------------------ vector env

def test_vec_wrapper_on_plain_envs():
    critic = frame_critic()
    venv = DummyVecEnv([lambda: PlainEnv(render_mode="rgb_array") for _ in range(2)])
    vw = VecCriticInTheLoop(venv, critic, instruction="push right", critic_every=4)
    vw.reset()
    for _ in range(8):
        obs, rews, dones, infos = vw.step(np.zeros((2, 1), dtype=np.float32))
    assert vw.instructions == ["push right"] * 2
    assert [len(c) for c in critic.calls] == [2, 2, 2] and critic.calls[-1][1].current[0, 0, 0] == 8
    assert infos[0]["critic/progress"] == pytest.approx(8 / 30)


def test_vec_wrapper_missing_pieces():
    plain = DummyVecEnv([lambda: PlainEnv(render_mode="rgb_array")])
    with pytest.raises(ConfigError, match=r'pass instruction="\.\.\."'):
        VecCriticInTheLoop(plain, frame_critic())
    with pytest.raises(ConfigError, match='render_mode="rgb_array"'):
        VecCriticInTheLoop(DummyVecEnv([lambda: PlainEnv()]), frame_critic(), instruction="x")
    with pytest.raises(ConfigError, match="reads privileged"):
        VecCriticInTheLoop(plain, OracleCritic(), instruction="x").reset()
    vw = VecCriticInTheLoop(DummyVecEnv([ProgressEnv]), OracleCritic())  # ours: render_frame and instruction
    vw.reset()
    assert vw.instructions == [ProgressEnv().instruction] and vw._render_method == "render_frame"


def test_vec_wrapper_on_pusher(pusher):
    critic = ScriptedCritic(lambda q: CriticVerdict(progress=float(q.current.mean()) / 255.0))
    vw = VecCriticInTheLoop(DummyVecEnv([pusher, pusher]), critic, instruction="push the puck", critic_every=5)
    vw.reset()
    for _ in range(5):
        obs, rews, dones, infos = vw.step(np.zeros((2, 7), dtype=np.float32))
    assert [len(c) for c in critic.calls] == [2, 2] and infos[1]["critic/queried"]
    assert critic.calls[-1][0].current.shape == (32, 32, 3) and np.isfinite(rews).all()


# ------------------------------------------------------------------------------------------ verdicts

class Returns:
    """A critic returning whatever it is told to (the bugs a user's critic may have)."""

    name = "mine"

    def __init__(self, value):
        self.value = value

    def assess(self, queries):
        return [self.value(q) for q in queries]


@pytest.mark.parametrize("on_error", ["hold", "raise"])
def test_a_non_verdict_is_one_clear_error(on_error):
    w = CriticInTheLoop(ProgressEnv(), Returns(lambda q: 0.4), on_critic_error=on_error)
    with pytest.raises(CriticOutputError, match=r"Critic 'mine' returned float 0\.4 .*expected one "
                                                r"primo_loop\.types\.CriticVerdict per query"):
        w.reset(seed=0)


@pytest.mark.parametrize("field", ["progress", "failure_prob"])
def test_a_verdict_off_the_0_1_scale_is_refused_not_clamped(field):
    verdict = CriticVerdict(**{"progress": 0.5, field: 40.0})
    w = CriticInTheLoop(ProgressEnv(), Returns(lambda q: verdict))
    with pytest.raises(CriticOutputError, match=rf"'mine' answered {field}=40\.0; expected a value on the 0-1 "
                                                r"scale"):
        w.reset(seed=0)
    vw = VecCriticInTheLoop(DummyVecEnv([ProgressEnv]), Returns(lambda q: verdict))
    with pytest.raises(CriticOutputError, match="0-1 scale"):
        vw.reset()


def test_unreadable_verdicts_and_the_edges_of_the_scale_pass():
    for p in (None, math.nan, 0.0, 1.0):
        w = CriticInTheLoop(ProgressEnv(), Returns(lambda q, p=p: CriticVerdict(progress=p, failure_prob=1.0)))
        w.reset(seed=0)


def test_a_wrong_number_of_verdicts_is_an_output_error():
    class Short:
        name = "short"

        def assess(self, queries):
            return []

    with pytest.raises(CriticOutputError, match="'short' returned 0 verdicts for 1 queries"):
        CriticInTheLoop(ProgressEnv(), Short()).reset(seed=0)


def test_config_and_tracker_options_are_one_route_each():
    from primo_loop.tracker import TrackerConfig

    with pytest.raises(ConfigError, match=r"either `config` or tracker options, actually both \(options: "
                                          r"\['critic_every'\]\)"):
        CriticInTheLoop(ProgressEnv(), OracleCritic(), config=TrackerConfig(), critic_every=5)
