#!/usr/bin/env python
"""Compact-critic architectures side by side: CPU time per query at batch 8, interleaved in one run.

    OMP_NUM_THREADS=1 python benchmarks/critic_architectures.py --out docs/results/critic_architectures

Each candidate is a randomly initialised critic (speed does not depend on the weights) scoring the same kind of
batch: 8 queries of 8 distinct frames each (as 8 envs send them), frames of ``--render-size`` pixels per view.
Rounds alternate the candidates so that a slow spell of the machine touches all of them; the figure is the
median over rounds, and each is also given as a ratio to the first candidate (the shipped architecture).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TWO = ("agentview", "robot0_eye_in_hand")
#: name -> CompactConfig fields changed from the shipped checkpoint's architecture
CANDIDATES = {
    "shipped (conv stem, 24-48-64-96), 1 view": {},
    "conv stem, 24-48-64-96, 2 views": {"views": TWO},
    "patch stem, 16-32-64, 1 view": {"stem": "patch", "channels": (16, 32, 64)},
    "patch stem, 16-32-64, 2 views": {"views": TWO, "stem": "patch", "channels": (16, 32, 64)},
    "patch stem, 24-48-64, 2 views": {"views": TWO, "stem": "patch", "channels": (24, 48, 64)},
    "patch stem, 32-64-96, 2 views": {"views": TWO, "stem": "patch", "channels": (32, 64, 96)},
}


def random_init_critic(base: Any, **change: Any) -> Any:
    """A compact critic of ``base`` (a ``CompactConfig``) with ``change`` applied and freshly initialised weights,
    saved to a temporary folder (timing needs the architecture, not trained weights)."""
    from primo_loop.critics import make_critic
    from primo_loop.critics.compact import build_model, save_checkpoint

    cfg = dataclasses.replace(base, **change)
    folder = save_checkpoint(tempfile.mkdtemp(prefix="arch_"), cfg, build_model(cfg).state_dict())
    return make_critic("compact", checkpoint=str(folder))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--render-size", type=int, default=128, help="pixels per view of the frames sent (default 128)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=15, help="timed batches per candidate and round")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="folder for critic_architectures.json and .md")
    args = p.parse_args(argv)

    import torch

    from primo_loop.critics import make_critic
    from primo_loop.types import CriticQuery

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shipped = make_critic("compact").config
    critics = {name: random_init_critic(shipped, **change) for name, change in CANDIDATES.items()}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {name: [] for name in critics}
    for _ in range(args.rounds):
        for name, critic in critics.items():
            views = critic.config.views
            side = args.render_size
            frames = rng.integers(0, 255, (8 * args.batch, side, side * max(1, len(views)), 3), dtype=np.uint8)
            queries = [CriticQuery("pick up the cube and lift it", frames[8 * i], frames[8 * i:8 * i + 8],
                                   frames[8 * i + 7], step=10, views=views) for i in range(args.batch)]
            critic.assess(queries)  # warm-up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                critic.assess(queries)
                times[name].append((time.perf_counter() - t0) / args.batch * 1000)
    first = next(iter(times))
    rows = []
    for name, ts in times.items():
        med = float(np.median(ts))
        rows.append({"candidate": name, "ms_per_query": round(med, 3),
                     "p25": round(float(np.percentile(ts, 25)), 3), "p75": round(float(np.percentile(ts, 75)), 3),
                     "ratio_to_shipped": round(med / float(np.median(times[first])), 3),
                     "config": {k: list(v) if isinstance(v, tuple) else v for k, v in CANDIDATES[name].items()}})
    result = {"machine": platform.processor() or platform.machine(), "torch_threads": args.threads,
              "batch": args.batch, "render_size": args.render_size, "rounds": args.rounds,
              "repeats": args.repeats, "rows": rows}
    lines = [f"Compact critic, CPU time per query at batch {args.batch} ({args.threads} thread, frames of "
             f"{args.render_size} px per view, random-init weights, median of {args.rounds} interleaved rounds x "
             f"{args.repeats} batches)", "",
             "| architecture | ms/query | p25-p75 | x shipped |", "|---|---|---|---|"]
    lines += [f"| {r['candidate']} | {r['ms_per_query']:.2f} | {r['p25']:.2f}-{r['p75']:.2f} | "
              f"{r['ratio_to_shipped']:.2f} |" for r in rows]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "critic_architectures.json").write_text(json.dumps(result, indent=1))
        (out / "critic_architectures.md").write_text("\n".join(lines) + "\n\nCommand: `OMP_NUM_THREADS=1 python "
                                                     "benchmarks/critic_architectures.py " + " ".join(
                                                         argv if argv is not None else sys.argv[1:]) + "`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
