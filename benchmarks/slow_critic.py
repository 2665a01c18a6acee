#!/usr/bin/env python
"""Env steps/s with a slow critic in the loop, synchronous against asynchronous, as ratios to no critic.

    python benchmarks/slow_critic.py [--steps 240] [--chunk 40] [--delays 0.05 0.5 2] [--envs 8] [--every 10]

One SB3 ``DummyVecEnv`` of ``--envs`` primo/Lift-v0 envs (``envs.make_env``, fast render profile, random actions)
is stepped by every variant in turn: with no critic (the VecEnv alone), and for each batch latency in
``--delays`` through ``VecCriticInTheLoop`` with a critic every ``--every`` steps, synchronous and asynchronous,
(a) in-process: the oracle behind :class:`DelayedCritic` (each ``assess`` call takes the latency, whatever its
size), and (b) remote: the same kind of delayed critic behind ``scripts/serve_critic.py`` on 127.0.0.1 (one server
subprocess per variant, so no variant's batch waits behind another's), asked by the ``remote`` client. The remote
wire carries frames, not privileged state, so the served backend is :class:`FrameChangeCritic`, a deterministic
critic that reads frames, behind the same delay.

Variants take turns of ``--chunk`` steps, the order rotating each round, so load from other jobs on a shared
machine slows every variant alike. Each turn begins with a reset of the 8 envs (all variants alike), so every turn
starts new episodes: a verdict still out when an asynchronous variant's turn ends settles an episode that is gone
and is not in the delay distribution (counted as not applied), and its batch may finish during other variants'
turns. DummyVecEnv, not SubprocVecEnv: on 2 shared cores eight worker processes per variant would add IPC and
memory, not parallel speed, and the question here is how long the loop waits for its critic.
Results go to docs/results/slow_critic.md (and .json) with the command; notes below its marker are kept.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import select
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_page import write_results_page  # noqa: E402

from primo_loop.types import CriticQuery, CriticVerdict  # noqa: E402

TARGET_RATIO = 0.8


class DelayedCritic:
    """Any critic behind an injected batch latency: each ``assess`` call takes at least ``delay_s`` seconds
    (the inner critic's own time included), whatever the batch size, as a batched VLM call roughly does.
    Records the wall time of every call (``batch_s``) and counts queries and verdicts with no progress.

    Args:
        inner: the critic that answers.
        delay_s: the least seconds a call takes (0: no delay; then this only times the inner critic).
    """

    name = "delayed"

    def __init__(self, inner, delay_s: float = 0.0):
        from primo_loop.critics.base import capabilities, critic_views

        self.inner, self.delay_s = inner, float(delay_s)
        self.views = critic_views(inner)
        caps = capabilities(inner)
        self.needs_frames, self.needs_privileged = caps.needs_frames, caps.needs_privileged
        self.batch_s: list[float] = []
        self.queries = self.no_progress = 0
        self._lock = threading.Lock()

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        t0 = time.perf_counter()
        verdicts = self.inner.assess(queries)
        left = self.delay_s - (time.perf_counter() - t0)
        if left > 0:
            time.sleep(left)
        took = time.perf_counter() - t0
        with self._lock:
            self.batch_s.append(took)
            self.queries += len(queries)
            self.no_progress += sum(1 for v in verdicts if v is None or v.progress is None)
        # a verdict's latency is its share of the batch's whole time, the injected wait included
        return [dataclasses.replace(v, latency_s=took / len(verdicts)) if isinstance(v, CriticVerdict) else v
                for v in verdicts]


class DelayedCompact(DelayedCritic):
    """The compact critic behind an injected batch latency, still the compact critic to online refresh: ``assess``
    takes at least ``delay_s`` (as :class:`DelayedCritic`); every other attribute (``model``, ``config``,
    ``score``, ``weights_changed``, ...) is the compact critic's own, so the refresher trains it in place, and it
    declares the compact critic's capabilities (frames needed, refreshable)."""

    name = "delayed_compact"

    def __init__(self, inner, delay_s: float = 0.0):
        from primo_loop.critics.base import capabilities

        super().__init__(inner, delay_s)
        self.refreshable = capabilities(inner).refreshable

    def __getattr__(self, attr: str):  # only what this proxy lacks; ``inner`` itself never (unpickling)
        if attr == "inner" or "inner" not in self.__dict__:
            raise AttributeError(attr)
        return getattr(self.inner, attr)


def delayed_compact(delay_s: float = 1.0, checkpoint: str | None = None, device: str = "cpu",
                    threads: int | None = None) -> DelayedCompact:
    """The compact critic (``make_critic("compact", ...)``'s options) behind ``delay_s`` seconds per batch:
    ``--critic benchmarks.slow_critic:delayed_compact --critic-option delay_s=1`` (from the repository root)."""
    from primo_loop.critics import make_critic

    options = {k: v for k, v in dict(checkpoint=checkpoint, device=device, threads=threads).items() if v is not None}
    return DelayedCompact(make_critic("compact", **options), delay_s)


class FrameChangeCritic:
    """A deterministic critic that reads frames only: progress is the mean absolute pixel change from the
    initial frame to the current one, over 255 (so in [0, 1]); no failure probability. A stand-in for a
    VLM on the remote wire, which carries frames and no privileged state.

    >>> a = np.zeros((2, 2, 3), np.uint8)
    >>> FrameChangeCritic().assess([CriticQuery("x", a, a[None], a + 51, 0)])[0].progress
    0.2
    """

    name = "frame_change"
    needs_frames, needs_privileged = True, False

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        out = []
        for q in queries:
            t0 = time.perf_counter()
            change = np.abs(q.current.astype(np.int16) - q.initial.astype(np.int16)).mean() / 255.0
            out.append(CriticVerdict(progress=float(change), failure_prob=None, raw=f"frame change {change:.4f}",
                                     latency_s=time.perf_counter() - t0))
        return out


def delayed_frame_critic(delay_s: float = 0.0) -> DelayedCritic:
    """The served backend (``serve_critic.py --critic slow_critic:delayed_frame_critic``)."""
    return DelayedCritic(FrameChangeCritic(), delay_s)


def delay_summary(delays: Sequence[int]) -> dict[str, float | int | None]:
    """Median, 90th percentile (linear) and max of verdict delays in env steps; None for each when there are none.

    >>> delay_summary([0, 10, 20, 30])
    {'n': 4, 'median': 15.0, 'p90': 27.0, 'max': 30}
    >>> delay_summary([])["median"] is None
    True
    """
    if not delays:
        return {"n": 0, "median": None, "p90": None, "max": None}
    d = np.asarray(delays, dtype=float)
    return {"n": len(delays), "median": float(np.median(d)), "p90": float(np.percentile(d, 90)),
            "max": int(max(delays))}


def start_server(delay_s: float, max_batch: int, batch_wait_ms: float, lifetime_s: int) -> tuple[subprocess.Popen, str]:
    """``scripts/serve_critic.py`` with the delayed frame critic on a free loopback port, in a subprocess that
    ``timeout`` ends after ``lifetime_s`` whatever happens here. Returns the process and its API URL."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
    cmd = ["timeout", str(lifetime_s), sys.executable, str(ROOT / "scripts" / "serve_critic.py"),
           "--critic", "slow_critic:delayed_frame_critic", "--critic-option", f"delay_s={delay_s}",
           "--host", "127.0.0.1", "--port", "0", "--max-batch", str(max_batch), "--batch-wait-ms", str(batch_wait_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        line = proc.stdout.readline() if ready else ""
        if " at http://" in line:
            return proc, line.rsplit(" at ", 1)[1].strip()
    proc.kill()
    raise RuntimeError(f"serve_critic.py did not print its URL within 120 s (exit code {proc.poll()})")


class Variant:
    """One way of stepping the shared VecEnv; wall time and steps are summed over its turns."""

    def __init__(self, name: str, venv, path: str | None = None, mode: str | None = None,
                 delay_s: float | None = None, critic: DelayedCritic | None = None, seed: int = 0):
        self.name, self.venv, self.path, self.mode, self.delay_s, self.critic = name, venv, path, mode, delay_s, critic
        self.rng = np.random.default_rng(seed)
        self.wall = 0.0
        self.steps = 0  # env steps (sub-env steps summed)
        self.delays: list[int] = []

    def run(self, n: int) -> None:
        """Reset the envs, then ``n`` steps of random actions (both timed)."""
        low, high = self.venv.action_space.low, self.venv.action_space.high
        t0 = time.perf_counter()
        self.venv.reset()
        for _ in range(n):
            actions = self.rng.uniform(low, high, (self.venv.num_envs, *low.shape)).astype(np.float32)
            _, _, _, infos = self.venv.step(actions)
            if self.mode == "async":
                for info in infos:
                    self.delays.extend(info.get("critic/delay_steps", ()))
        self.wall += time.perf_counter() - t0
        self.steps += n * self.venv.num_envs

    def row(self, base_wall_per_step: float) -> dict:
        c = self.critic
        return {"variant": self.name, "path": self.path, "mode": self.mode, "delay_s": self.delay_s,
                "env_steps": self.steps, "steps_per_s": self.steps / self.wall,
                "ratio": base_wall_per_step / (self.wall / self.steps),
                "batches": len(c.batch_s) if c else None,
                "mean_batch_s": float(np.mean(c.batch_s)) if c and c.batch_s else None,
                "queries": c.queries if c else None, "no_progress": c.no_progress if c else None,
                "delay_steps": delay_summary(self.delays) if self.mode == "async" else None}


def build_variants(args, venv, lifetime_s: int):
    """The no-critic variant, then per delay: in-process and remote, synchronous and asynchronous."""
    from primo_loop.asynchronous import ThreadRunner
    from primo_loop.critics.oracle import OracleCritic
    from primo_loop.critics.remote import RemoteCritic
    from primo_loop.tracker import TrackerConfig
    from primo_loop.wrappers import VecCriticInTheLoop

    variants = [Variant(f"{args.envs} envs, no critic", venv, seed=args.seed)]
    closers, servers = [], []
    for delay in args.delays:
        for path in ("in-process", "remote"):
            for mode in ("sync", "async"):
                if path == "in-process":
                    critic = DelayedCritic(OracleCritic(), delay)
                    label = f"oracle + {delay:g} s per batch, in-process"
                else:
                    proc, url = start_server(delay, args.max_batch, args.batch_wait_ms, lifetime_s)
                    servers.append(proc)
                    remote = RemoteCritic(url, timeout_s=max(60.0, 10 * delay), max_retries=0,
                                          max_concurrency=args.max_batch, temperature=0.0)
                    closers.append(remote.close)
                    critic = DelayedCritic(remote, 0.0)  # times the client's batches
                    label = f"frame critic + {delay:g} s per batch, serve_critic.py on 127.0.0.1"
                runner = ThreadRunner() if mode == "async" else None
                if runner is not None:
                    closers.append(runner.close)
                cfg = TrackerConfig(critic_every=args.every, terminate=False, async_critic=mode == "async",
                                    max_pending=args.max_pending)
                wrapped = VecCriticInTheLoop(venv, critic, config=cfg, async_runner=runner)
                variants.append(Variant(f"{label}, {mode}", wrapped, path, mode, delay, critic, args.seed))
    return variants, closers, servers


def write_results(args, rows: list[dict], command: str, wall_s: float) -> str:
    lines = ["# Env throughput with a slow critic: synchronous against asynchronous queries\n",
             f"`{command}`\n",
             f"{args.envs} primo/Lift-v0 envs (`envs.make_env`, fast render profile, {args.size} px frames) in one SB3 "
             f"`DummyVecEnv`, random actions, a critic query every {args.every} steps per env (all {args.envs} due on "
             f"the same step), early termination off so every variant steps the same kind of episodes; "
             f"{args.steps} VecEnv steps ({args.steps * args.envs} env steps) per variant in turns of {args.chunk}, "
             f"each turn starting with a reset; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
             f"shared with other engineers' jobs during the run (absolute steps/s are noisy; the side-by-side ratios "
             f"are what count); whole run {wall_s / 60:.1f} min." + (f" {args.note}" if args.note else "") + "\n",
             "| variant | steps/s | ratio to no critic | critic batches | mean batch wall (s) | queries "
             "| no progress | delay median | delay p90 | delay max | verdicts in delays |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda x, f="{:.2f}": "" if x is None else f.format(x)  # noqa: E731
    for r in rows:
        d = r["delay_steps"] or {}
        lines.append(f"| {r['variant']} | {r['steps_per_s']:.1f} | {r['ratio']:.2f} | {fmt(r['batches'], '{}')} | "
                     f"{fmt(r['mean_batch_s'])} | {fmt(r['queries'], '{}')} | {fmt(r['no_progress'], '{}')} | "
                     f"{fmt(d.get('median'), '{:g}')} | {fmt(d.get('p90'), '{:g}')} | {fmt(d.get('max'), '{}')} | "
                     f"{fmt(d.get('n'), '{}')} |")
    top = max(args.delays)
    lines.append(f"\nTarget (issue 32): asynchronous at {top:g} s per batch at least {TARGET_RATIO:.2f}x no critic:")
    for path in ("in-process", "remote"):
        got = {r["mode"]: r["ratio"] for r in rows if r["path"] == path and r["delay_s"] == top}
        verdict = "met" if got["async"] >= TARGET_RATIO else "missed"
        lines.append(f"- {path}: **asynchronous {got['async']:.2f}x ({verdict})**, synchronous {got['sync']:.2f}x")
    lines.append("\nDelays are in env steps per sub-env, from `info[\"critic/delay_steps\"]` of the asynchronous "
                 "variants' steps (verdicts that arrived after their turn ended are not in them). \"no progress\": "
                 "verdicts without a progress (failed or unreadable). Remote: one `serve_critic.py` subprocess "
                 f"per variant (`--max-batch {args.max_batch} --batch-wait-ms {args.batch_wait_ms:g}`), the `remote` "
                 f"client with `max_concurrency={args.max_batch}`, `max_retries=0`; its backend reads frames "
                 "(`FrameChangeCritic`) because the wire carries no privileged state for the oracle.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=240, help="VecEnv steps per variant")
    p.add_argument("--chunk", type=int, default=40, help="VecEnv steps per turn (a multiple of --every)")
    p.add_argument("--delays", type=float, nargs="+", default=[0.05, 0.5, 2.0], help="seconds per critic batch")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--every", type=int, default=10, help="critic_every")
    p.add_argument("--size", type=int, default=84, help="critic frame size (px)")
    p.add_argument("--max-pending", type=int, default=64, help="asynchronous bound on queries out")
    p.add_argument("--max-batch", type=int, default=64, help="server batch and client concurrency")
    p.add_argument("--batch-wait-ms", type=float, default=50.0, help="how long a served query waits for company")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "slow_critic.md"))
    p.add_argument("--note", default="", help="a sentence for the report")
    args = p.parse_args(argv)
    if args.chunk % args.every or args.steps % args.chunk:
        p.error("--chunk must be a multiple of --every, and --steps a multiple of --chunk")

    import envs
    from stable_baselines3.common.vec_env import DummyVecEnv

    started = time.perf_counter()
    venv = DummyVecEnv([lambda: envs.make_env("Lift", "Panda", image_size=args.size, horizon=200)] * args.envs)
    venv.seed(args.seed)
    venv.reset()
    venv.env_method("render_frame")  # GL contexts and the fast profile's meshes: one-time costs, untimed
    variants, closers, servers = build_variants(args, venv, lifetime_s=3600)
    try:
        for v in variants:  # warm-up, untimed: imports, connections, first batches
            v.run(args.every)
            v.wall, v.steps, v.delays = 0.0, 0, []
            if v.critic is not None:
                v.critic.batch_s.clear()
                v.critic.queries = v.critic.no_progress = 0
        rounds = args.steps // args.chunk
        for c in range(rounds):
            k = c % len(variants)
            for v in variants[k:] + variants[:k]:  # a new order each round
                v.run(args.chunk)
            print(f"round {c + 1}/{rounds}: " + ", ".join(f"{v.steps / v.wall:.0f}" for v in variants), flush=True)
        base = variants[0].wall / variants[0].steps
        rows = [v.row(base) for v in variants]  # before shutdown: batches cut off by it are not the run's
    finally:
        for close in closers:
            close()
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
    venv.close()
    command = ("python benchmarks/slow_critic.py " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    text = write_results(args, rows, command, time.perf_counter() - started)
    print(text)
    out = Path(args.out)
    write_results_page(out, text, "slow_critic.py")  # hand-written notes under its marker survive a new run
    out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "note": args.note, "envs": args.envs, "every": args.every, "steps": args.steps,
         "chunk": args.chunk, "size": args.size, "delays_s": args.delays, "target_ratio": TARGET_RATIO,
         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
