"""scripts/build_default_critic.sh: it stops before any work when a collection flag or a task it needs is
missing, and QUICK=1 runs the whole pipeline end to end, resumably (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_default_critic.sh"


def _run(tmp_path, timeout=60, **env):
    full = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(ROOT), "OUT": str(tmp_path / "build"),
            "REPORT": str(tmp_path / "report"), **env}
    return subprocess.run(["bash", str(SCRIPT)], env=full, capture_output=True, text=True, timeout=timeout)


def test_a_missing_collect_flag_stops_the_build_before_any_work(tmp_path):
    fake = tmp_path / "python"  # answers collect.py --help with today's options, without --cameras
    fake.write_text("#!/usr/bin/env bash\n"
                    "if [ \"$2\" = --help ]; then\n"
                    "  echo 'usage: collect.py [--camera CAMERA] [--appearance A] [--supported-only]'; exit 0\n"
                    "fi\n"
                    "echo \"unexpected call: $*\" >&2; exit 9\n")
    fake.chmod(0o755)
    r = _run(tmp_path, PY=str(fake), CAMERAS="agentview robot0_eye_in_hand", APPEARANCE="train")
    assert r.returncode == 2, r.stderr
    assert "scripts/collect.py has no --cameras option" in r.stderr and "CAMERAS" in r.stderr
    assert "unexpected call" not in r.stderr
    assert not (tmp_path / "build").exists()


def test_an_unknown_task_stops_the_build_before_any_work(tmp_path):
    r = _run(tmp_path, TASKS="Lift Bogus", CAMERAS="", APPEARANCE="")
    assert r.returncode == 2, r.stderr
    assert "unknown task(s) ['Bogus']" in r.stderr
    assert not (tmp_path / "build").exists()


def test_a_task_no_training_arm_can_do_stops_the_build_and_others_are_named(tmp_path):
    r = _run(tmp_path, TASKS="Lift NutAssemblySquare", ARMS="IIWA UR5e", CAMERAS="", APPEARANCE="")
    assert r.returncode == 2, r.stderr
    assert "no training arm can do ['NutAssemblySquare']" in r.stderr
    assert not (tmp_path / "build").exists()
    # a task some training arm can do goes ahead with that arm (the build is stopped at its first stage here)
    fake = tmp_path / "python"
    fake.write_text(f"#!/usr/bin/env bash\n[ \"$2\" = --help ] || [ \"$1\" = - ] && exec {sys.executable} \"$@\"\n"
                    "echo \"stage: $*\" >&2; exit 9\n")
    fake.chmod(0o755)
    r = _run(tmp_path, PY=str(fake), TASKS="Lift NutAssemblySquare", ARMS="Panda IIWA", CAMERAS="", APPEARANCE="")
    assert "no episodes of IIWA on NutAssemblySquare" in r.stderr, r.stderr
    assert "stage: scripts/collect.py --env Lift NutAssemblySquare --robot Panda IIWA --supported-only" in r.stderr


def test_each_stage_records_its_wall_and_cpu_seconds(tmp_path):
    fake = tmp_path / "python"  # collection burns about a second of CPU in a grandchild; training fails
    fake.write_text(f"#!/usr/bin/env bash\n"
                    f"[ \"$2\" = --help ] || [ \"$1\" = - ] || [ \"$1\" = -c ] && exec {sys.executable} \"$@\"\n"
                    f"[ \"$1\" = scripts/collect.py ] && {{ bash -c '{sys.executable} -c \"sum(range(20000000))\"'; "
                    f"exit 0; }}\n"
                    "echo \"stage: $*\" >&2; exit 9\n")
    fake.chmod(0o755)
    r = _run(tmp_path, PY=str(fake), TASKS="Lift", ARMS="Panda", CAMERAS="", APPEARANCE="")
    assert r.returncode == 9 and "stage: scripts/train_critic.py" in r.stderr, r.stderr
    lines = (tmp_path / "build" / "build_times.tsv").read_text().splitlines()
    assert lines[0].startswith("# run started") and len(lines) == 2
    name, wall, cpu = lines[1].split("\t")
    assert name == "collect_train" and int(wall) >= 0 and 0.1 < float(cpu) <= float(wall) + 2


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 10 minutes on a quiet 2-core machine, longer under load
def test_quick_mode_end_to_end_and_a_rerun_skips_finished_stages(tmp_path):
    r = _run(tmp_path, timeout=1800, QUICK="1", WORKERS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    build, report = tmp_path / "build", tmp_path / "report"
    for model in ("model", "model_humanoid", "loto_Stack"):
        assert (build / model / "weights.pt").is_file() and (build / model / ".built").is_file()
    for folder in ("model/in_domain", "model/unseen_robots", "model/humanoid", "model_humanoid/humanoid",
                   "shipped/in_domain", "loto/Stack"):
        assert (build / "eval" / folder / "report.json").is_file(), folder
    rep = json.loads((report / "report.json").read_text())
    groups = {row["group"] for row in rep["rows"]}
    assert groups == {"in-domain", "unseen robots", "unseen appearance", "leave one task out", "inference",
                      "humanoid"}
    latency = [row for row in rep["rows"] if row["group"] == "inference"][0]
    assert latency["figure"] > 0 and latency["shipped"] > 0
    assert "QUICK build" in (report / "report.md").read_text()
    lines = (build / "build_times.tsv").read_text().splitlines()
    stages = [line.split("\t")[0] for line in lines if not line.startswith("#")]
    assert lines[0].startswith("# run started") and stages[:2] == ["collect_train", "train"]
    assert all(len(line.split("\t")) == 3 for line in lines[1:])  # name, wall s, CPU s
    assert stages[-1] == "report"

    again = _run(tmp_path, timeout=1800, QUICK="1", WORKERS="1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"skip: {build}/model is trained" in again.stderr
    assert f"skip: {build}/eval/model/in_domain is scored" in again.stderr
