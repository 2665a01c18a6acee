"""primo_loop.eval_shards: evaluation sharded over Ray tasks reports what the local evaluation reports, and a
server-backed critic's concurrency limit is shared between the workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from primo_loop.data.primo_format import export_primo
from primo_loop.data.synthetic import make_dataset
from primo_loop.errors import DatasetError
from primo_loop.eval_shards import concurrency_budget, ray_scorer, shards
from primo_loop.evaluate import EvalConfig, evaluate
from primo_loop.types import CriticVerdict

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
MEASURED = {"latency_ms", "wall_s"}  # what may differ between two runs of one evaluation


class ServerCritic:
    """Stands in for the remote backend: no model, a ``max_concurrency`` budget; answers the oracle's progress
    and logs the budget each instance was given into ``log_dir``."""

    name = "server"

    def __init__(self, log_dir: str, max_concurrency: int = 4):
        Path(log_dir, f"{os.getpid()}-{id(self)}").write_text(str(max_concurrency))

    def assess(self, queries):
        return [CriticVerdict(progress=q.privileged["progress"], failure_prob=float(q.privileged["failed"]),
                              latency_s=0.001) for q in queries]


class BrokenCritic:
    name = "broken"

    def assess(self, queries):
        raise RuntimeError("the server answered 500")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in MEASURED}
    return obj


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    make_dataset(root / "ds", n_episodes=7, seed=3, image_size=32, n_steps=40, frame_every=5)
    export_primo(root / "ds", root / "p" / "recs.jsonl", per_episode=3)
    return [root / "ds", root / "p" / "recs.jsonl"]


def test_shards_cover_every_episode_once_in_order(sources):
    cfg = EvalConfig()
    parts = shards(sources[0], cfg, 3)
    assert [len(p) for p in parts] == [3, 3, 1]
    assert [e for p in parts for e in p] == sorted(e for p in parts for e in p)
    assert sum(map(len, shards(sources[1], cfg, 2))) == 7  # record groups: one per episode


def test_sharded_oracle_evaluation_equals_the_local_one(local_ray, sources):
    from primo_loop.critics import make_critic

    cfg = EvalConfig(split_by="source")
    local = evaluate(make_critic("oracle"), sources, None, cfg, critic_name="oracle")
    sharded = evaluate(make_critic("oracle"), sources, None, cfg, critic_name="oracle",
                       scorer=ray_scorer("oracle", {}, local_ray, shard_episodes=2))
    assert _strip(sharded) == _strip(local)
    assert sharded["splits"]["recs.jsonl"]["queries"] == 21 and sharded["splits"]["ds"]["episodes"] == 7


def test_workers_share_the_servers_concurrency_limit(local_ray, sources, tmp_path):
    name = "tests.test_eval_shards:ServerCritic"  # importable by the workers: the checkout is on their path
    log = tmp_path / "log"
    log.mkdir()
    opts = {"log_dir": str(log), "max_concurrency": 4}
    assert concurrency_budget(name, opts) == 4 and concurrency_budget(name, {"log_dir": "x"}) == 4
    assert concurrency_budget("oracle", {}) is None
    cfg = EvalConfig(split_by="none")
    report = evaluate(ServerCritic(str(tmp_path)), [sources[0]], None, cfg, critic_name="server",
                      scorer=ray_scorer(name, opts, local_ray, shard_episodes=2))  # 4 shards, 4 requests
    assert report["splits"]["all"]["progress"]["mae"] == 0.0
    given = [int(p.read_text()) for p in log.iterdir()]
    assert given and set(given) == {1}  # 4 tasks in flight at most, 1 request each: 4 in all, never 4 each


def test_a_failed_shard_fails_the_evaluation(local_ray, sources):
    scorer = ray_scorer("tests.test_eval_shards:BrokenCritic", {}, local_ray, shard_episodes=4)
    with pytest.raises(DatasetError, match=r"2 of 2 evaluation shards of .* failed .*the server answered 500"):
        evaluate(BrokenCritic(), [sources[0]], None, EvalConfig(), scorer=scorer)


@pytest.mark.slow  # an end-to-end run (15-35 s); `make test-all` runs it
def test_eval_script_with_ray_reports_what_the_local_run_reports(local_ray, sources, tmp_path):
    import ray

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    base = [sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--critic", "oracle", "--data",
            *map(str, sources), "--split-by", "source", "--no-progress"]
    local = subprocess.run([*base, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True,
                           timeout=120)
    assert local.returncode == 0, local.stderr
    on_ray = subprocess.run([*base, "--out", str(tmp_path / "b"), "--ray", ray.get_runtime_context().gcs_address,
                             "--ray-shard-episodes", "3"], env=env, capture_output=True, text=True, timeout=180)
    assert on_ray.returncode == 0, on_ray.stderr
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in "ab")
    a.pop("command"), b.pop("command")
    assert _strip(a) == _strip(b)
