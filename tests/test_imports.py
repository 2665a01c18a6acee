"""Importing the core is cheap: no torch, transformers, robosuite or SB3 until a backend needs them."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "robosuite", "stable_baselines3", "trl")


def test_core_imports_load_no_heavy_dependency():
    code = ("import sys\n"
            "import primo_loop, primo_loop.critics, primo_loop.tracker, primo_loop.wrappers, primo_loop.prompting\n"
            "import primo_loop.metrics, primo_loop.rollout, primo_loop.cli, envs, policies\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"
