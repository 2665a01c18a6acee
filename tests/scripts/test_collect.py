"""scripts/collect.py: parallel collection that survives kills (a real SIGKILL of a worker, then of the whole
run) without losing or duplicating an episode."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from policies.specs import check_policy_spec, collect_env, collect_policy
from primo_loop.data.collect import CollectConfig, collect, plan_episodes, rollout
from primo_loop.data.dataset import EpisodeDataset, episodes_dir, list_episode_ids, read_episode
from primo_loop.errors import ConfigError, DatasetError, UnknownNameError

ROBOSUITE = {"make_env": collect_env, "make_policy": collect_policy}  # the factories scripts/collect.py passes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "collect.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _cmd(out: Path, episodes: int, workers: int = 2, delay: float = 0.01, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(SCRIPT), "--synthetic", "--env", "SynthLift", "--robot", "SynthBot", "--episodes",
            str(episodes), "--seed", "5", "--workers", str(workers), "--out", str(out), "--no-progress",
            "--horizon", "60", "--step-delay", str(delay), *extra]


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:  # no pgrep: read /proc
        out = "\n".join(p.name for p in Path("/proc").iterdir() if p.name.isdigit()
                        and (p / "stat").exists() and (p / "stat").read_text().split()[3] == str(pid))
    return [int(x) for x in out.split()]


def _wait_for_episodes(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.time()
    while len(list_episode_ids(out)) < n:
        assert proc.poll() is None, f"collection ended early: {proc.communicate()}"
        assert time.time() - t0 < timeout, "collection made no progress"
        time.sleep(0.05)


def _check_complete(out: Path, n: int) -> None:
    ids = list_episode_ids(out)
    want = [f"SynthLift-SynthBot-s{5 + i:06d}" for i in range(n)]
    assert ids == want  # nothing lost, nothing extra
    assert not [p for p in episodes_dir(out).iterdir() if p.name.startswith(".")]  # no leftovers
    index = json.loads((out / "index.json").read_text())
    assert sorted(e["episode_id"] for e in index["episodes"]) == want
    ds = EpisodeDataset(out)
    for ep in ds:  # every episode is whole
        assert ep.frames.shape[1:] == (64, 64, 3) and ep.frame_steps[-1] == ep.n_steps


def test_resume_after_worker_kill_and_run_kill(tmp_path):
    out = tmp_path / "ds"
    n = 10
    proc = subprocess.Popen(_cmd(out, n), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait_for_episodes(out, 2, proc)
        # 1) kill one worker mid-episode: the run starts a new pool and goes on. With forkserver the workers
        # are the children of the forkserver, itself a child of the run (beside the resource tracker).
        workers = [w for c in _children(proc.pid) for w in _children(c)]
        assert workers, "no worker processes found"
        os.kill(workers[0], signal.SIGKILL)
        _wait_for_episodes(out, 5, proc)
        # 2) kill the whole run (parent, forkserver, workers) at once
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert "a collection worker died" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = set(list_episode_ids(out))
    assert 5 <= len(done_before) < n
    before = {eid: (episodes_dir(out) / eid / "frames.npz").stat().st_mtime_ns for eid in done_before}
    res = subprocess.run(_cmd(out, n, delay=0.0), env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["already_there"] == len(done_before) and summary["written"] == n - len(done_before)
    _check_complete(out, n)
    # the episodes written before the kill were kept, not rewritten
    assert all((episodes_dir(out) / eid / "frames.npz").stat().st_mtime_ns == t for eid, t in before.items())


def test_resume_refuses_a_different_plan(tmp_path):
    out = tmp_path / "ds"
    cfg = CollectConfig(synthetic=True, horizon=40)
    plan = plan_episodes(["SynthLift"], ["SynthBot"], 3, seed=0, failure_rate=0.5, modes_for_task=lambda t: ["drop"])
    assert collect(plan, out, cfg, workers=0)["written"] == 3
    again = collect(plan_episodes(["SynthLift"], ["SynthBot"], 4, seed=0, failure_rate=0.5,
                                  modes_for_task=lambda t: ["drop"]), out, cfg, workers=0)
    assert again["already_there"] == 3 and again["written"] == 1
    other = plan_episodes(["SynthLift"], ["SynthBot"], 3, seed=0, failure_rate=1.0, modes_for_task=lambda t: ["drop"])
    with pytest.raises(DatasetError, match="collected differently"):
        collect(other, out, cfg, workers=0)


def test_plan_is_deterministic_and_respects_the_rate():
    kw = dict(modes_for_task=lambda t: ["drop", "freeze"])
    a = plan_episodes(["T"], ["R1", "R2"], 200, seed=3, failure_rate=0.5, noise=0.2, **kw)
    assert a == plan_episodes(["T"], ["R1", "R2"], 200, seed=3, failure_rate=0.5, noise=0.2, **kw)
    rate = np.mean([s.failure is not None for s in a])
    assert 0.4 < rate < 0.6 and {s.failure for s in a} == {None, "drop", "freeze"}
    assert all(0 <= s.noise <= 0.2 for s in a) and len({s.episode_id for s in a}) == 400


def test_rollout_stops_after_success_and_failure():
    cfg = CollectConfig(synthetic=True, horizon=100, post_success_steps=5, post_failure_steps=7, frame_every=4)
    ok = rollout(plan_episodes(["SynthLift"], ["SynthBot"], 1, failure_rate=0.0, noise=0.0)[0], cfg)
    first = int(np.argmax(ok.table["success"]))
    assert ok.meta["outcome"] == "success" and ok.n_steps == first + 5 and ok.frame_steps[-1] == ok.n_steps
    bad = rollout(plan_episodes(["SynthLift"], ["SynthBot"], 1, failure_rate=1.0, noise=0.0,
                                modes_for_task=lambda t: ["drop"])[0], cfg)
    assert bad.meta["outcome"] == "failure" and bad.n_steps == bad.meta["failure_step"] + 7
    assert bad.meta["failure_injected_at"] == bad.meta["failure_step"]


@pytest.mark.slow  # an end-to-end run (15-35 s); `make test-all` runs it
def test_collect_the_states_a_trained_agent_visits(tmp_path, lift_agent):
    """A run folder as the policy: the agent acts in its own action space (4-D position actions), noise-free
    episodes repeat exactly, the episode's noise perturbs them, and frames carry privileged progress labels."""
    plan = plan_episodes(["Lift"], ["Panda"], 2, seed=3, failure_rate=0.0, noise=0.0)
    cfg = CollectConfig(policy=str(lift_agent), horizon=15, frame_every=5, render_size=64)
    ep = rollout(plan[0], cfg, **ROBOSUITE)
    assert ep.meta["policy"] == str(lift_agent) and ep.meta["policy_model"].endswith("final_model.zip")
    actions = np.asarray(ep.table["action"])
    assert actions.shape == (16, 4) and ep.frames.shape == (4, 64, 64, 3)  # row 0 is the reset
    np.testing.assert_array_equal(actions, np.asarray(rollout(plan[0], cfg, **ROBOSUITE).table["action"]))
    noisy = rollout(dataclasses.replace(plan[0], noise=0.3), cfg, **ROBOSUITE)
    noisy_actions = np.asarray(noisy.table["action"])
    assert not np.allclose(noisy_actions, actions) and np.abs(noisy_actions).max() <= 1.0
    assert 0.0 <= ep.table["progress"].min() <= ep.table["progress"].max() <= 1.0

    out = tmp_path / "agent_ds"
    assert collect(plan, out, cfg, workers=0, **ROBOSUITE)["written"] == 2
    early = CollectConfig(policy=str(lift_agent), policy_steps=20, horizon=15, frame_every=5, render_size=64)
    with pytest.raises(DatasetError, match="policy"):  # same seeds, another policy: not a resume
        collect(plan, out, CollectConfig(horizon=15, frame_every=5, render_size=64), workers=0, **ROBOSUITE)
    assert rollout(plan[0], early, **ROBOSUITE).meta["policy_model"].endswith("model_20_steps.zip")
    with pytest.raises(ConfigError, match="trained on Lift with Panda"):
        rollout(plan_episodes(["Lift"], ["Sawyer"], 1, failure_rate=0.0)[0], cfg, **ROBOSUITE)
    with pytest.raises(ConfigError, match="run folder"):
        check_policy_spec(str(tmp_path / "no_run"))
    res = subprocess.run([sys.executable, str(SCRIPT), "--policy", str(lift_agent), "--policy-steps", "30",
                          "--failure-rate", "0", "--out", str(tmp_path / "x")], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "no checkpoint at 30 steps" in res.stderr, res.stderr[-1000:]
    res = subprocess.run([sys.executable, str(SCRIPT), "--policy", str(lift_agent), "--robot", "Sawyer",
                          "--failure-rate", "0", "--out", str(tmp_path / "x")], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "pass --env Lift --robot Panda" in res.stderr, res.stderr[-1000:]
    with pytest.raises(ConfigError, match="--policy-steps needs --policy RUN_FOLDER"):
        check_policy_spec("scripted", steps=20)


@pytest.mark.slow
def test_collect_real_lift(tmp_path):
    """Two real Lift episodes through the script (robosuite rendering)."""
    pytest.importorskip("robosuite")
    out = tmp_path / "lift"
    res = subprocess.run([sys.executable, str(SCRIPT), "--env", "Lift", "--robot", "Panda", "--episodes", "2",
                          "--workers", "1", "--out", str(out), "--no-progress", "--horizon", "80"],
                         env={**ENV, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ep = read_episode(episodes_dir(out) / "Lift-Panda-s000000")
    assert ep.meta["instruction"] and ep.frames.shape[1:] == (64, 64, 3)
    assert 0.0 <= ep.table["progress"].min() <= ep.table["progress"].max() <= 1.0


# ------------------------------------------------------------------------------- bad inputs, one line each

def _synthetic(out: Path, *extra: str) -> list[str]:
    return ["--synthetic", "--env", "SynthLift", "--robot", "SynthBot", "--workers", "0", "--no-progress",
            "--out", str(out), *extra]


def test_counts_out_of_range_are_refused(load_script, tmp_path):
    main = load_script("scripts/collect.py").main
    with pytest.raises(ConfigError, match=r"Expected --episodes >= 1, actually: 0"):
        main(_synthetic(tmp_path / "a", "--episodes", "0"))
    with pytest.raises(ConfigError, match=r"Expected --workers >= 0, actually: -1"):
        main(_synthetic(tmp_path / "b", "--workers", "-1"))
    with pytest.raises(ConfigError, match=r"Expected `workers` to be an integer >= 0"):
        collect([], tmp_path / "c", CollectConfig(synthetic=True), workers=-1)
    res = subprocess.run([sys.executable, str(SCRIPT), *_synthetic(tmp_path / "d", "--episodes", "0")], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "--episodes >= 1" in res.stderr and not (tmp_path / "d").exists()


def test_policy_specs_are_checked_before_anything_is_built(load_script, tmp_path):
    main = load_script("scripts/collect.py").main
    with pytest.raises(ConfigError, match="--policy random injects no failures: pass --failure-rate 0"):
        main(["--env", "Lift", "--policy", "random", "--out", str(tmp_path / "a")])
    with pytest.raises(UnknownNameError, match="Did you mean 'scripted'"):
        main(["--env", "Lift", "--policy", "scriptd", "--failure-rate", "0", "--out", str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="policy='scripted' in the synthetic scene"):
        CollectConfig(synthetic=True, policy="random")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unknown_failure_modes_list_the_valid_ones(load_script, tmp_path):
    main = load_script("scripts/collect.py").main
    with pytest.raises(UnknownNameError, match=r"Unknown failure mode 'dorp'; valid: close_early, drop, freeze, "
                                               r"offset_grasp, push_away\. Did you mean 'drop'\?"):
        main(["--env", "Lift", "--failure-modes", "dorp", "--out", str(tmp_path / "x")])
    with pytest.raises(UnknownNameError, match=r"valid: drop\. Did you mean 'drop'"):
        main(_synthetic(tmp_path / "y", "--failure-modes", "dorp"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flag, before, after, message", [
    ("--horizon", "40", "50", "horizon: on disk 40, now 50"),
    ("--camera", "agentview", "frontview", "camera: on disk 'agentview', now 'frontview'"),
    ("--render-size", "64", "96", "render_size: on disk 64, now 96"),
    ("--render-profile", "fast", "default", "render_profile: on disk 'fast', now 'default'"),
    ("--post-success-steps", "5", "-1", "post_success_steps: on disk 5, now None"),
])
def test_a_resume_with_a_changed_setting_names_it(load_script, tmp_path, flag, before, after, message):
    main = load_script("scripts/collect.py").main
    out = tmp_path / "ds"
    base = _synthetic(out, "--episodes", "2", "--horizon", "40", "--render-size", "64")
    assert main([*base, flag, before]) == 0
    written = {eid: (episodes_dir(out) / eid / "meta.json").stat().st_mtime_ns for eid in list_episode_ids(out)}
    with pytest.raises(DatasetError, match=f"collected differently \\({message}\\); resume with the same options"):
        main([*base, "--episodes", "3", flag, after])
    assert {eid: (episodes_dir(out) / eid / "meta.json").stat().st_mtime_ns
            for eid in list_episode_ids(out)} == written  # nothing added, nothing rewritten
    assert main([*base, "--episodes", "3", flag, before]) == 0 and len(list_episode_ids(out)) == 3


def test_the_library_is_handed_its_env_and_policy(tmp_path):
    plan = plan_episodes(["Lift"], ["Panda"], 1, failure_rate=0.0)
    with pytest.raises(ConfigError, match="Expected `make_env` and `make_policy` factories"):
        collect(plan, tmp_path / "x", CollectConfig(), workers=0)
    with pytest.raises(ConfigError, match="Expected `modes_for_task`"):
        plan_episodes(["Lift"], ["Panda"], 1, failure_rate=0.5)
    seen = []

    def make_policy(env, spec, cfg):
        seen.append(spec.episode_id)
        return SyntheticPolicy(env, seed=spec.seed)

    from primo_loop.data.synthetic import SyntheticPolicy

    ep = rollout(plan_episodes(["SynthLift"], ["SynthBot"], 1, failure_rate=0.0)[0],
                 CollectConfig(synthetic=True, horizon=10), make_policy=make_policy)
    assert seen == ["SynthLift-SynthBot-s000000"] and ep.n_steps >= 1


def test_supported_only_skips_the_pairs_a_robot_cannot_do(load_script, tmp_path, monkeypatch, capsys):
    import primo_loop.data.collect as collect_module
    from primo_loop.errors import UnsupportedError

    main = load_script("scripts/collect.py").main
    planned = []

    def fake_collect(plan, out, cfg, **kw):  # what the script hands the library, without running robosuite
        planned.append(plan)
        return {"errors": 0}

    monkeypatch.setattr(collect_module, "collect", fake_collect)
    args = ["--env", "Lift", "NutAssemblySquare", "--robot", "Panda", "IIWA", "--episodes", "3", "--no-progress"]
    with pytest.raises(UnsupportedError, match="Robot 'IIWA' cannot do task 'NutAssemblySquare'"):
        main([*args, "--out", str(tmp_path / "a")])
    assert main([*args, "--supported-only", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err.count("skipped (--supported-only): IIWA on NutAssemblySquare") == 1
    (plan,) = planned
    assert sorted({(s.task, s.robot) for s in plan}) == [("Lift", "IIWA"), ("Lift", "Panda"),
                                                         ("NutAssemblySquare", "Panda")]
    # the pairs kept draw exactly what a run without the skipped pair draws
    assert main(["--env", "Lift", "--robot", "Panda", "IIWA", "--episodes", "3", "--no-progress",
                 "--out", str(tmp_path / "c")]) == 0
    assert [s for s in plan if s.task == "Lift"] == planned[1]
    with pytest.raises(UnsupportedError, match="Robot 'IIWA' cannot do task 'NutAssemblySquare'"):
        main(["--env", "NutAssemblySquare", "--robot", "IIWA", "UR5e", "--supported-only",
              "--out", str(tmp_path / "d")])


def test_the_summary_counts_the_cpu_seconds_of_the_written_episodes(tmp_path, monkeypatch):
    import itertools

    import primo_loop.data.collect as collect_module

    clock = itertools.count(0.0, 1.5)  # each episode: 1.5 CPU seconds between its two readings
    monkeypatch.setattr(collect_module.time, "process_time", lambda: next(clock))
    cfg = CollectConfig(synthetic=True, horizon=20, image_size=16, render_size=16)
    plan = plan_episodes(["SynthLift"], ["SynthBot"], 2, failure_rate=0.0)
    assert collect(plan, tmp_path / "d", cfg, workers=0)["cpu_s"] == 3.0
    assert collect(plan, tmp_path / "d", cfg, workers=0)["cpu_s"] == 0.0  # nothing written
