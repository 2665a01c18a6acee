"""Every README snippet runs: the Python blocks are executed, the README's critic is used from a script by its
``module:Factory`` path, and every ``python scripts/...`` command line is parsed by that script's own parser."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
PYTHON_BLOCKS = [code for lang, code in BLOCKS if lang == "python"]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.setdefault("MUJOCO_GL", "egl")
    return env


def script_commands() -> list[list[str]]:
    """``python scripts/X.py ARGS`` lines of the README's bash blocks (continuations joined, comments dropped)."""
    commands = []
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i, w in enumerate(words):
                if w.startswith("scripts/") and w.endswith(".py") and i > 0 and words[i - 1].endswith("python"):
                    commands.append(words[i:])
    return commands


def test_the_readme_has_snippets_to_check():
    assert len(PYTHON_BLOCKS) >= 4
    assert len(script_commands()) >= 8


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index, tmp_path):
    code = PYTHON_BLOCKS[index]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"README python block {index} failed:\n{code}\n{out.stderr[-3000:]}"


_PARSE_ONLY = r"""
import argparse, runpy, sys

class Parsed(Exception):
    pass

_parse_args = argparse.ArgumentParser.parse_args

def parse_args(self, args=None, namespace=None):
    _parse_args(self, args, namespace)
    raise Parsed

argparse.ArgumentParser.parse_args = parse_args
failed = []
for argv in COMMANDS:
    sys.argv = list(argv)
    try:
        runpy.run_path(argv[0], run_name="__main__")
        failed.append((argv, "ran without parsing its arguments"))
    except Parsed:
        pass
    except SystemExit as exc:
        failed.append((argv, f"exit {exc.code}"))
print(repr(failed))
sys.exit(1 if failed else 0)
"""


def test_every_readme_command_line_parses():
    commands = script_commands()
    code = _PARSE_ONLY.replace("COMMANDS", json.dumps(commands))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"README command lines that do not parse: {out.stdout}\n{out.stderr[-3000:]}"


def test_the_readme_critic_runs_from_a_script_by_its_path(tmp_path):
    critic_block = next(code for code in PYTHON_BLOCKS if "def assess" in code)
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "critics.py").write_text(critic_block)
    env = _env()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    out_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "rollout.py"), "--env", "Lift", "--episodes", "1",
                          "--horizon", "20", "--size", "64", "--critic", "mypkg.critics:BrightnessCritic", "--no-video",
                          "--out", str(out_dir)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (out_dir / "episode_000.jsonl").read_text().splitlines()]
    progress = [r["critic_progress"] for r in rows if r["queried"]]
    assert progress and all(0.0 < p < 1.0 for p in progress)
