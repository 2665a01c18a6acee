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
            "--checkpoint-every", "100", "--sb3.learning-starts", "50", "--sb3.batch-size", "32",
            "--no-progress-bar", "--out", str(out), *extra]


def test_bad_input_exits_2(tmp_path):
    r = subprocess.run(cmd(tmp_path / "x", 100, "--algo", "dqn"), capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and "argument --algo: invalid choice: 'dqn'" in r.stderr


@pytest.mark.parametrize("extra, message", [
    # a value of the wrong type: one line naming the option, the value and the type expected
    (["--tracker.failure-threshold", "abc"], "argument --tracker.failure-threshold: expected a number, got 'abc'"),
    (["--steps", "1e9x"], "argument --steps: expected an integer, got '1e9x'"),
    # the duplicate routes are gone: each setting has one name
    (["--critic-every", "5"], "unrecognized arguments: --critic-every 5"),
    (["--set", "learning_starts=5"], "unrecognized arguments: --set learning_starts=5"),
    (["--tracker-option", "critic_every=5"], "unrecognized arguments: --tracker-option critic_every=5"),
    # a critic that would shape nothing
    (["--critic", "compact"], "--critic compact has no effect with --reward oracle"),
])
def test_bad_values_are_one_line_and_exit_2(tmp_path, extra, message):
    r = subprocess.run(cmd(tmp_path / "x", 100, *extra), capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_help_shows_every_default():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "--tracker.critic-every INTEGER Query the critic every N env steps" in text
    assert "--refresh.every INTEGER env steps between refreshes (0: refresh off) (default: 0)" in text
    # one entry per option (the text from one "  --name" to the next): each shows its default, but --help and
    # the required --out
    entries = [" ".join(e.split()) for e in r.stdout.split("options:", 1)[1].split("\n  --")[1:]]
    assert len(entries) > 60
    missing = [e.split()[0] for e in entries if "(default:" not in e and e.split()[0] not in ("out", "help")]
    assert not missing


def test_an_existing_run_folder_is_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    r = subprocess.run(cmd(out, 100), capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and "is not empty: pass --resume" in r.stderr and r.stderr.count("\n") == 1
    assert (out / "mine.txt").read_text() == "x"


@pytest.mark.slow  # an end-to-end run (15-35 s); `make test-all` runs it
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
                        "--checkpoint-every", "200", "--sb3.learning-starts", "100", "--no-progress-bar", "--out",
                        str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "done.json").read_text())["critic"]["queries"] > 0
