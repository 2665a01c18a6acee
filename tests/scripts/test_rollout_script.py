"""scripts/rollout.py through a subprocess: outputs on success, status 2 with one line on bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


def rollout(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "rollout.py"), *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize("args, expect", [
    (["--env", "Lfit"], "Did you mean 'Lift'"),
    (["--robot", "Pnda"], "Did you mean 'Panda'"),
    (["--critic", "orcle"], "Did you mean 'oracle'"),
    (["--inject-failure", "dorp"], "Did you mean 'drop'"),
    (["--env", "PickPlaceCan", "--robot", "Jaco"], "robots that work"),
    (["--critic-option", "oops"], "key=value"),
    (["--critic", "oracle", "--critic-option", "noise_std=abc"],
     "critic option `noise_std` to be a number (float), actually: 'abc'"),
    (["--tracker-option", "failure_threshold=abc"],
     "tracker option `failure_threshold` to be a number (float), actually: 'abc'"),
    (["--tracker-option", "terminate=maybe"], "tracker option `terminate` to be true or false"),
    (["--size", "7"], "--size between 32 and 1024 pixels, actually: 7"),
    (["--size", "100000"], "--size between 32 and 1024 pixels, actually: 100000"),
    (["--critic", "nopkg.critics:Mine"], "cannot import module 'nopkg.critics'"),
    (["--critic-every", "5", "--tracker-option", "critic_every=3"],
     "--tracker-option critic_every=3: that setting has its own flag, --critic-every"),
    (["--tracker-option", "terminate=false", "--tracker-option", "terminate=true"], "given twice"),
])
def test_bad_input_exits_2_with_one_line(args, expect, tmp_path):
    proc = rollout(*args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    if "Unknown" in lines[0]:
        assert "valid:" in lines[0]


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = rollout("--out", str(blocker / "sub"))
    assert proc.returncode == 2 and "cannot write to output folder" in proc.stderr


def test_a_used_output_folder_is_refused_and_a_failed_run_leaves_nothing(tmp_path):
    """A second run into a run folder would mix its episode files with the old ones and replace the old
    summary: refused unless --overwrite. A run that fails part-way removes the folder it made."""
    out = tmp_path / "used"
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}')
    proc = rollout("--critic", "oracle", "--size", "32", "--horizon", "5", "--out", str(out))
    assert proc.returncode == 2 and "exists and is not empty; pass --overwrite" in proc.stderr, proc.stderr[-1000:]
    assert [p.name for p in out.iterdir()] == ["summary.json"] and json.loads((out / "summary.json").read_text())
    site = tmp_path / "site"
    site.mkdir()
    (site / "boom_critic.py").write_text(
        "from primo_loop.critics.oracle import OracleCritic\n"
        "class Crash(BaseException):  # past the wrapper's guard for critic errors, like a dying process\n"
        "    pass\n"
        "class Boom(OracleCritic):\n"
        "    calls = 0\n"
        "    def assess(self, queries):\n"
        "        Boom.calls += 1\n"
        "        if Boom.calls > 3:\n"
        "            raise Crash('critic process died')\n"
        "        return super().assess(queries)\n")
    fresh = tmp_path / "fresh" / "run"
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "rollout.py"), "--critic", "boom_critic:Boom",
                           "--critic-every", "5", "--size", "32", "--horizon", "10", "--episodes", "3", "--no-video",
                           "--out", str(fresh)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "Crash: critic process died" in proc.stderr, proc.stderr[-1000:]
    assert "episode 0:" in proc.stdout  # the first episode was written before the failure ...
    assert not (tmp_path / "fresh").exists()  # ... and removed with the folder the run made
    proc = rollout("--critic", "oracle", "--size", "32", "--horizon", "5", "--no-video", "--overwrite", "--out",
                   str(out))
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert sorted(p.name for p in out.iterdir()) == ["episode_000.jsonl", "summary.json"]


def test_injected_drop_is_stopped_by_the_critic(tmp_path):
    """Oracle critic in the loop: progress climbs, falls after the drop, and the critic ends the episode."""
    out = tmp_path / "drop"
    proc = rollout("--env", "Lift", "--critic", "oracle", "--inject-failure", "drop", "--size", "64",
                   "--horizon", "150", "--seed", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    ep = summary["episodes"][0]
    assert ep["ended_by"] in ("failure", "regression") and ep["termination_reason"] == ep["ended_by"]
    assert not ep["success"] and ep["critic_vs_oracle_mae"] == pytest.approx(0.0, abs=1e-6)
    assert ep["max_oracle_progress"] > 0.6 > ep["final_oracle_progress"]  # how far it got before the drop
    rows = [json.loads(line) for line in (out / "episode_000.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(len(rows)))
    progress = [r["critic_progress"] for r in rows if r["queried"]]
    peak = max(progress)
    assert peak > 0.6 and progress[-1] < peak - 0.3  # rose, then fell
    assert rows[-1]["terminated"] and not rows[-1]["truncated"] and rows[-1]["reason"] == ep["ended_by"]
    assert (out / "episode_000.mp4").stat().st_size > 1000
    assert "video:" in proc.stdout


def test_default_critic_scores_a_scripted_success(tmp_path):
    """No --critic: the embedded compact critic; a scripted Panda lift ends with progress near 100."""
    out = tmp_path / "lift"
    proc = rollout("--env", "Lift", "--size", "96", "--seed", "0", "--no-video", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["critic"] == "compact"
    ep = summary["episodes"][0]
    assert ep["success"] and ep["ended_by"] == "success_hold"
    assert ep["final_critic_progress"] > 0.85
    assert ep["critic_unreadable"] == 0 and ep["critic_queries"] >= 5


@pytest.mark.slow  # an end-to-end run (15-35 s); `make test-all` runs it
def test_a_trained_agent_runs_with_the_critic_in_the_loop(tmp_path, lift_agent):
    import envs
    from policies.sb3 import TrainedPolicy

    run = lift_agent
    policy = TrainedPolicy(run)
    env = policy.wrap_env(envs.make_env("Lift", "Panda", horizon=20))
    assert env.action_space.shape == (4,)  # the position actions it was trained with
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(policy.act(obs), policy.model.predict(obs, deterministic=True)[0])
    env.close()

    out = tmp_path / "watch"
    proc = rollout("--env", "Lift", "--policy", str(run), "--policy-steps", "20", "--critic", "oracle",
                   "--horizon", "15", "--size", "64", "--no-video", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"].endswith("model_20_steps.zip") and summary["episodes"][0]["steps"] == 15
    for args, expect in ((["--robot", "Sawyer"], "trained with --robot Panda"),
                         (["--policy-steps", "30"], "no checkpoint at 30 steps"),
                         (["--inject-failure", "drop"], "needs --policy scripted")):
        proc = rollout("--env", "Lift", "--policy", str(run), *args, "--out", str(tmp_path / "x"))
        assert proc.returncode == 2 and expect in proc.stderr, proc.stderr[-1000:]
    proc = rollout("--policy", str(tmp_path / "no_such_run"), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "a run folder of scripts/train_agent.py" in proc.stderr
    proc = rollout("--policy-steps", "20", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "needs --policy RUN_FOLDER" in proc.stderr

