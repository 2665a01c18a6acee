#!/usr/bin/env python
"""Failure recovery: success with vs without critic-monitored replanning under injected failures.

The command line of the experiment in ``benchmarks/recovery.py`` (the executor it studies is
:class:`policies.recovery.RecoveryExecutor`).

    python scripts/recovery.py --env Lift --critic compact --episodes 50 --out docs/results/recovery

For each condition (nominal and each injected failure) the scripted policy runs ``--episodes`` paired
episodes (same seeds) open-loop and under the critic, which triggers ``policy.replan()`` on a failure or
regression signal (up to ``--max-retries``). False alarms: monitored episodes whose first critic signal came
before any failure happened (on nominal runs: any signal). Writes ``episodes.jsonl`` (re-running the same
command continues where it stopped), ``recovery.md``, ``recovery.png`` and ``recovery.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import parse_options, run  # noqa: E402
from primo_loop.wrappers.common import ON_ERROR, ON_ERROR_HELP  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Lift")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--critic", default="compact", help="critic backend: a registered name or package.module:Factory (oracle: privileged-state upper bound)")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--critic-on-error", choices=ON_ERROR, default="hold", help=ON_ERROR_HELP)
    p.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="TrackerConfig field, e.g. failure_patience=3")
    p.add_argument("--conditions", nargs="+", default=["nominal", "drop", "offset_grasp", "push_away"])
    p.add_argument("--episodes", type=int, default=50, help="episodes per condition and arm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon", type=int, default=250)
    p.add_argument("--size", type=int, default=128, help="frame size for the critic")
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--cooldown", type=int, default=50, help="steps after a replan in which signals re-arm only")
    p.add_argument("--hold-steps", type=int, default=60, help="success must hold this many steps")
    p.add_argument("--out", default="docs/results/recovery")
    p.add_argument("--report-only", action="store_true", help="write the report from episodes.jsonl, run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import envs
    from benchmarks.recovery import ExperimentConfig, read_episodes, run_experiment, write_report
    from policies.recovery import NOMINAL, RecoveryConfig
    from policies.scripted import FAILURE_MODES
    from primo_loop.critics import check_critic
    from primo_loop.errors import ConfigError, check_choice

    check_choice("task", args.env, envs.TASKS)
    check_critic(args.critic)  # a registered name or package.module:Factory
    conditions = [check_choice("condition", c, (NOMINAL, *FAILURE_MODES)) for c in args.conditions]
    cfg = ExperimentConfig(env=args.env, robot=args.robot, critic=args.critic,
                           critic_options=parse_options(args.critic_option), critic_on_error=args.critic_on_error,
                           tracker_options=parse_options(args.tracker_option), conditions=conditions,
                           episodes=args.episodes, seed=args.seed, horizon=args.horizon, image_size=args.size,
                           recovery=RecoveryConfig(max_retries=args.max_retries, cooldown_steps=args.cooldown,
                                                   hold_steps=args.hold_steps), out=args.out)
    from tqdm import tqdm

    total = len(conditions) * 2 * args.episodes
    if args.report_only:
        rows = read_episodes(Path(args.out) / "episodes.jsonl")
        if not any(r["condition"] in conditions and r["seed"] >= args.seed for r in rows):
            raise ConfigError(f"--report-only: no episodes of these conditions in {Path(args.out) / 'episodes.jsonl'}"
                              "; run without --report-only first (or pass the --out that holds them)")
    else:
        with tqdm(total=total, desc="episodes", unit="ep") as bar:
            rows = run_experiment(cfg, on_episode=lambda row: bar.update(1))
    # the command that produces the episodes (re-running it resumes; --report-only only rewrites the report)
    command = "python scripts/recovery.py " + shlex.join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only")
    result = write_report(cfg, rows, command)
    print((Path(args.out) / "recovery.md").read_text())
    return 0 if result else 1


if __name__ == "__main__":
    run(main)
