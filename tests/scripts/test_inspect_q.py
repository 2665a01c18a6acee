"""scripts/inspect_q.py and policies.demo_sac.value_check: Q along the stored episodes against their returns."""
from __future__ import annotations

import json

import numpy as np
import pytest

from policies.demo_sac import DemoReplayBuffer, DemoSAC, value_check
from primo_loop.errors import ConfigError
from primo_loop.testing.fakes import Demonstrated, ProgressEnv


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from stable_baselines3.common.vec_env import DummyVecEnv

    out = tmp_path_factory.mktemp("run")
    env = DummyVecEnv([lambda: Demonstrated(ProgressEnv(horizon=10), 20)])
    model = DemoSAC("MlpPolicy", env, learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0,
                    gamma=0.9, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs={"n_steps": 3})
    model.learn(65)  # two 10-step demonstrations, then the agent; the last episode is unfinished
    model.save(out / "final_model.zip")
    model.save_replay_buffer(out / "final_replay_buffer.pkl")
    return out


@pytest.fixture(scope="module")
def inspect_q(load_script):
    return load_script("scripts/inspect_q.py")


def test_value_check_pairs_q_with_the_collected_return(run_dir):
    model = DemoSAC.load(run_dir / "final_model.zip", device="cpu")
    model.load_replay_buffer(run_dir / "final_replay_buffer.pkl")
    v = value_check(model)
    assert v["episodes"] == 2 and v["steps"] == [10, 10] and v["gamma"] == 0.9
    rewards = model.replay_buffer.demos.rewards[:10, 0]
    assert v["ret"][0, 0] == pytest.approx(sum(0.9 ** t * r for t, r in enumerate(rewards)), rel=1e-5)
    assert v["ret"][0, 9] == pytest.approx(rewards[9], rel=1e-6)  # the last step: its own reward only
    assert np.isfinite(v["q_data"]).all() and np.isfinite(v["q_policy"]).all()
    every = value_check(model, "all")
    assert every["episodes"] == 6  # 65 steps of 10-step episodes: the unfinished seventh is left out
    rb = model.replay_buffer  # once the buffer has wrapped, the oldest episode is partly overwritten
    rb.full, rb.buffer_size, rb.pos = True, 65, 5
    assert value_check(model, "all")["steps"] == [10] * 5
    with pytest.raises(ValueError, match="source"):
        value_check(model, "online")


def test_script_writes_the_plot_and_summary(run_dir, inspect_q, tmp_path, capsys):
    assert inspect_q.main([str(run_dir), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "q_check.json").read_text())
    assert summary["episodes"] == 2 and len(summary["mean_by_step"]["ret"]) == 10
    assert summary["start"]["ret"] == pytest.approx(summary["mean_by_step"]["ret"][0], abs=1e-3)
    assert 0.0 <= summary["policy_above_data"] <= 1.0
    assert (tmp_path / "q_check.png").stat().st_size > 10_000
    assert "| 0 |" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="no checkpoint at 500 steps"):
        inspect_q.main([str(run_dir), "--steps", "500"])
    with pytest.raises(ConfigError, match="not found"):
        inspect_q.main([str(tmp_path / "nothing")])
