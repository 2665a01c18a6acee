"""``--critic-on-error hold|raise`` on every script that runs a critic, and what a failed remote query does."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, required", [("rollout", []), ("eval_critic", ["--out", "x"]), ("recovery", [])])
def test_scripts_take_critic_on_error_hold_by_default(name, required, capsys):
    parser = _script(name).build_parser()
    assert parser.parse_args(required).critic_on_error == "hold"
    assert parser.parse_args([*required, "--critic-on-error", "raise"]).critic_on_error == "raise"
    with pytest.raises(SystemExit):
        parser.parse_args([*required, "--critic-on-error", "ignore"])
    assert "invalid choice: 'ignore'" in capsys.readouterr().err


def test_train_agent_config_has_the_field():
    from policies.sb3 import AgentConfig

    assert AgentConfig(out="x").critic_on_error == "hold"
    assert AgentConfig(out="x", critic_on_error="raise").critic_on_error == "raise"


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _rollout(tmp_path: Path, on_error: str) -> subprocess.CompletedProcess:
    args = ["--env", "Lift", "--critic", "remote", "--critic-option", f"base_url={_dead_url()}",
            "--critic-option", "check_server=false", "--critic-option", "max_retries=0", "--critic-every", "5",
            "--horizon", "12", "--size", "64", "--no-video", "--stop-after-success", "-1",
            "--out", str(tmp_path / on_error), "--critic-on-error", on_error]
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "rollout.py"), *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_rollout_with_an_unreachable_remote_critic_holds_or_raises(tmp_path):
    held = _rollout(tmp_path, "hold")
    assert held.returncode == 0, held.stderr[-2000:]
    assert "MAE=n/a (over 0 read) unreadable=0 failed=3 of 3 queries" in held.stdout
    raised = _rollout(tmp_path, "raise")
    assert raised.returncode != 0 and "Traceback" not in raised.stderr
    assert "failed 1 of 1 queries" in raised.stderr
