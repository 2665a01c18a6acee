"""The critic registry: registered names, ``package.module:Factory`` import paths, typed options, and every
script that takes ``--critic`` accepting a critic of the user's own (a module on PYTHONPATH)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from primo_loop.critics import available_critics, check_critic, make_critic, register_critic
from primo_loop.errors import ConfigError, UnknownNameError

ROOT = Path(__file__).resolve().parents[2]

# A ten-line critic of a user's own: progress grows with the step, on the 0-1 scale.
USER_CRITIC = textwrap.dedent('''
    from primo_loop.types import CriticVerdict


    class StepCritic:
        name = "step"

        def __init__(self, scale: float = 100.0):
            self.scale = scale

        def assess(self, queries):
            return [CriticVerdict(progress=min(1.0, q.step / self.scale), failure_prob=0.0, latency_s=0.0)
                    for q in queries]
''')


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "mycritics"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "step.py").write_text(USER_CRITIC)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield tmp_path / "site"
    for name in [m for m in sys.modules if m.startswith("mycritics")]:
        del sys.modules[name]


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1",
            "MUJOCO_GL": "egl"}


def test_import_path_builds_the_users_critic_with_typed_options(user_pkg):
    critic = make_critic("mycritics.step:StepCritic", scale=10)
    assert type(critic).__name__ == "StepCritic" and critic.scale == 10
    assert check_critic("mycritics.step:StepCritic") == "mycritics.step:StepCritic"
    with pytest.raises(ConfigError, match=r"`scale` to be a number \(float\), actually: 'abc'"):
        make_critic("mycritics.step:StepCritic", scale="abc")


def test_bad_import_paths_are_one_clear_error(user_pkg):
    with pytest.raises(ConfigError, match="cannot import module 'nopkg.mod'.*PYTHONPATH"):
        make_critic("nopkg.mod:Critic")
    with pytest.raises(ConfigError, match="no callable 'StepCritc'; did you mean mycritics.step:StepCritic"):
        make_critic("mycritics.step:StepCritc")
    with pytest.raises(ConfigError, match="package.module:Factory"):
        make_critic("mycritics.step:")
    with pytest.raises(UnknownNameError, match="Did you mean 'oracle'") as exc:
        make_critic("orcle")
    assert "valid: cascade, compact, oracle, primo, remote" in str(exc.value)


def test_register_critic_makes_a_name(user_pkg, monkeypatch):
    from primo_loop import critics

    monkeypatch.setattr(critics, "_REGISTRY", dict(critics._REGISTRY))
    register_critic("step", "mycritics.step:StepCritic")
    assert "step" in available_critics() and make_critic("step", scale=5.0).scale == 5.0
    with pytest.raises(ConfigError, match="package.module:Factory"):
        register_critic("bad", "mycritics.step.StepCritic")


def test_oracle_options_are_typed_and_named():
    with pytest.raises(ConfigError, match=r"critic option `noise_std` to be a number \(float\), actually: 'abc'"):
        make_critic("oracle", noise_std="abc")
    assert make_critic("oracle", noise_std=0).noise_std == 0.0
    with pytest.raises(UnknownNameError, match="Unknown option of critic 'oracle' 'noise'; valid: noise_std, seed. "
                                               "Did you mean 'noise_std'"):
        make_critic("oracle", noise=0.1)


def _videos(tmp_path: Path) -> Path:
    import numpy as np

    from primo_loop.data.media import write_video

    src = tmp_path / "videos"
    src.mkdir(parents=True)
    write_video(src / "clip.mp4", np.zeros((12, 32, 32, 3), np.uint8), fps=10)
    (src / "clip.json").write_text(json.dumps({"instruction": "lift the cup", "progress": [0.1 * i for i in range(12)]}))
    return src


def test_eval_critic_takes_an_import_path(user_pkg, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--critic", "mycritics.step:StepCritic",
                        "--critic-option", "scale=8", "--videos", str(_videos(tmp_path)), "--critic-every", "4",
                        "--size", "32", "--out", str(out)], capture_output=True, text=True, env=_env(user_pkg),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "videos" / "videos.json").read_text())
    assert report["videos"][0]["pred"] == pytest.approx([0.0, 50.0, 100.0])  # the user's critic answered
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--critic", "mycritics.step:Nope",
                        "--videos", str(_videos(tmp_path / "b")), "--out", str(tmp_path / "out2")],
                       capture_output=True, text=True, env=_env(user_pkg), timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no callable 'Nope'" in r.stderr, r.stderr


def test_serve_critic_refuses_a_bad_import_path_in_one_line(user_pkg):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "serve_critic.py"), "--critic", "nopkg:Critic"],
                       capture_output=True, text=True, env=_env(user_pkg), timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot import module 'nopkg'" in r.stderr


@pytest.mark.slow
def test_rollout_takes_an_import_path(user_pkg, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "rollout.py"), "--env", "Lift",
                        "--critic", "mycritics.step:StepCritic", "--critic-option", "scale=50", "--size", "32",
                        "--horizon", "30", "--no-video", "--tracker-option", "terminate=false", "--out", str(out)],
                       capture_output=True, text=True, env=_env(user_pkg), cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["critic"] == "mycritics.step:StepCritic"
    rows = [json.loads(line) for line in (out / "episode_000.jsonl").read_text().splitlines()]
    assert [r["critic_progress"] for r in rows if r["queried"]][:3] == pytest.approx([0.0, 0.2, 0.4])
