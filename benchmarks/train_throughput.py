#!/usr/bin/env python
"""Training throughput (env steps/s) with the critic in the loop against without, as a ratio from one run.

    python benchmarks/train_throughput.py --env Lift --algo ppo --steps 4096 --workers 2 --critic compact

Both variants train the same agent for the same number of env steps in this one process, one after the other:
``--reward sparse`` (no critic) and ``--reward critic`` (frames rendered every ``--critic-every`` steps, the
critic batched over all workers in the main process). Steps/s include the learner's updates and worker start-up
is excluded (it is measured from the first learning step). Results go to ``--results`` as markdown + JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from primo_loop.cli import parse_options, run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Lift")
    p.add_argument("--algo", default="ppo")
    p.add_argument("--steps", type=int, default=4096)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--critic", default="compact")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--critic-every", type=int, default=10)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="algorithm override")
    p.add_argument("--results", default="docs/results/train_throughput")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from policies.sb3 import AgentConfig, train
    from primo_loop.tracker import TrackerConfig
    from primo_loop.cli import writable_dir

    results = writable_dir(args.results)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reward in ("warmup", "sparse", "critic"):  # the warm-up pays one-time costs (imports, JIT)
            critic = reward == "critic"
            cfg = AgentConfig(env=args.env, algo=args.algo, reward="sparse" if reward == "warmup" else reward,
                              critic=args.critic if critic else None,
                              critic_options=parse_options(args.critic_option) if critic else {},
                              tracker=TrackerConfig(critic_every=args.critic_every) if critic else TrackerConfig(),
                              steps=args.steps // 4 if reward == "warmup" else args.steps,
                              workers=args.workers, horizon=args.horizon, eval_every=0,
                              checkpoint_every=0, algo_kwargs=parse_options(args.set), out=f"{tmp}/{reward}",
                              progress_bar=False)
            summary = train(cfg)
            rates[reward] = summary["steps_per_s"]
            print(f"{reward}: {summary['steps_per_s']} env steps/s ({summary['timesteps']} steps, "
                  f"{summary['wall_s']} s)", flush=True)
    ratio = rates["critic"] / rates["sparse"]
    command = "python benchmarks/train_throughput.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = (f"# Training throughput with the critic in the loop\n\n"
          f"| variant | env steps/s |\n|---|---|\n| no critic (sparse reward) | {rates['sparse']} |\n"
          f"| critic `{args.critic}` every {args.critic_every} steps | {rates['critic']} |\n\n"
          f"**ratio (critic / no critic): {ratio:.2f}**\n\n{args.algo.upper()}, {args.env}, {args.workers} workers, "
          f"{args.steps} steps each, on {platform.processor() or platform.machine()} "
          f"({__import__('os').cpu_count()} cores, shared).\n\nCommand:\n\n```\n{command}\n```\n")
    (results / "train_throughput.md").write_text(md)
    (results / "train_throughput.json").write_text(json.dumps({"steps_per_s": rates, "ratio": ratio,
                                                                "command": command}, indent=2))
    print(f"ratio (critic / no critic): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    run(main)
