#!/usr/bin/env python
"""Compact-critic speed on the CPU, side by side with the env it scores.

    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/compact_critic.py --env Lift --out docs/results
    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/compact_critic.py --cameras agentview robot0_eye_in_hand

Measures, in one run and on one machine: critic latency per query at batch 1 and batch 8 (frames as the
tracker sends them: 8-frame clip + anchors, rendered at the env's size), the env's step time without a frame
and with one rendered frame, and prints the critic's cost as a fraction of the env's step time (per query, and
amortised per step at the tracker's default cadence of one query every 10 steps).

With two or more ``--cameras`` the frames tile their views and the critic timed is a randomly initialised one of
the checkpoint's architecture reading those views (speed only: its answers mean nothing); ``--stem`` and
``--channels`` likewise time a random-init critic of that CNN (e.g. ``--stem patch --channels 24 48 64``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Lift")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--checkpoint", default=None, help="compact checkpoint (default: the embedded one)")
    p.add_argument("--image-size", type=int, default=128, help="size the env renders (the tracker's frames)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--critic-every", type=int, default=10)
    p.add_argument("--no-env", action="store_true", help="critic only (no robosuite)")
    p.add_argument("--cameras", nargs="+", default=None,
                   help="cameras tiled in each frame; with 2+, a random-init critic with these views is timed")
    p.add_argument("--stem", default=None, help="time a random-init critic with this first conv layer (conv, patch)")
    p.add_argument("--channels", type=int, nargs="+", default=None, help="... and these conv channels")
    p.add_argument("--out", default=None, help="folder for compact_critic.json")
    args = p.parse_args()

    import torch

    from primo_loop.critics import make_critic
    from primo_loop.types import CriticQuery

    torch.set_num_threads(args.threads)
    opts = {} if args.checkpoint is None else {"checkpoint": args.checkpoint}
    critic = make_critic("compact", **opts)
    views = tuple(args.cameras) if args.cameras and len(args.cameras) > 1 else ()
    arch = {k: v for k, v in (("views", views), ("stem", args.stem),
                                ("channels", tuple(args.channels or ()))) if v}
    if arch:
        from benchmarks.critic_architectures import random_init_critic

        critic = random_init_critic(critic.config, **arch)
    result: dict = {"machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                    "checkpoint": str(critic.checkpoint), "image_size_in": args.image_size,
                    "critic_image_size": critic.config.image_size, "views": list(views) or None,
                    "stem": critic.config.stem, "channels": list(critic.config.channels),
                    "random_init": bool(arch)}

    env = None
    if not args.no_env:
        import envs

        extra = {"cameras": tuple(args.cameras)} if args.cameras else {}
        env = envs.make_env(args.env, args.robot, image_size=args.image_size, **extra)
        env.reset(seed=0)
        frames = [env.render_frame()]
        for _ in range(30):
            env.step(np.zeros(env.action_space.shape, np.float32))
            frames.append(env.render_frame())
        instruction = env.instruction
        frames = np.stack(frames)
    else:
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (31, args.image_size, args.image_size * max(1, len(views)), 3), dtype=np.uint8)
        instruction = "pick up the cube and lift it"

    def query(i: int) -> CriticQuery:
        clip = frames[np.linspace(0, 10 + i, 8).astype(int)]
        return CriticQuery(instruction=instruction, initial=frames[0], clip=clip, current=clip[-1], step=10 + i,
                           views=views)

    for b in (1, 8):
        qs = [query(i) for i in range(b)]
        ts = _time(lambda: critic.assess(qs), args.repeats)
        result[f"critic_ms_per_query_batch{b}"] = 1000 * statistics.median(ts) / b
    if env is not None:
        a = np.zeros(env.action_space.shape, np.float32)
        result["env_step_ms"] = 1000 * statistics.median(_time(lambda: env.step(a), args.repeats * 3))
        result["env_render_ms"] = 1000 * statistics.median(_time(env.render_frame, args.repeats))
        step, c8 = result["env_step_ms"], result["critic_ms_per_query_batch8"]
        result["critic_per_query_over_env_step"] = c8 / step
        result["critic_per_query_over_env_step_with_frame"] = c8 / (step + result["env_render_ms"])
        result[f"critic_amortised_over_env_step_every{args.critic_every}"] = c8 / args.critic_every / step
    lines = [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in result.items()]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compact_critic.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
