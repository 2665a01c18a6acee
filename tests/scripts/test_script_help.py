"""Every script's --help shows the defaults (a newcomer should not have to read the source for them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, option, default", [
    (["rollout.py"], "--critic-every", "(default: 10)"),
    (["rollout.py"], "--robot", "default: Panda"),
    (["eval_critic.py"], "--batch-size", "default: 16"),
    (["export_primo.py"], "--per-episode", "(default: 8)"),
    (["serve_critic.py"], "--max-batch", "(default: 8)"),
    (["train_critic.py", "compact"], "--lr", "default: 0.002"),
    (["train_critic.py", "compact"], "--epochs", "default: 20"),
])
def test_help_shows_defaults(script, option, default):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script[0]), *script[1:], "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split("options:", 1)[1].split())  # argparse wraps lines
    start = text.index(option + " ")
    nxt = text.find(" --", start + len(option) + 1)
    assert default in text[start:nxt if nxt > 0 else None], text[start:start + 300]
