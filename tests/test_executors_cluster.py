"""Collection on a simulated two-node Ray cluster (ray.cluster_utils.Cluster) survives losing a node."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from primo_loop.data.collect import CollectConfig, collect, plan_episodes
from primo_loop.data.dataset import EpisodeDataset, episodes_dir, list_episode_ids
from primo_loop.executors import RayOptions

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_collection_completes_when_a_node_is_removed_mid_run(tmp_path):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # a local Ray of another test module
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    doomed = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        n = 12
        plan = plan_episodes(["SynthLift"], ["SynthBot"], n, seed=5, failure_rate=0.5, noise=0.1,
                             modes_for_task=lambda t: ["drop"])
        cfg = CollectConfig(synthetic=True, horizon=60, step_delay=0.02)  # ~1 s an episode
        out = tmp_path / "ds"
        removed = threading.Event()

        def remove_when_started() -> None:
            t0 = time.time()
            while len(list_episode_ids(out)) < 3 and time.time() - t0 < 120:
                time.sleep(0.05)
            cluster.remove_node(doomed)  # kills its raylet and its workers, mid-episode
            removed.set()

        killer = threading.Thread(target=remove_when_started, daemon=True)
        killer.start()
        summary = collect(plan, out, cfg, ray=RayOptions("auto", max_retries=3))
        killer.join(60)
        assert removed.is_set()
        assert not summary["errors"] and summary["episodes_on_disk"] == n
        assert summary["task_retries"] >= 1  # the removed node held running episodes: they were resubmitted
        assert list_episode_ids(out) == [s.episode_id for s in plan]
        assert not [p for p in episodes_dir(out).iterdir() if p.name.startswith(".")]
        ds = EpisodeDataset(out)
        assert len(ds) == n and not ds.skipped
        for spec in plan:  # each episode is the one planned (failure mode, noise)
            ep = ds.load(spec.episode_id, load_frames=False)
            assert (ep.meta["failure"], ep.meta["noise"], ep.meta["seed"]) == (spec.failure, spec.noise, spec.seed)
    finally:
        ray.shutdown()
        cluster.shutdown()
