"""Importing the core is cheap: no torch, transformers, robosuite or SB3 until a backend needs them."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "robosuite", "stable_baselines3", "trl")


def _heavy_after(code: str) -> str:
    code = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_core_imports_load_no_heavy_dependency():
    heavy = _heavy_after("import primo_loop, primo_loop.critics, primo_loop.tracker, primo_loop.wrappers\n"
                         "import primo_loop.prompting, primo_loop.metrics, primo_loop.rollout, primo_loop.cli\n"
                         "import primo_loop.data.collect, primo_loop.wrappers.common, envs, policies, policies.specs")
    assert heavy == "", f"heavy modules imported: {heavy}"


def test_the_gymnasium_wrapper_needs_no_sb3():
    heavy = _heavy_after("from primo_loop.wrappers import CriticInTheLoop, CriticCaller, privileged_from_info")
    assert heavy == "", f"heavy modules imported: {heavy}"


def test_every_public_wrapper_name_still_imports_from_the_package():
    out = subprocess.run([sys.executable, "-c",
                          "from primo_loop.wrappers import CriticInTheLoop, VecCriticInTheLoop, CriticCaller, "
                          "privileged_from_info\nprint(CriticInTheLoop.__module__, VecCriticInTheLoop.__module__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["primo_loop.wrappers.single", "primo_loop.wrappers.vector"]
