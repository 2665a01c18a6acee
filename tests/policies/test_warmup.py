"""Position-only actions, the scripted warm-up that records demonstrations, and the SAC that learns from them."""
from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from envs.actions import PositionActions
from policies.sb3 import AgentConfig, grow_replay_buffer, make_task_env, train
from policies.demo_sac import DemoReplayBuffer, DemoSAC
from policies.warmup import EXECUTED, ScriptedWarmup
from primo_loop.errors import ConfigError, UnknownNameError, UnsupportedError
from primo_loop.testing.fakes import Demonstrated, ProgressEnv


def test_position_actions_hold_the_orientation():
    env = PositionActions(gym.wrappers.PassiveEnvChecker(_Box7()))
    assert env.action_space.shape == (4,)
    full = env.action(np.array([0.1, -0.2, 0.3, 1.0]))
    np.testing.assert_allclose(full, [0.1, -0.2, 0.3, 0, 0, 0, 1.0])
    np.testing.assert_allclose(PositionActions.to_position(full), [0.1, -0.2, 0.3, 1.0])
    with pytest.raises(ValueError, match="OSC_POSE"):
        PositionActions(ProgressEnv())


def test_config_checks_the_new_options():
    with pytest.raises(UnknownNameError, match="action space"):
        AgentConfig(action="joint")
    with pytest.raises(UnknownNameError, match="action space"):
        make_task_env("Lift", action="joint")  # refused before a simulator is built
    # the position layout is one arm's: a two-armed humanoid is refused, also before any simulator
    with pytest.raises(UnsupportedError, match="single-arm.*GR1ArmsOnly"):
        AgentConfig(action="position", robot="GR1ArmsOnly")
    with pytest.raises(UnsupportedError, match="single-arm"):
        make_task_env("Lift", robot="GR1ArmsOnly", action="position")
    with pytest.raises(ConfigError, match="off-policy"):
        AgentConfig(algo="ppo", demo_episodes=3)
    with pytest.raises(ConfigError, match="robosuite tasks"):
        AgentConfig(env="primo_loop.testing.fakes:ProgressEnv", demo_episodes=3)
    with pytest.raises(ConfigError, match="robosuite tasks"):
        AgentConfig(env="primo_loop.testing.fakes:ProgressEnv", action="position")
    with pytest.raises(ConfigError, match="demo_episodes"):
        AgentConfig(demo_episodes=-1)
    with pytest.raises(ConfigError, match="demo_fraction"):
        AgentConfig(demo_episodes=2, demo_fraction=1.0)
    hp = AgentConfig(demo_episodes=2, demo_fraction=0.25, bc_steps=7).hyperparameters()
    assert hp["replay_buffer_class"] is DemoReplayBuffer
    assert hp["replay_buffer_kwargs"] == {"demo_fraction": 0.25, "n_steps": 1, "gamma": 0.99}
    assert hp["bc_steps"] == 7
    assert "replay_buffer_class" not in AgentConfig().hyperparameters()
    AgentConfig(algo_kwargs={"q_warmup_steps": 3, "learning_starts": 10})  # DemoSAC's and SAC's own options
    with pytest.raises(ConfigError, match="`bc_steps` is a setting of its own"):  # one route: the field
        AgentConfig(algo_kwargs={"bc_steps": 3})


def test_scripted_warmup_lifts_with_position_actions_then_hands_over():
    env = make_task_env("Lift", reward="dense", horizon=80, action="position", demo_episodes=1, demo_noise=0.1)
    try:
        assert env.action_space.shape == (4,)
        env.reset(seed=0)
        lifted, executed = False, []
        for _ in range(80):
            _, _, term, trunc, info = env.step(np.zeros(4, dtype=np.float32))
            executed.append(info[EXECUTED])
            lifted |= info["is_success"]
            if term or trunc:
                break
        # the demonstration is a successful lift, made of 4-D actions the agent could have taken
        assert lifted and all(a.shape == (4,) for a in executed)
        assert np.abs(np.array(executed)[:, :3]).max() > 0.5
        env.reset(seed=1)  # the warm-up is over: the agent's action runs and nothing is substituted
        _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
        assert EXECUTED not in info
    finally:
        env.close()


def test_end_warmup_hands_over_at_once():
    env = ScriptedWarmup(make_task_env("Lift", horizon=20, action="position"), episodes=5)
    try:
        env.end_warmup()
        env.reset(seed=0)
        assert EXECUTED not in env.step(np.zeros(4, dtype=np.float32))[4]
    finally:
        env.close()


class _Box7(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (7,), np.float32)


def test_sac_stores_the_executed_action():
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = DemoSAC("MlpPolicy", DummyVecEnv([lambda: Demonstrated(ProgressEnv(horizon=20))]), learning_starts=10,
                batch_size=8, policy_kwargs={"net_arch": [8]}, seed=0)
    model.learn(40)
    actions = model.replay_buffer.actions[:40, 0, 0]
    np.testing.assert_allclose(actions, 0.5, atol=1e-6)  # not the sampled ones


def test_training_with_demonstrations_stores_them_once(tmp_path):
    def cfg(steps: int, resume: bool = False) -> AgentConfig:
        return AgentConfig(env="Lift", algo="sac", reward="dense", action="position", demo_episodes=1,
                           demo_noise=0.0, steps=steps, workers=1, horizon=30, eval_every=0, checkpoint_every=30,
                           out=str(tmp_path / "run"), progress_bar=False, resume=resume,
                           algo_kwargs={"learning_starts": 40, "batch_size": 16, "n_steps": 3,
                                        "policy_kwargs": {"net_arch": [16]}})

    train(cfg(60))
    train(cfg(90, resume=True))  # continues from the 60-step checkpoint: no second demonstration
    model = DemoSAC.load(tmp_path / "run" / "final_model.zip")
    model.load_replay_buffer(tmp_path / "run" / "final_replay_buffer.pkl")
    assert model.num_timesteps == 90
    # the resumed (grown) buffer still samples 3-step returns, and holds the one demonstration
    assert model.replay_buffer.n_steps == 3 and model.replay_buffer.demos.size() == 30
    assert model.replay_buffer.sample(8).discounts is not None
    grip = model.replay_buffer.actions[:90, 0, 3]
    # noiseless scripted approach: gripper exactly open (-1) for the first steps; the agent's own
    # (stochastic, squashed) actions after the 30-step demonstration are never exactly -1
    assert np.all(grip[:10] == -1.0)
    assert not np.any(grip[30:90] == -1.0)


def _buffer(size=10, fraction=0.5, **kw):
    box = gym.spaces.Box(-1, 1, (1,), np.float32)
    return DemoReplayBuffer(size, box, box, device="cpu", demo_fraction=fraction, demo_capacity=100, **kw)


def _add(buf, value, demo, done=False, timeout=False, reward=None):
    x = np.full((1, 1), value, dtype=np.float32)
    info = {EXECUTED: x[0]} if demo else {}
    if timeout:
        info["TimeLimit.truncated"] = True
    buf.add(x, x + 0.5, x, np.array([value if reward is None else reward]), np.array([done]), [info])


def test_demo_buffer_keeps_demonstrations_and_mixes_batches():
    buf = _buffer(size=10, fraction=0.25)
    for k in range(5):
        _add(buf, 0.5, demo=True)
    for k in range(30):  # the circular main buffer wraps three times: the demonstrations leave it
        _add(buf, -0.5, demo=False)
    assert buf.demos.size() == 5 and not np.any(buf.observations == 0.5)
    batch = buf.sample(40)
    assert batch.observations.shape == (40, 1)
    assert int((batch.observations == 0.5).sum()) == 10  # a quarter of each batch, exactly
    online = _buffer()
    _add(online, -0.5, demo=False)
    assert online.sample(4).observations.shape == (4, 1)  # no demonstrations yet: all from the main buffer


def test_n_step_returns_on_demonstrations_and_online_data():
    one, three = _buffer(size=20, n_steps=1, gamma=0.5), _buffer(size=20, n_steps=3, gamma=0.5)
    for buf in (one, three):
        for t, r in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):  # a demonstration ending in a true terminal
            _add(buf, float(t), demo=True, done=t == 4, reward=r)
        for t, r in enumerate([1.0, 1.0, 1.0, 1.0]):  # an online episode cut by the time limit
            _add(buf, 10.0 + t, demo=False, done=t == 3, timeout=t == 3, reward=r)
    # one step: the plain one-step sample (no per-sample discount; SAC uses its gamma)
    b = one.demos._get_samples(np.arange(5))
    assert b.rewards.flatten().tolist() == [1, 2, 3, 4, 5] and b.discounts is None
    # three steps: discounted sums that stop at the episode's end; the discount left for bootstrapping
    b = three.demos._get_samples(np.arange(5))
    assert b.rewards.flatten().tolist() == [2.75, 4.5, 6.25, 6.5, 5.0]  # 1 + 2/2 + 3/4, ...
    assert b.discounts.flatten().tolist() == [0.125, 0.125, 0.125, 0.25, 0.5]
    assert b.next_observations.flatten().tolist() == [2.5, 3.5, 4.5, 4.5, 4.5]
    assert b.dones.flatten().tolist() == [0, 0, 1, 1, 1]  # the terminal is reached within three steps
    b = three._get_samples(np.arange(5, 9))  # the main buffer: the online episode
    assert b.rewards.flatten().tolist() == [1.75, 1.75, 1.5, 1.0]
    assert b.dones.flatten().tolist() == [0, 0, 0, 0]  # a time limit is not a terminal: Q bootstraps there


def test_workers_demonstrations_are_stored_one_episode_at_a_time():
    box = gym.spaces.Box(-1, 1, (1,), np.float32)
    buf = DemoReplayBuffer(50, box, box, device="cpu", n_envs=2, demo_capacity=100, n_steps=3, gamma=0.5)
    demo = [{EXECUTED: np.zeros(1)}]

    def step(a, b, done_a=False, done_b=False, demo_b=True):  # env 0 shows a, env 1 shows b
        x = np.array([[a], [b]], dtype=np.float32)
        buf.add(x, x, x, np.array([1.0, 1.0]), np.array([done_a, done_b]), demo + (demo if demo_b else [{}]))

    step(0, 10)
    step(1, 11, done_a=True)  # env 0's demonstration ends: stored at once
    assert buf.demos.observations[:buf.demos.size(), 0, 0].tolist() == [0, 1]
    step(2, 12)
    step(3, 13, demo_b=False)  # env 1 is handed over to the agent mid-episode: its demonstration is cut
    assert buf.demos.observations[:buf.demos.size(), 0, 0].tolist() == [0, 1, 10, 11, 12]
    b = buf.demos._get_samples(np.arange(5))
    # no n-step return runs from env 0's episode into env 1's, nor on from the cut one
    assert b.rewards.flatten().tolist() == [1.5, 1.0, 1.75, 1.5, 1.0]
    assert b.dones.flatten().tolist() == [1, 1, 0, 0, 0]
    assert b.discounts.flatten().tolist() == [0.25, 0.5, 0.125, 0.25, 0.5]


def test_n_step_option_reaches_the_demo_buffer():
    hp = AgentConfig(demo_episodes=2, workers=1, algo_kwargs={"n_steps": 5, "gamma": 0.9}).hyperparameters()
    assert "n_steps" not in hp  # SB3 would ignore it (with a warning) next to a custom buffer class
    assert hp["replay_buffer_kwargs"] == {"demo_fraction": 0.5, "n_steps": 5, "gamma": 0.9}
    assert AgentConfig(algo_kwargs={"n_steps": 5}).hyperparameters()["n_steps"] == 5  # no demos: SB3's own
    with pytest.raises(ConfigError, match="n_steps"):
        AgentConfig(demo_episodes=2, algo_kwargs={"n_steps": 0})
    # a resumed run's grown buffer keeps its n-step setting and its demonstrations
    buf = _buffer(size=4, n_steps=3, gamma=0.5)
    for t in range(3):
        _add(buf, float(t), demo=True, reward=1.0)
    model = SimpleNamespace(replay_buffer=buf, buffer_size=4)
    grow_replay_buffer(model, 50)
    grown = model.replay_buffer
    assert grown.buffer_size == 50 and grown.n_steps == 3 and grown.gamma == 0.5 and grown.demos is buf.demos
    assert grown._get_samples(np.array([0])).rewards.item() == 1.75


def test_behaviour_cloning_fits_the_demonstrations():
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = DemoSAC("MlpPolicy", DummyVecEnv([lambda: Demonstrated(ProgressEnv(horizon=20))]), learning_starts=30,
                    batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0, bc_steps=300, bc_lr=3e-3,
                    replay_buffer_class=DemoReplayBuffer)
    model.learn(31)  # 30 demonstrated steps of action 0.5, then the first update clones them
    # the finished 20-step episode is stored; the second waits for its end
    assert model.bc_done and model.replay_buffer.demos.size() == 20
    obs = model.replay_buffer.demos.observations[:20, 0]
    actions, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions, 0.5, atol=0.05)


def test_regularized_actor_keeps_the_demonstrated_action_during_sac():
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = DemoSAC("MlpPolicy", DummyVecEnv([lambda: Demonstrated(ProgressEnv(horizon=20), 20)]),
                    learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0, bc_steps=300,
                    bc_lr=3e-3, bc_regularize=True, replay_buffer_class=DemoReplayBuffer)
    model.learn(200)  # 180 SAC updates, each followed by a cloning step
    assert model.replay_buffer.demos.size() == 20 and model.bc_loss is not None
    actions, _ = model.predict(model.replay_buffer.demos.observations[:20, 0], deterministic=True)
    np.testing.assert_allclose(actions, 0.5, atol=0.1)


def test_q_warmup_trains_only_the_q_function_first():
    import torch as th
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = DemoSAC("MlpPolicy", DummyVecEnv([lambda: Demonstrated(ProgressEnv(horizon=20), 20)]),
                    learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0, ent_coef="auto",
                    q_warmup_steps=50, replay_buffer_class=DemoReplayBuffer)
    actor0 = [p.detach().clone() for p in model.actor.parameters()]
    critic0 = [p.detach().clone() for p in model.critic.parameters()]
    alpha0 = model.log_ent_coef.detach().clone()
    seen = []  # per actor step: (its learning rate, are the actor and alpha still at their start values)
    original = model.actor.optimizer.step

    def spy(*a, **k):
        out = original(*a, **k)
        still = all(th.equal(x, y) for x, y in zip(actor0, model.actor.parameters()))
        seen.append((model.actor.optimizer.param_groups[0]["lr"], still and th.equal(alpha0, model.log_ent_coef)))
        return out

    model.actor.optimizer.step = spy
    model.learn(21)  # 20 demonstrated steps, then one train(): 50 warm-up updates and 1 normal one
    assert model.bc_done and len(seen) == 51
    assert seen[:50] == [(0.0, True)] * 50  # the warm-up left the actor and the entropy coefficient alone
    assert seen[50][0] > 0 and not seen[50][1]  # then both learn again
    assert any(not th.equal(a, b) for a, b in zip(critic0, model.critic.parameters()))  # Q did learn
