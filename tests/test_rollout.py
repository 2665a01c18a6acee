from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from primo_loop.cli import parse_options, writable_dir
from primo_loop.errors import ConfigError
from primo_loop.rollout import run_episode, write_episode
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic
from primo_loop.wrappers import CriticInTheLoop


class Forward:
    def __init__(self, speed):
        self.speed = speed

    def reset(self):
        pass

    def act(self, obs):
        return np.array([self.speed], dtype=np.float32)


def test_episode_rows_summary_and_files(tmp_path):
    env = CriticInTheLoop(ProgressEnv(horizon=40, size=32), critic=ScriptedCritic(), critic_every=5, frame_every=2)
    rec = run_episode(env, Forward(0.5), seed=0, stop_after_success=3)
    steps = [r["step"] for r in rec.rows]
    assert steps == list(range(len(rec.rows)))
    s = rec.summary
    assert s["ever_success"] and s["ended_by"] == "success_hold"
    assert s["steps"] == s["first_success_step"] + 3  # success held for 3 more steps
    assert s["critic_vs_oracle_mae"] == pytest.approx(0.0)
    assert s["critic_queries"] == len([r for r in rec.rows if r["queried"]])
    queried = [r for r in rec.rows if r["queried"]]
    assert [r["step"] for r in queried] == [0, 5, 10, 15, 20][: len(queried)]
    assert all(r["critic_progress"] is None for r in rec.rows if not r["queried"])
    files = write_episode(rec, tmp_path, 0, horizon=40, title="fake")
    lines = files["log"].read_text().splitlines()
    assert len(lines) == len(rec.rows)
    keys = {"step", "env_reward", "shaped_reward", "critic_progress", "oracle_progress", "failure_prob",
            "queried", "terminated", "truncated", "reason"}
    assert keys <= set(json.loads(lines[3]))
    frames = imageio.mimread(files["video"])
    assert len(frames) == len(rec.frames) and frames[0].shape[0] > 32  # the plot strip is below the frame


def test_critic_termination_drawn_and_logged(tmp_path):
    env = CriticInTheLoop(ProgressEnv(horizon=100, size=32), critic=ScriptedCritic(), critic_every=5)
    rec = run_episode(env, Forward(-1.0), seed=0)
    assert rec.summary["ended_by"] == "failure" and rec.rows[-1]["terminated"] and rec.rows[-1]["reason"] == "failure"
    files = write_episode(rec, tmp_path, 1, horizon=100)
    last = imageio.mimread(files["video"])[-1]
    assert last[1, 1, 0] > 200 and last[1, 1, 1] < 80  # the red border of a critic stop


def test_cli_helpers(tmp_path):
    assert parse_options(["model=/x/y", "max-new-tokens=64", "strict=true"]) == {
        "model": "/x/y", "max_new_tokens": 64, "strict": True}
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["oops"])
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    import os

    if os.geteuid() != 0:  # root ignores permissions
        with pytest.raises(ConfigError, match="cannot write"):
            writable_dir(ro / "sub")
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        writable_dir(f / "sub")
