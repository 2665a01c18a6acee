"""scripts/sim2real.py end to end on the synthetic scene: collect, zero-shot, fine-tune, compare."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--dim", "32", "--layers", "1", "--heads", "2", "--image-size", "32", "--channels", "8", "16"]


def py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT)


def test_needs_base_data(tmp_path):
    r = py("scripts/sim2real.py", "--out", str(tmp_path))
    assert r.returncode == 2 and "--base-data" in r.stderr


@pytest.mark.slow
def test_synthetic_end_to_end(tmp_path):
    base, ckpt, out = tmp_path / "base", tmp_path / "ckpt", tmp_path / "out"
    assert py("scripts/collect.py", "--env", "Lift", "--robot", "Panda", "--episodes", "6", "--synthetic",
              "--out", str(base), "--no-progress").returncode == 0
    assert py("scripts/train_critic.py", "compact", "--data", str(base), "--out", str(ckpt), "--epochs", "1",
              "--no-progress", *TINY).returncode == 0
    r = py("scripts/sim2real.py", "--synthetic", "--base-data", str(base), "--checkpoint", str(ckpt),
           "--train-episodes", "3", "--eval-episodes", "4", "--epochs", "1", *[f"--train-arg={a}" for a in TINY],
           "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((out / "sim2real.json").read_text())
    assert result["zero_shot"]["episodes"] == 4 == result["finetuned"]["episodes"]
    assert str(out / "data" / "humanoid_train") in result["trainer_argv"]
    text = (out / "sim2real.md").read_text()
    assert "| MAE (0-100) |" in text and "fine-tuning = training from scratch" in text


def test_the_report_says_how_the_critic_was_tuned():
    from benchmarks.sim2real import report_markdown

    split = {"episodes": 4, "progress": {"mae": 10.0}}
    result = {"config": {"task": "Lift", "robot": "GR1ArmsOnly", "train_episodes": 3, "eval_episodes": 4,
                         "train_args": ["--epochs=1", "--init=default"]}, "zero_shot": split, "finetuned": split}
    assert "fine-tuning = training from default's weights" in report_markdown(result)
    result["config"]["train_args"] = ["--init", "ckpt"]
    assert "training from ckpt's weights" in report_markdown(result)
