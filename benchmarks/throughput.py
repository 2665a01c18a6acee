#!/usr/bin/env python
"""Steps/s of raw robosuite Lift (no camera) against our env with the oracle critic in the loop, per render profile.

    python benchmarks/throughput.py [--steps 1200] [--chunk 100] [--size 84] [--every 1 5 10 20]
                                    [--profiles default fast] [--render-sizes 64 84 128 224]

All variants live in this one process, each stepping its own env with random actions, and take turns in chunks
of ``--chunk`` steps (raw robosuite included, the order rotating each turn), so a machine shared with other jobs
slows every variant alike and the ratios to raw robosuite hold where absolute speeds do not. Two ratios are
reported: wall clock, and process CPU time (all threads; blind to time spent waiting for a core, so the steadier
one on a busy machine).
Frames are rendered only when the critic's clip or a query needs one (every N steps here), so the cost of the
loop is mostly rendering. A second table gives milliseconds per frame for each render profile
(``envs/render.py``) at several sizes, with two reference points: the default scene with shadows, reflections
and skybox off but full meshes, and the collision geoms alone.
Results are written to docs/results/throughput.md (and .json) with the command that produced them; notes in
the markdown file below its marker are kept.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_page import write_results_page  # noqa: E402

TARGET_EVERY, TARGET_RATIO = 10, 0.85


class Variant:
    """One env stepped with random actions; wall-clock and process CPU time are summed over its chunks."""

    def __init__(self, name: str, env, step, profile: str | None = None, every: int | None = None):
        self.name, self.env, self.step, self.profile, self.every = name, env, step, profile, every
        self.wall = self.cpu = 0.0
        self.steps = 0

    def run(self, n: int) -> None:
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.step()
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c  # all threads of the process, llvmpipe's render threads included
        self.steps += n

    @property
    def frames(self) -> int:
        return self.env.tracker.stats.frames_rendered if self.every is not None else 0


def raw_robosuite(seed: int) -> Variant:
    import robosuite as suite
    from robosuite.controllers import load_composite_controller_config

    env = suite.make("Lift", robots="Panda", controller_configs=load_composite_controller_config(
        controller="BASIC", robot="Panda"), has_renderer=False, has_offscreen_renderer=False,
        use_camera_obs=False, control_freq=20, horizon=200, hard_reset=False, seed=seed)
    rng = np.random.default_rng(seed)
    lo, hi = env.action_spec

    def step():
        _, _, done, _ = env.step(rng.uniform(lo, hi))
        if done:
            env.reset()

    env.reset()
    for _ in range(20):  # warm-up (numba JIT, caches)
        step()
    env.reset()
    return Variant("raw robosuite Lift, no camera", env, step)


def ours(seed: int, every: int | None, size: int, profile: str) -> Variant:
    import envs
    from primo_loop.critics.oracle import OracleCritic
    from primo_loop.wrappers import CriticInTheLoop

    env = envs.make_env("Lift", "Panda", image_size=size, horizon=200, render_profile=profile)
    if every is not None:
        env = CriticInTheLoop(env, critic=OracleCritic(), critic_every=every)
    env.action_space.seed(seed)

    def step():
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()

    env.reset(seed=seed)
    for _ in range(20):  # warm-up, and the first frame (GL context, the fast profile's mesh simplification)
        step()
    env.reset(seed=seed)
    name = ("primo/Lift-v0, no critic" if every is None
            else f"primo/Lift-v0 + oracle critic, critic_every={every}, {profile} profile")
    return Variant(name, env, step, profile if every is not None else None, every)


def render_ms(sizes: list[int], repeats: int, seed: int) -> dict[str, dict[int, float]]:
    """Median ms per agentview frame of a Lift state mid-reach, per profile and size."""
    import envs
    from envs.render import PROFILES, RenderProfile, SceneRenderer

    env = envs.make_env("Lift", "Panda", horizon=200)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(10):
        env.step(rng.uniform(-1, 1, 7).astype(np.float32))
    sim = env.rs_env.sim
    model, data = sim.model._model, sim.data._data
    references = {
        "default scene, shadows/reflections/skybox off, full meshes":
            (RenderProfile("flags_off", shadows=False, reflections=False, skybox=False), (0, 1, 1, 0, 0, 0)),
        "collision geoms only, shadows/reflections/skybox off":
            (RenderProfile("collision", shadows=False, reflections=False, skybox=False), (1, 0, 0, 0, 0, 0)),
    }
    out: dict[str, dict[int, float]] = {}
    for name in list(PROFILES) + list(references):
        renderer = None
        if name in PROFILES:
            draw = lambda s, p=name: env.render_frame(size=s, profile=p)  # noqa: E731  (the env's own path)
        else:
            renderer = SceneRenderer(model, data, *references[name])
            draw = lambda s, r=renderer: r.render("agentview", s)  # noqa: E731
        out[name] = {}
        for s in sizes:
            draw(s)  # context and buffers for this size
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                draw(s)
                times.append(1000 * (time.perf_counter() - t0))
            out[name][s] = statistics.median(times)
        if renderer is not None:
            renderer.close()
    env.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200, help="random-action steps per variant")
    p.add_argument("--size", type=int, default=84, help="critic frame size (px)")
    p.add_argument("--every", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--profiles", nargs="+", default=["default", "fast"], help="render profiles (envs/render.py)")
    p.add_argument("--chunk", type=int, default=100, help="steps a variant runs before the next one takes over")
    p.add_argument("--render-sizes", type=int, nargs="+", default=[64, 84, 128, 224])
    p.add_argument("--render-repeats", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "throughput.md"))
    p.add_argument("--note", default="", help="a sentence for the report (e.g. what else ran on the machine)")
    args = p.parse_args()

    variants = [raw_robosuite(args.seed), ours(args.seed, None, args.size, args.profiles[0])]
    variants += [ours(args.seed, n, args.size, prof) for n in args.every for prof in args.profiles]
    for c in range(max(1, args.steps // args.chunk)):
        for v in variants[c % len(variants):] + variants[:c % len(variants)]:  # a new order each round
            v.run(args.chunk)
        print(f"chunk {c + 1}: " + ", ".join(f"{v.steps / v.wall:.0f}" for v in variants), flush=True)
    raw = variants[0]
    rows = [{"variant": v.name, "profile": v.profile, "critic_every": v.every, "steps": v.steps,
             "steps_per_s": v.steps / v.wall, "ratio": raw.wall / v.wall,
             "steps_per_cpu_s": v.steps / v.cpu, "cpu_ratio": raw.cpu / v.cpu, "frames": v.frames}
            for v in variants]
    for v in variants:
        v.env.close()
    ms = render_ms(args.render_sizes, args.render_repeats, args.seed)

    cmd = ("python benchmarks/throughput.py " + shlex.join(sys.argv[1:])).strip()
    lines = ["# Env throughput: critic in the loop vs raw robosuite, per render profile\n",
             f"`{cmd}` ({args.steps} random-action steps per variant in turns of {args.chunk}, {args.size} px "
             f"agentview frames, {platform.processor() or platform.machine()}, MUJOCO_GL=egl, one process; "
             "ratios to raw robosuite by wall clock and by process CPU time)"
             + (f" {args.note}" if args.note else "") + "\n",
             "| variant | steps/s | ratio to raw (wall) | steps per CPU s | ratio to raw (CPU) | frames rendered |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['steps_per_s']:.1f} | {r['ratio']:.2f} | {r['steps_per_cpu_s']:.1f} | "
              f"{r['cpu_ratio']:.2f} | {r['frames']} |" for r in rows]
    target = [r for r in rows if r["critic_every"] == TARGET_EVERY and r["profile"] == "fast"]
    if target:
        wall, cpu = target[0]["ratio"], target[0]["cpu_ratio"]
        verdict = lambda x: "met" if x >= TARGET_RATIO else "missed"  # noqa: E731
        lines.append(f"\nTarget (issue 33): at least {TARGET_RATIO:.2f}x raw at `critic_every={TARGET_EVERY}` with "
                     f"the fast profile: **{wall:.2f}x by wall clock ({verdict(wall)}), {cpu:.2f}x by CPU time "
                     f"({verdict(cpu)})**.")
    lines += ["\n## Milliseconds per frame\n",
              f"Lift/Panda `agentview` after 10 random steps, median of {args.render_repeats} frames; the two "
              "profiles through the env's `render_frame`, the reference rows through `envs.render.SceneRenderer`.\n",
              "| how the frame is drawn | " + " | ".join(f"{s} px" for s in args.render_sizes) + " |",
              "|---|" + "---:|" * len(args.render_sizes)]
    lines += [f"| {'profile `' + k + '`' if k in args.profiles or k in ('default', 'fast') else k} | "
              + " | ".join(f"{v[s]:.1f}" for s in args.render_sizes) + " |" for k, v in ms.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    write_results_page(out, text, "throughput.py")  # hand-written notes under its marker survive a new run
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "note": args.note, "steps": args.steps, "chunk": args.chunk, "size": args.size,
         "rows": rows,
         "render_ms": {k: {str(s): v for s, v in d.items()} for k, d in ms.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
