"""primo_loop.executors: collection as Ray tasks on a local 2-CPU Ray (started once per session) gives the local
pool's episodes, resumes a killed run, and resubmits (and counts) a task whose worker died."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from primo_loop.data.collect import CollectConfig, collect, plan_episodes
from primo_loop.data.dataset import episodes_dir, list_episode_ids, read_episode
from primo_loop.data.synthetic import synthetic_env, synthetic_policy
from primo_loop.errors import ConfigError
from primo_loop.executors import RayOptions, check_shared_folder, refuse_unshared, run_ray

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
CFG = CollectConfig(synthetic=True, horizon=40)
TIMING = {"collect_s"}  # the only meta field allowed to differ between two collections of one plan


def synth_plan(n: int, seed: int = 5):
    return plan_episodes(["SynthLift"], ["SynthBot"], n, seed=seed, failure_rate=0.5, noise=0.1,
                         modes_for_task=lambda t: ["drop"])


@pytest.fixture(autouse=True)
def by_value(local_ray):
    # this module's helpers travel to the Ray workers by value (the tests folder is no package they import)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _episodes(root: Path) -> dict[str, tuple[dict, dict, np.ndarray]]:
    out = {}
    for eid in list_episode_ids(root):
        ep = read_episode(episodes_dir(root) / eid)
        meta = {k: v for k, v in ep.meta.items() if k not in TIMING}
        out[eid] = (meta, {k: np.asarray(v) for k, v in ep.table.items()}, np.asarray(ep.frames))
    return out


def test_ray_collects_the_same_episodes_and_labels_as_the_local_pool(local_ray, tmp_path):
    plan = synth_plan(6)
    pool = collect(plan, tmp_path / "pool", CFG, workers=1)
    on_ray = collect(plan, tmp_path / "ray", CFG, ray=local_ray)
    assert pool["written"] == on_ray["written"] == 6 and not on_ray["errors"]
    assert on_ray["executor"] == "ray:auto" and on_ray["task_retries"] == 0
    a, b = _episodes(tmp_path / "pool"), _episodes(tmp_path / "ray")
    assert sorted(a) == sorted(b) == [s.episode_id for s in plan]
    for eid in a:
        assert a[eid][0] == b[eid][0], eid  # meta: failure, noise, outcome, failure step, ...
        assert a[eid][1].keys() == b[eid][1].keys()
        for k in a[eid][1]:
            np.testing.assert_array_equal(a[eid][1][k], b[eid][1][k], err_msg=f"{eid} {k}")
        np.testing.assert_array_equal(a[eid][2], b[eid][2])
    assert json.loads((tmp_path / "ray" / "index.json").read_text())["n_episodes"] == 6
    assert not list((tmp_path / "ray").glob(".ray-shared-*"))  # the shared-folder marker is removed


def test_ray_resumes_a_partial_run_without_rewriting(local_ray, tmp_path):
    plan = synth_plan(6)
    first = collect(plan[:3], tmp_path, CFG, ray=local_ray)
    assert first["written"] == 3
    before = {e: (episodes_dir(tmp_path) / e / "frames.npz").stat().st_mtime_ns for e in list_episode_ids(tmp_path)}
    again = collect(plan, tmp_path, CFG, ray=local_ray)
    assert again["already_there"] == 3 and again["written"] == 3 and again["episodes_on_disk"] == 6
    assert list_episode_ids(tmp_path) == [s.episode_id for s in plan]
    assert all((episodes_dir(tmp_path) / e / "frames.npz").stat().st_mtime_ns == t for e, t in before.items())


def test_a_ray_worker_builds_new_envs_for_a_run_with_other_settings(local_ray, tmp_path):
    """Ray reuses worker processes across runs: an env built for one run's settings must not serve the next."""
    plan = synth_plan(2)
    collect(plan, tmp_path / "long", CFG, ray=local_ray)
    short = CollectConfig(synthetic=True, horizon=12, render_size=96)
    collect(plan, tmp_path / "short", short, ray=local_ray)
    collect(plan, tmp_path / "here", short, workers=0)
    a, b = _episodes(tmp_path / "short"), _episodes(tmp_path / "here")
    for eid in b:
        assert a[eid][0] == b[eid][0] and a[eid][0]["n_steps"] <= 12
        np.testing.assert_array_equal(a[eid][2], b[eid][2])


def crash_once_policy(marker_dir: str, env, spec, cfg):
    """Policy factory whose worker process dies (as on a lost node) the first time it meets seed 6."""
    marker = Path(marker_dir) / f"crashed-{spec.seed}"
    if spec.seed == 6 and not marker.exists():
        marker.write_text("1")
        os._exit(1)
    return synthetic_policy(env, spec, cfg)


def raise_policy(env, spec, cfg):
    if spec.seed == 6:
        raise ValueError("a bug in this episode's policy")
    return synthetic_policy(env, spec, cfg)


def test_a_task_whose_worker_dies_is_resubmitted_and_counted(local_ray, tmp_path):
    plan = synth_plan(4)
    policy = functools.partial(crash_once_policy, str(tmp_path))
    summary = collect(plan, tmp_path / "ds", CFG, ray=local_ray, make_env=synthetic_env, make_policy=policy)
    assert (tmp_path / "crashed-6").exists()  # the worker did die once
    assert summary["task_retries"] == 1 and not summary["errors"]
    assert summary["written"] == 4 and list_episode_ids(tmp_path / "ds") == [s.episode_id for s in plan]


def test_an_error_of_the_task_itself_is_reported_not_retried(local_ray, tmp_path):
    summary = collect(synth_plan(3), tmp_path, CFG, ray=local_ray, make_env=synthetic_env, make_policy=raise_policy)
    assert summary["task_retries"] == 0 and summary["written"] == 2
    assert summary["errors"] == {"SynthLift-SynthBot-s000006": "ValueError: a bug in this episode's policy"}


def _die(_):
    os._exit(1)


def test_a_task_lost_more_than_max_retries_times_is_an_error(local_ray):
    errors, results = [], []
    retries = run_ray(_die, ["a"], RayOptions("auto", max_retries=1), on_result=lambda i, r: results.append(r),
                      on_error=lambda i, e: errors.append(type(e).__name__))
    assert retries == 1 and not results and errors == ["WorkerCrashedError"]


def test_the_shared_folder_is_checked_on_every_node(local_ray, tmp_path):
    assert check_shared_folder(tmp_path, local_ray) == 1  # one node here: it sees the folder
    with pytest.raises(ConfigError, match=r"not seen by 1 of 2 nodes: 10.0.0.2 \(b\); mount it at the same path"):
        refuse_unshared(tmp_path, {"10.0.0.1 (a)": True, "10.0.0.2 (b)": False})


@pytest.mark.slow  # an end-to-end run (15-35 s); `make test-all` runs it
def test_script_collect_ray_resumes_after_the_driver_is_killed(local_ray, tmp_path):
    """scripts/collect.py --ray ADDRESS: kill the whole driver mid-run, run it again: nothing lost or doubled."""
    out, n = tmp_path / "ds", 8
    address = ray.get_runtime_context().gcs_address

    def cmd(delay: float) -> list[str]:
        return [sys.executable, str(ROOT / "scripts" / "collect.py"), "--synthetic", "--env", "SynthLift", "--robot",
                "SynthBot", "--episodes", str(n), "--seed", "5", "--out", str(out), "--no-progress", "--horizon", "60",
                "--step-delay", str(delay), "--ray", address]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd(0.02), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        t0 = time.time()
        while len(list_episode_ids(out)) < 2:
            assert proc.poll() is None, f"collection ended early: {proc.communicate()}"
            assert time.time() - t0 < 90, "collection made no progress"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = set(list_episode_ids(out))
    assert 2 <= len(done_before) < n
    res = subprocess.run(cmd(0.0), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["already_there"] >= len(done_before) and summary["episodes_on_disk"] == n
    assert summary["already_there"] + summary["written"] == n  # nothing written twice
    assert list_episode_ids(out) == [f"SynthLift-SynthBot-s{5 + i:06d}" for i in range(n)]
    assert not [p for p in episodes_dir(out).iterdir() if p.name.startswith(".")]  # no leftovers


def test_ray_options_are_checked():
    with pytest.raises(ConfigError, match="Expected a Ray address"):
        RayOptions("")
    with pytest.raises(ConfigError, match="num_cpus"):
        RayOptions("auto", num_cpus=-1)


def test_an_address_nothing_listens_on_is_refused_at_once():
    from primo_loop.executors import _check_reachable

    with pytest.raises(ConfigError, match=r"Expected a Ray head node at 127.0.0.1:1, actually: .*ray start --head"):
        _check_reachable("127.0.0.1:1")
    _check_reachable("auto")  # Ray's own names and client addresses are left to Ray


def test_importing_the_executors_loads_no_ray():
    code = "import sys, primo_loop, primo_loop.executors, primo_loop.data.collect; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"
