"""Success rates of the scripted policies, per task and robot, as a markdown table.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python scripts/check_policies.py --episodes 20
    python scripts/check_policies.py --tasks Lift --robots Panda Sawyer --failures            # every mode
    python scripts/check_policies.py --tasks NutAssemblySquare --robots Panda --failures offset_grasp
    python scripts/check_policies.py --tasks NutAssemblySquare --robots Kinova3 Jaco --unlisted

Nominal episodes count a success when the task is solved within the task's horizon; with ``--failures``
each injected failure mode is also run and reported as (success rate, fraction flagged ``failed`` by the
oracle).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> None:
    import envs
    from policies.scripted import scripted_robots

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(envs.TASKS))
    parser.add_argument("--robots", nargs="+", default=list(envs.ROBOTS))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failures", nargs="*", default=None, metavar="MODE",
                        help="also run injected failure modes: these, or every one when none is named")
    parser.add_argument("--unlisted", action="store_true",
                        help="also run robots a task does not list (how its list is decided); rows say so")
    args = parser.parse_args(argv)
    from envs.tasks import SPECS

    saved = dict(SPECS)
    try:
        if args.unlisted:  # widen the task lists in this process only
            for task in args.tasks:
                spec = envs.task_spec(task)
                extra = tuple(r for r in args.robots if r not in spec.robots and r in scripted_robots(task))
                SPECS[task] = dataclasses.replace(spec, robots=spec.robots + extra)
        _table(args, saved)
    finally:
        SPECS.update(saved)


def _table(args: argparse.Namespace, listed: dict) -> None:
    """Print the table; ``listed``: the task specs as registered (rows of robots they do not list say so)."""
    import envs
    from policies.scripted import FAILURE_MODES, evaluate, scripted_robots
    from primo_loop.errors import check_choice

    modes = [] if args.failures is None else [check_choice("failure mode", m, FAILURE_MODES)
                                              for m in args.failures] or list(FAILURE_MODES)
    header = ["task", "robot", "horizon", "success", "mean steps to success", "steps/s"]
    header += [f"{m} (succ / flagged)" for m in modes]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    t0 = time.perf_counter()
    for task in args.tasks:
        for robot in args.robots:
            if robot not in envs.supported_robots(task) or robot not in scripted_robots(task):
                continue  # no scripted policy (the humanoid: Lift only)
            r = evaluate(task, robot, episodes=args.episodes, seed=args.seed)
            steps = f"{r['steps_to_success']:.0f}" if r["steps_to_success"] else "-"
            name = robot if robot in listed[task].robots else f"{robot} (not listed)"
            row = [task, name, str(r["horizon"]), f"{r['success_rate']:.0%}", steps, f"{r['steps_per_s']:.0f}"]
            for m in modes:
                if m not in envs.task_spec(task).failure_modes:
                    row.append("n/a")
                    continue
                f = evaluate(task, robot, episodes=args.episodes, failure=m, seed=args.seed)
                row.append(f"{f['success_rate']:.0%} / {f['failure_flagged']:.0%}")
            print("| " + " | ".join(row) + " |", flush=True)
    print(f"\n({args.episodes} episodes per cell, seeds {args.seed}..{args.seed + args.episodes - 1}, "
          f"{time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
