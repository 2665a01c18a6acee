from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_critics_compared_on_the_same_episodes(tmp_path):
    """Two critics watching the same two episodes: the exact one scores MAE 0, one that overrates by 20 points
    (capped at 100) scores between 0 and 20; runs of other episodes are refused; the plot is written."""
    from primo_loop.rollout import compare_rollouts
    from primo_loop.types import CriticVerdict

    def run(folder, critic, speed=0.5):
        env = CriticInTheLoop(ProgressEnv(horizon=30, size=32), critic=critic, critic_every=5, terminate=False)
        for i, seed in enumerate((0, 1)):
            write_episode(run_episode(env, Forward(speed), seed=seed, stop_after_success=3), tmp_path / folder, i)
        return tmp_path / folder

    over = ScriptedCritic(lambda q: CriticVerdict(progress=min(1.0, q.privileged["progress"] + 0.2)))
    exact, high = run("exact", ScriptedCritic()), run("high", over)
    result = compare_rollouts({"exact": exact, "high": high}, tmp_path / "cmp" / "plot.png")
    assert result["episodes"] == 2 and result["mae"]["exact"] == [0.0, 0.0]
    assert all(0 < m <= 20 + 1e-6 for m in result["mae"]["high"])
    assert (tmp_path / "cmp" / "plot.png").stat().st_size > 1000
    slow = run("slow", ScriptedCritic(), speed=0.3)
    with pytest.raises(ConfigError, match="did not roll out the same episodes"):
        compare_rollouts({"exact": exact, "slow": slow})
    with pytest.raises(ConfigError, match="no episode_"):
        compare_rollouts({"exact": exact, "empty": tmp_path})

    root = Path(__file__).resolve().parents[1]
    script = [sys.executable, str(root / "scripts" / "rollout.py"), "--compare", str(exact), str(high)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([*script, "--out", str(tmp_path / "cli")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0 and "exact: critic-vs-oracle MAE per episode 0.0, 0.0" in res.stdout, res.stderr
    assert json.loads((tmp_path / "cli" / "critics_compared.json").read_text())["mae"] == result["mae"]
    res = subprocess.run([*script, "--names", "a", "a", "--out", str(tmp_path / "x")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2 and "one distinct --names entry" in res.stderr, res.stderr
