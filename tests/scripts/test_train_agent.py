"""scripts/train_agent.py through a subprocess: bad input, a tiny run, a kill mid-run, --resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_agent.py"
FAKE = "primo_loop.testing.fakes:ProgressEnv"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}


def cmd(out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--env", FAKE, "--algo", "sac", "--reward", "oracle", "--steps", str(steps),
            "--workers", "1", "--horizon", "30", "--eval-every", "100", "--eval-episodes", "2",
            "--checkpoint-every", "100", "--set", "learning_starts=50", "--set", "batch_size=32",
            "--no-progress", "--out", str(out), *extra]


def test_bad_input_exits_2(tmp_path):
    r = subprocess.run(cmd(tmp_path / "x", 100, "--algo", "dqn"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and "Unknown algorithm 'dqn'" in r.stderr


def test_kill_then_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(cmd(out, 100_000), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = out / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpts.glob("model_replay_buffer_*_steps.pkl")):
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait(timeout=30)
    assert list(ckpts.glob("model_*_steps.zip")), proc.stderr.read().decode()[-2000:]
    r = subprocess.run(cmd(out, 400, "--resume"), capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "done.json").read_text())
    assert summary["timesteps"] == 400 and summary["resumed_from"] >= 100
    rows = (out / "eval.csv").read_text().splitlines()[1:]
    steps = [int(row.split(",")[0]) for row in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 400


@pytest.mark.slow
def test_lift_smoke(tmp_path):
    """The real task with the oracle reward, 2 workers, a few hundred steps."""
    out = tmp_path / "lift"
    r = subprocess.run([sys.executable, str(SCRIPT), "--env", "Lift", "--reward", "oracle", "--steps", "400",
                        "--workers", "2", "--horizon", "50", "--eval-every", "400", "--eval-episodes", "1",
                        "--checkpoint-every", "200", "--set", "learning_starts=100", "--no-progress", "--out",
                        str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "done.json").read_text())["critic"]["queries"] > 0
