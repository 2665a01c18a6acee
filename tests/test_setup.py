"""The default test run also runs the package's doctests (the examples in its docstrings)."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_run_collects_the_package_doctests():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pytest_cfg = cfg["tool:pytest"]
    assert "--doctest-modules" in pytest_cfg["addopts"].split()
    assert {"tests", "primo_loop", "envs", "policies"} <= set(pytest_cfg["testpaths"].split())
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                          "primo_loop/tracker.py", "primo_loop/wrappers/common.py"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert "primo_loop/tracker.py::primo_loop.tracker.failure_streak" in out.stdout, out.stdout[-2000:]
    assert "primo_loop/wrappers/common.py::primo_loop.wrappers.common.check_verdict" in out.stdout
