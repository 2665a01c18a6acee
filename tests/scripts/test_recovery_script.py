"""scripts/recovery.py: the recovery experiment's command line (the runner is benchmarks/recovery.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "recovery.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}


def test_report_only_on_a_folder_without_episodes_is_one_line_and_writes_nothing(tmp_path):
    for out in (tmp_path / "missing", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        r = subprocess.run([sys.executable, str(SCRIPT), "--critic", "oracle", "--out", str(out), "--report-only"],
                           capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "no episodes of these conditions" in r.stderr, r.stderr
        assert not out.exists() or not any(out.iterdir())  # no blank report
