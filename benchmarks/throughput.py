#!/usr/bin/env python
"""Steps/s of raw robosuite Lift (no camera) against our env with the oracle critic in the loop.

    python benchmarks/throughput.py [--steps 600] [--size 84] [--every 1 5 10 20]

All variants run in this one process, one after another, with the same random actions; the result is
printed as ratios to raw robosuite. Frames are rendered only when the critic's clip or a query needs
one (every N steps here), so the cost of the loop is mostly rendering: ~60 ms per frame on a CPU.
Results are written to docs/results/throughput.md with the command that produced them.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def raw_robosuite(steps: int, seed: int) -> float:
    import robosuite as suite
    from robosuite.controllers import load_composite_controller_config

    env = suite.make("Lift", robots="Panda", controller_configs=load_composite_controller_config(
        controller="BASIC", robot="Panda"), has_renderer=False, has_offscreen_renderer=False,
        use_camera_obs=False, control_freq=20, horizon=200, hard_reset=False, seed=seed)
    rng = np.random.default_rng(seed)
    lo, hi = env.action_spec
    env.reset()
    for _ in range(20):  # warm-up (numba JIT, caches)
        env.step(rng.uniform(lo, hi))
    env.reset()
    t0, n = time.perf_counter(), 0
    while n < steps:
        _, _, done, _ = env.step(rng.uniform(lo, hi))
        n += 1
        if done:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return n / dt


def ours(steps: int, seed: int, every: int | None, size: int) -> tuple[float, int]:
    import envs
    from primo_loop.critics.oracle import OracleCritic
    from primo_loop.wrappers import CriticInTheLoop

    env = envs.make_env("Lift", "Panda", image_size=size, horizon=200)
    if every is not None:
        env = CriticInTheLoop(env, critic=OracleCritic(), critic_every=every)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(20):
        env.step(env.action_space.sample())
    env.reset(seed=seed)
    t0, n = time.perf_counter(), 0
    while n < steps:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += 1
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    frames = env.tracker.stats.frames_rendered if every is not None else 0
    env.close()
    del rng
    return n / dt, frames


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--size", type=int, default=84, help="critic frame size (px)")
    p.add_argument("--every", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "throughput.md"))
    args = p.parse_args()

    raw = raw_robosuite(args.steps, args.seed)
    rows = [("raw robosuite Lift, no camera", raw, 1.0, 0)]
    sps, _ = ours(args.steps, args.seed, None, args.size)
    rows.append(("primo/Lift-v0, no critic", sps, sps / raw, 0))
    for n in args.every:
        sps, frames = ours(args.steps, args.seed, n, args.size)
        rows.append((f"primo/Lift-v0 + oracle critic, critic_every={n}", sps, sps / raw, frames))
    cmd = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
    lines = ["# Env throughput: critic in the loop vs raw robosuite\n",
             f"`{cmd.strip()}` ({args.steps} random-action steps per variant, {args.size} px agentview frames, "
             f"{platform.processor() or platform.machine()}, MUJOCO_GL=egl, one process, variants run back to back)\n",
             "| variant | steps/s | ratio to raw | frames rendered |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {s:.1f} | {r:.2f} | {f} |" for name, s, r, f in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        [{"variant": n, "steps_per_s": s, "ratio": r, "frames": f} for n, s, r, f in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
