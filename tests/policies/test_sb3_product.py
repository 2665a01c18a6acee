"""Training as a newcomer meets it: the monitor over the critic, envs of one's own (with or without
``is_success``, a Gymnasium MuJoCo env), one route per setting, and run folders that are never clobbered."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from policies.sb3 import AgentConfig, list_checkpoints, make_vec_env, read_eval, train
from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.tracker import TrackerConfig
from primo_loop.training.online import RefreshConfig
from primo_loop.types import CriticVerdict

FAKE = "primo_loop.testing.fakes:ProgressEnv"
SMALL = {"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}}


class NoSuccessEnv(ProgressEnv):
    """The fake task without ``is_success`` in its info (like most Gymnasium envs)."""

    def reset(self, **kw):
        obs, info = super().reset(**kw)
        info.pop("is_success")
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info.pop("is_success")
        return obs, reward, terminated, truncated, info


def make_pusher():
    """A plain Gymnasium MuJoCo env, as a user would hand it to ``--env module:callable``."""
    return gym.make("Pusher-v5", render_mode="rgb_array", width=64, height=64)


def tiny(tmp_path, **kw) -> AgentConfig:
    base = dict(env=FAKE, algo="sac", reward="oracle", steps=200, workers=1, horizon=30, eval_every=100,
                eval_episodes=2, checkpoint_every=100, out=str(tmp_path / "run"), progress_bar=False,
                algo_kwargs=dict(SMALL))
    base.update(kw)
    return AgentConfig(**base)


def test_the_episode_monitor_sits_on_top_of_the_critic(tmp_path):
    """The logged episode return is the sum of the shaped rewards the agent got, and the logged length stops
    where the critic ended the episode (a monitor under the critic would log the env's 0 return and 30 steps)."""
    def failing(q):  # progress as the env says, and a failure verdict from step 10 on
        return CriticVerdict(progress=q.privileged["progress"], failure_prob=1.0 if q.step >= 10 else 0.0)

    cfg = tiny(tmp_path, reward="critic", tracker=TrackerConfig(critic_every=5, failure_patience=2,
                                                                termination_penalty=-1.0))
    venv = make_vec_env(cfg, critic=ScriptedCritic(failing))
    try:
        venv.reset()
        shaped, steps = [], 0
        while True:
            _, rewards, dones, infos = venv.step(np.full((1, 1), 0.5, dtype=np.float32))
            shaped.append(float(rewards[0]))
            steps += 1
            if dones[0]:
                break
        episode = infos[0]["episode"]
        assert infos[0]["critic/terminated_reason"] and steps == 15 < cfg.horizon
        assert episode["l"] == steps
        assert episode["r"] == pytest.approx(sum(shaped), abs=1e-5) and abs(sum(shaped)) > 0.1
    finally:
        venv.close()


def test_an_env_without_is_success_trains_and_is_evaluated_on_return(tmp_path):
    summary = train(tiny(tmp_path, env=f"{__name__}:NoSuccessEnv", reward="critic"),
                    critic=ScriptedCritic(lambda q: CriticVerdict(progress=q.privileged["progress"])))
    assert summary["timesteps"] == 200
    rows = read_eval(tmp_path / "run" / "eval.csv")
    # no success was reported, so none is logged (an empty cell, not a made-up 0 or a NaN)
    assert [r["timesteps"] for r in rows] == [100, 200]
    assert all("success_rate" not in r and np.isfinite(r["mean_reward"]) for r in rows)


@pytest.mark.slow
def test_a_gymnasium_mujoco_env_trains_through_the_documented_route(tmp_path):
    """``--env module:callable --instruction ...`` with Pusher-v5 (no ``is_success``, no ``render_frame``, no
    instruction of its own; frames from ``render()``): the critic sees its frames and the run is evaluated on
    return. Needs the critic wrappers' support of plain Gymnasium envs (``instruction=``, frames from ``render()``)."""
    seen = []

    def answer(q):
        seen.append(q.current.shape)
        return CriticVerdict(progress=0.5, failure_prob=0.0)

    summary = train(tiny(tmp_path, env=f"{__name__}:make_pusher", reward="critic", steps=60, horizon=20,
                         instruction="push the puck to the goal",
                         eval_every=60, checkpoint_every=0, tracker=TrackerConfig(critic_every=10)),
                    critic=ScriptedCritic(answer))
    assert summary["timesteps"] == 60 and summary["critic"]["queries"] > 0
    assert seen and all(shape[-1] == 3 and shape[0] > 8 for shape in seen)  # real frames, not blank ones
    assert "mean_reward" in read_eval(tmp_path / "run" / "eval.csv")[-1]


def test_a_critic_without_the_critic_reward_is_refused():
    with pytest.raises(ConfigError, match="--critic compact has no effect with --reward sparse"):
        AgentConfig(reward="sparse", critic="compact")
    with pytest.raises(ConfigError, match="has no effect with --reward oracle"):
        AgentConfig(reward="oracle", critic="vlm")
    assert AgentConfig(reward="critic", critic="vlm").critic_name == "vlm"
    # nor is any other setting a sparse or dense run would silently ignore
    with pytest.raises(ConfigError, match="--critic-option has no effect with --reward dense"):
        AgentConfig(reward="dense", critic_options={"checkpoint": "x"})
    with pytest.raises(ConfigError, match=r"--tracker.\* options have no effect with --reward sparse"):
        AgentConfig(reward="sparse", tracker=TrackerConfig(critic_every=5))
    assert AgentConfig(reward="oracle", critic_options={"noise_std": 0.1}).critic_options == {"noise_std": 0.1}
    with pytest.raises(ConfigError, match="--instruction has no effect with --reward sparse"):
        AgentConfig(reward="sparse", instruction="lift it")


def test_each_setting_has_one_route():
    # the run's own settings are fields; algo_kwargs may not set them a second time
    with pytest.raises(ConfigError, match="`bc_steps` is a setting of its own"):
        AgentConfig(algo_kwargs={"bc_steps": 10})
    # the tracker's gamma is the agent's: set once, through the algorithm
    cfg = AgentConfig(reward="critic", algo_kwargs={"gamma": 0.9})
    assert cfg.tracker_config().gamma == 0.9
    with pytest.raises(ConfigError, match="tracker's gamma"):
        AgentConfig(reward="critic", tracker=TrackerConfig(gamma=0.5))
    # the refresh's seed is the run's; refresh options need refresh on
    cfg = AgentConfig(reward="critic", seed=7, refresh=RefreshConfig(every=100))
    assert cfg.refresh_config().seed == 7
    with pytest.raises(ConfigError, match="--refresh.every"):
        AgentConfig(reward="critic", refresh=RefreshConfig(every=0, grad_steps=5))


def test_an_existing_run_folder_is_refused_unless_resumed_or_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty: pass --resume .* --overwrite"):
        train(tiny(tmp_path, steps=100, eval_every=0))
    assert (out / "notes.txt").read_text() == "mine"  # untouched
    # --overwrite replaces a run folder, never a folder of something else
    with pytest.raises(ConfigError, match="holds no config.json"):
        train(tiny(tmp_path, steps=100, eval_every=0, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    train(tiny(tmp_path, steps=100, eval_every=0))
    (out / "notes.txt").write_text("left by hand")
    train(tiny(tmp_path, steps=100, eval_every=0, overwrite=True, seed=1))
    assert not (out / "notes.txt").exists() and json.loads((out / "config.json").read_text())["seed"] == 1
    with pytest.raises(ConfigError, match="pass one of them"):
        tiny(tmp_path, resume=True, overwrite=True)


def test_a_failed_start_removes_what_it_created(tmp_path):
    class Broken:
        def assess(self, queries):
            raise KeyboardInterrupt  # not swallowed by the wrapper: the start fails at the first reset

    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, reward="critic"), critic=Broken())
    assert not (tmp_path / "run").exists()
    # a folder that was there before is left in place (only what this run created goes)
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, reward="critic", out=str(tmp_path / "kept")), critic=Broken())
    assert (tmp_path / "kept").is_dir()


def test_a_resume_whose_checkpoints_are_all_truncated_is_one_line_naming_the_file(tmp_path):
    out = tmp_path / "run"
    train(tiny(tmp_path, steps=200, eval_every=0))
    (out / "done.json").unlink()
    for _, path in list_checkpoints(out / "checkpoints"):
        path.write_bytes(b"truncated")
    with pytest.raises(ConfigError, match=r"no checkpoint in .* loads \(the newest, .*model_200_steps.zip"):
        train(tiny(tmp_path, steps=300, eval_every=0, resume=True))
    assert json.loads((out / "config.json").read_text())["steps"] == 200  # the run's record is not rewritten


def test_a_truncated_policy_file_is_one_line_naming_it(tmp_path):
    from policies.sb3 import load_model
    from policies.sb3.config import algo_class

    train(tiny(tmp_path, steps=100, eval_every=0))
    (tmp_path / "run" / "final_model.zip").write_bytes(b"trunc")
    with pytest.raises(ConfigError, match=r"final_model.zip does not load as a saved DemoSAC model"):
        load_model(algo_class("sac"), tmp_path / "run" / "final_model.zip")


def test_a_run_folder_of_the_earlier_flat_config_is_refused_on_resume_in_one_line(tmp_path):
    out = tmp_path / "run"
    train(tiny(tmp_path, steps=100, eval_every=0))
    config = json.loads((out / "config.json").read_text())
    for key in ("tracker", "refresh"):
        del config[key]
    config.update(critic_every=10, tracker_options={}, refresh_every=0)  # as the earlier version wrote it
    (out / "config.json").write_text(json.dumps(config))
    (out / "done.json").unlink()
    with pytest.raises(ConfigError, match="written by an earlier train_agent.py .* cannot be resumed"):
        train(tiny(tmp_path, steps=200, eval_every=0, resume=True))
