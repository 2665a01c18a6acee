#!/usr/bin/env python
"""Collect labelled episodes from sim rollouts (frames, oracle progress, failure labels, meta).

    python scripts/collect.py --env Lift --robot Panda --episodes 200 --seed 0 --failure-rate 0.5 \\
        --workers 2 --out data/lift_panda
    python scripts/collect.py --env Lift --policy runs/sac --episodes 40 --failure-rate 0 --horizon 80 \\
        --out data/lift_agent         # the states a trained agent visits
    python scripts/collect.py --stats data/lift_panda
    python scripts/collect.py --env Lift --episodes 2000 --ray auto --out /shared/data/lift   # on a Ray cluster

A killed run started again with the same options resumes: episodes on disk are kept, unfinished ones redone.
With --ray each episode is a Ray task whose worker writes it into --out: a folder every node sees at the same
path (checked before anything runs; docs/cluster.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import run, writable_dir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from primo_loop.data.collect import CollectConfig
    from primo_loop.data.provenance import APPEARANCES

    d = CollectConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=["Lift"], help="task name(s)")
    p.add_argument("--robot", nargs="+", default=["Panda"], help="robot name(s)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task and robot")
    p.add_argument("--seed", type=int, default=0, help="episode seeds are SEED .. SEED+episodes-1")
    p.add_argument("--failure-rate", type=float, default=0.5, help="share of episodes with an injected failure")
    p.add_argument("--failure-modes", nargs="+", default=None,
                   help="restrict the injected failure modes (default: all the task supports)")
    p.add_argument("--noise", type=float, default=0.1, help="action noise std is drawn from [0, NOISE] per episode")
    p.add_argument("--workers", type=int, default=1, help="worker processes (0: in this process); not with --ray")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the episodes as Ray tasks: auto (the cluster this machine joined with `ray start`), "
                        "local (a Ray started for this run), or HOST:PORT of the head node")
    p.add_argument("--ray-task-cpus", type=float, default=1.0, metavar="N", help="CPUs each Ray task declares")
    p.add_argument("--ray-retries", type=int, default=3, metavar="N",
                   help="resubmissions of an episode whose Ray worker or node was lost")
    p.add_argument("--out", help="dataset folder")
    p.add_argument("--image-size", type=int, default=d.image_size, help="stored frame size (critic resolution)")
    p.add_argument("--render-size", type=int, default=d.render_size, help="rendered frame size")
    p.add_argument("--frame-every", type=int, default=d.frame_every, help="keep a frame every N steps")
    p.add_argument("--horizon", type=int, default=d.horizon)
    p.add_argument("--post-success-steps", type=int, default=d.post_success_steps,
                   help="stop N steps after success (-1: run to the horizon)")
    p.add_argument("--post-failure-steps", type=int, default=d.post_failure_steps,
                   help="stop N steps after the failure event (-1: run to the horizon)")
    p.add_argument("--camera", default=d.camera)
    p.add_argument("--cameras", nargs="+", metavar="NAME", default=None,
                   help="several cameras instead of --camera (e.g. agentview robot0_eye_in_hand): each frame tiles "
                        "their views left to right, each --image-size square; recorded as the episodes' views")
    p.add_argument("--render-profile", default=d.render_profile, choices=("fast", "default"),
                   help="how frames are drawn (envs/render.py): fast (the default) or MuJoCo's full scene")
    p.add_argument("--appearance", default=d.appearance, choices=APPEARANCES,
                   help="nominal (robosuite's look), or a look per episode drawn from its seed: train, or heldout "
                        "(colours, light and camera never drawn for train; envs/appearance.py)")
    p.add_argument("--policy", default=d.policy,
                   help="scripted | random | RUN_FOLDER of scripts/train_agent.py (the trained agent, with the "
                        "episode's action noise); random and trained agents inject no failures")
    p.add_argument("--policy-steps", type=int, default=None, metavar="N",
                   help="with --policy RUN_FOLDER: its checkpoint at N env steps (default: the final model)")
    p.add_argument("--supported-only", action="store_true",
                   help="skip the task/robot pairs a robot cannot do (named once) instead of refusing the run; "
                        "every task still needs one robot that can")
    p.add_argument("--synthetic", action="store_true", help="drawn synthetic scene instead of robosuite (tests)")
    p.add_argument("--step-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--stats", metavar="DIR", help="print what the dataset DIR holds and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_counts(args: argparse.Namespace) -> None:
    """One line for a count out of range (before anything is built)."""
    from primo_loop.errors import ConfigError

    for flag, value, low in (("--episodes", args.episodes, 1), ("--workers", args.workers, 0)):
        if value < low:
            raise ConfigError(f"Expected {flag} >= {low}, actually: {value}"
                              + (" (0: collect in this process)" if flag == "--workers" else ""))


def check_failure_modes(asked: list[str] | None, valid: set[str]) -> list[str] | None:
    """``--failure-modes`` checked against the modes of the tasks asked for (unknown: the valid ones, the closest)."""
    from primo_loop.errors import check_choice

    return None if asked is None else [check_choice("failure mode", m, sorted(valid)) for m in asked]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from primo_loop.errors import ConfigError

    if args.stats:
        from primo_loop.data.dataset import dataset_stats

        print(json.dumps(dataset_stats(args.stats), indent=1))
        return 0
    if not args.out:
        raise ConfigError("Expected --out DIR (or --stats DIR)")
    check_counts(args)
    from policies.specs import check_policy_spec, collect_env, collect_policy, failure_modes, load_trained
    from primo_loop.data.collect import CollectConfig, collect, plan_episodes

    spec = None if args.synthetic else check_policy_spec(args.policy, args.policy_steps)
    cfg = CollectConfig(image_size=args.image_size, render_size=args.render_size, frame_every=args.frame_every,
                        horizon=args.horizon,
                        post_success_steps=None if args.post_success_steps < 0 else args.post_success_steps,
                        post_failure_steps=None if args.post_failure_steps < 0 else args.post_failure_steps,
                        camera=args.camera, cameras=tuple(args.cameras or ()),
                        render_profile=args.render_profile, appearance=args.appearance, policy=args.policy,
                        policy_steps=args.policy_steps, synthetic=args.synthetic, step_delay=args.step_delay)
    if spec is not None and not spec.injects_failures and args.failure_rate > 0:
        raise ConfigError(f"--policy {args.policy} injects no failures: pass --failure-rate 0")
    if spec is not None and spec.kind == "trained":  # an unfinished run, another task: one error now, not per episode
        trained = load_trained(spec)
        for task in args.env:
            for robot in args.robot:
                trained.check_task(task, robot)
    if args.synthetic:
        modes = check_failure_modes(args.failure_modes, {"drop"})
        plan = plan_episodes(args.env, args.robot, args.episodes, args.seed, args.failure_rate, args.noise,
                             modes, modes_for_task=lambda task: ["drop"])
        factories = {}
    else:
        import envs
        from primo_loop.errors import UnsupportedError

        unable = [(t, r) for t in args.env for r in args.robot if r not in envs.supported_robots(t)]
        for task in args.env:
            if not args.supported_only or all((task, r) in unable for r in args.robot):
                for robot in args.robot:
                    if (task, robot) in unable:
                        raise UnsupportedError(f"Robot {robot!r} cannot do task {task!r}; supported: "
                                               f"{', '.join(envs.supported_robots(task))}")
        if unable:
            print("collect: skipped (--supported-only): " + ", ".join(f"{r} on {t}" for t, r in unable),
                  file=sys.stderr)
        modes = check_failure_modes(args.failure_modes, {m for task in args.env for m in failure_modes(task)})
        plan = plan_episodes(args.env, args.robot, args.episodes, args.seed, args.failure_rate, args.noise,
                             modes, modes_for_task=failure_modes)
        plan = [s for s in plan if (s.task, s.robot) not in unable]  # each pair draws from its own seed
        factories = {"make_env": collect_env, "make_policy": collect_policy}
    writable_dir(args.out)
    if args.ray is not None:
        from primo_loop.executors import RayOptions

        factories["ray"] = RayOptions(args.ray, num_cpus=args.ray_task_cpus, max_retries=args.ray_retries)
    summary = collect(plan, args.out, cfg, workers=args.workers, progress_bar=not args.no_progress, **factories)
    print(json.dumps(summary, indent=1))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    run(main)
