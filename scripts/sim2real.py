#!/usr/bin/env python
"""Held-out embodiment: the GR1ArmsOnly humanoid doing Lift; the compact critic zero-shot and fine-tuned.

    python scripts/sim2real.py --base-data data/train_lift --train-episodes 20 --eval-episodes 30 \
        --epochs 10 --out runs/sim2real

Collects scripted humanoid episodes (nominal and injected failures), scores the compact critic on held-out
ones zero-shot, trains it again with the humanoid episodes mixed into ``--base-data`` (the trainer has no warm
start, so "fine-tuning" is training on the mixed data), and scores that. Re-running resumes every stage.
Real videos are scored with ``scripts/eval_critic.py --videos DIR``. The experiment itself is
``benchmarks/sim2real.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-data", nargs="+", required=True, help="dataset(s) the zero-shot critic was trained on")
    p.add_argument("--checkpoint", default=None, help="zero-shot compact checkpoint (default: the embedded one)")
    p.add_argument("--env", default="Lift")
    p.add_argument("--robot", default="GR1ArmsOnly")
    p.add_argument("--train-episodes", type=int, default=20, help="humanoid episodes mixed into fine-tuning")
    p.add_argument("--eval-episodes", type=int, default=30, help="held-out humanoid episodes scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--failure-rate", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-arg", action="append", default=[], metavar="FLAG",
                   help="extra flag for the compact trainer, repeatable (e.g. --train-arg=--max-minutes=10)")
    p.add_argument("--workers", type=int, default=1, help="collection workers")
    p.add_argument("--synthetic", action="store_true", help="synthetic scene instead of robosuite (smoke runs)")
    p.add_argument("--out", default="runs/sim2real")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmarks.sim2real import Sim2RealConfig, run_sim2real

    cfg = Sim2RealConfig(out=args.out, base_data=args.base_data, checkpoint=args.checkpoint, task=args.env,
                         robot=args.robot, train_episodes=args.train_episodes, eval_episodes=args.eval_episodes,
                         seed=args.seed, failure_rate=args.failure_rate, epochs=args.epochs,
                         train_args=args.train_arg, workers=args.workers, synthetic=args.synthetic)
    run_sim2real(cfg)
    print((Path(args.out) / "sim2real.md").read_text())
    return 0


if __name__ == "__main__":
    run(main)
