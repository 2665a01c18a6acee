#!/usr/bin/env python
"""Collection episodes/s: the local process pool against Ray on this machine, and on a simulated 2-node cluster.

    python benchmarks/collect_throughput.py --episodes 24 --workers 2 --repeats 2 \\
        --out docs/results/collect_throughput [--lift 6]

One process measures every variant on the same plan, taking turns (pool, Ray, pool, Ray, ...) so that other jobs
on a shared machine slow both alike; each collection goes into a fresh folder. The ratio Ray / pool is the
number that matters (target >= 0.9: Ray must not cost a user who stays on one machine); absolute rates depend
on the machine and its load. Variants:

- synthetic scene, no delay: the executor's own overhead per episode (the worst case for Ray);
- synthetic scene with ``--step-delay`` seconds a step (5 ms: Lift's physics step on our CPUs);
- ``--lift N``: real robosuite Lift episodes (scripted Panda, fast render profile), N per variant;
- the simulated cluster (``ray.cluster_utils.Cluster``: a head and a second node, ``--workers`` CPUs in all,
  all on this machine), synthetic with the step delay.

Ray's start-up (the local instance, or the cluster) is timed apart: it is paid once per command, not per episode.
Writes OUT/collect_throughput.json and .md with the command.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 0.9


def _rate(plan, cfg, root: Path, **kw) -> float:
    from primo_loop.data.collect import collect

    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    summary = collect(plan, root, cfg, **kw)
    dt = time.perf_counter() - t0
    if summary["errors"] or summary["written"] != len(plan):
        raise RuntimeError(f"collection incomplete: {summary['errors']}")
    return len(plan) / dt


def _variants(args) -> dict[str, tuple]:
    from primo_loop.data.collect import CollectConfig, plan_episodes

    synth = plan_episodes(["SynthLift"], ["SynthBot"], args.episodes, seed=0, failure_rate=0.5, noise=0.1,
                          modes_for_task=lambda t: ["drop"])
    out = {"synthetic": (synth, CollectConfig(synthetic=True, horizon=60), {}),
           f"synthetic, {1000 * args.step_delay:g} ms/step": (
               synth, CollectConfig(synthetic=True, horizon=60, step_delay=args.step_delay), {})}
    if args.lift:
        from policies.specs import collect_env, collect_policy, failure_modes

        lift = plan_episodes(["Lift"], ["Panda"], args.lift, seed=0, failure_rate=0.5, noise=0.1,
                             modes_for_task=failure_modes)
        out["Lift (robosuite)"] = (lift, CollectConfig(), {"make_env": collect_env, "make_policy": collect_policy})
    return out


def measure(args) -> dict:
    import ray

    from primo_loop.executors import RayOptions

    tmp = Path(tempfile.mkdtemp(prefix="collect_throughput_"))
    rows: dict[str, dict] = {}
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        start_local = time.perf_counter() - t0
        on_ray = RayOptions("auto")
        plan, cfg, _ = _variants(args)["synthetic"]
        cold = _rate(plan[:args.workers * 2], cfg, tmp / "cold", ray=on_ray)  # starts this job's Ray workers
        for name, (plan, cfg, factories) in _variants(args).items():
            pool, rayr = [], []
            for i in range(args.repeats):
                pool.append(_rate(plan, cfg, tmp / "pool", workers=args.workers, **factories))
                rayr.append(_rate(plan, cfg, tmp / "ray", ray=on_ray, **factories))
                print(f"{name} round {i}: pool {pool[-1]:.2f} ep/s, ray {rayr[-1]:.2f} ep/s", flush=True)
            rows[name] = {"episodes": len(plan), "pool_eps": pool, "ray_eps": rayr,
                          "ratio": statistics.mean(rayr) / statistics.mean(pool)}
        ray.shutdown()
        from primo_loop.data.collect import CollectConfig, plan_episodes
        from ray.cluster_utils import Cluster

        t0 = time.perf_counter()
        half = max(1, args.workers // 2)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": half, "include_dashboard": False})
        cluster.add_node(num_cpus=max(1, args.workers - half))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING", runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        start_cluster = time.perf_counter() - t0
        try:
            plan = plan_episodes(["SynthLift"], ["SynthBot"], args.episodes, seed=0, failure_rate=0.5, noise=0.1,
                                 modes_for_task=lambda t: ["drop"])
            cfg = CollectConfig(synthetic=True, horizon=60, step_delay=args.step_delay)
            rates = [_rate(plan, cfg, tmp / "cluster", ray=on_ray) for _ in range(args.repeats)]
            base = rows[f"synthetic, {1000 * args.step_delay:g} ms/step"]
            rows["2-node simulated cluster, synthetic with delay"] = {
                "episodes": len(plan), "pool_eps": base["pool_eps"], "ray_eps": rates,
                "ratio": statistics.mean(rates) / statistics.mean(base["pool_eps"])}
        finally:
            ray.shutdown()
            cluster.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "ray_start_s": {"local": round(start_local, 2), "cluster": round(start_cluster, 2)},
            "ray_cold_eps": {"episodes": args.workers * 2, "rate": cold},
            "workers": args.workers, "repeats": args.repeats, "target_ratio": TARGET, "machine": platform.node(),
            "cpus": __import__("os").cpu_count()}


def markdown(result: dict, command: str) -> str:
    lines = ["# Collection throughput: local pool vs Ray", "",
             f"{result['workers']} workers (pool processes / Ray CPUs), {result['repeats']} rounds taking turns, "
             f"mean episodes/s; ratio = Ray / pool (target >= {TARGET}). Machine: {result['cpus']} CPUs, shared "
             "with other jobs while this ran, so absolute rates move between runs; the ratio is from one run.", "",
             "| variant | episodes | pool ep/s | Ray ep/s | ratio |", "|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['episodes']} | {statistics.mean(r['pool_eps']):.2f} | "
                     f"{statistics.mean(r['ray_eps']):.2f} | {r['ratio']:.2f} |")
    cold = result["ray_cold_eps"]
    lines += ["", f"Ray start-up, paid once per command and not in the rates: `ray.init` of a local instance "
              f"{result['ray_start_s']['local']} s, the simulated cluster {result['ray_start_s']['cluster']} s; then "
              f"the job's first collection ({cold['episodes']} synthetic episodes, which starts the Ray worker "
              f"processes) ran at {cold['rate']:.2f} ep/s. The rates above are after it: every pool round starts "
              "its own processes (as each `scripts/collect.py` run does), while Ray's workers stay up for the job "
              "(envs are rebuilt every run in both). The cluster row compares the 2-node cluster (same machine, "
              "same CPUs in all; its first round includes starting its workers) with the local pool of the row "
              "with the step delay.", "", "```", command, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=24, help="synthetic episodes per collection")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="rounds of pool and Ray, taking turns")
    p.add_argument("--step-delay", type=float, default=0.005, help="seconds a synthetic step sleeps")
    p.add_argument("--lift", type=int, default=0, metavar="N", help="also N real Lift episodes per collection")
    p.add_argument("--out", default=None, help="results folder (collect_throughput.json and .md)")
    args = p.parse_args(argv)
    from primo_loop.outputs import write_text_atomic

    result = measure(args)
    command = "python benchmarks/collect_throughput.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result["command"] = command
    md = markdown(result, command)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "collect_throughput.json", json.dumps(result, indent=1))
        write_text_atomic(out / "collect_throughput.md", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
