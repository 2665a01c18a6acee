#!/usr/bin/env python
"""Train an SB3 agent on a robosuite task with a sparse, dense, critic-shaped or oracle-shaped reward.

    python scripts/train_agent.py --env Lift --algo sac --reward critic --critic compact --critic-every 10 \
        --steps 200000 --seed 0 --workers 2 --out runs/sac_critic_s0
    python scripts/train_agent.py ... --out runs/sac_critic_s0 --resume     # after a kill
    # position actions and 20 scripted demonstrations, cloned and replayed (the shaping experiment's setting)
    python scripts/train_agent.py --env Lift --reward critic --action position --horizon 80 --workers 1 \
        --demo-episodes 20 --demo-fraction 0.5 --bc-steps 2000 --bc-regularize --set ent_coef=0.01 \
        --set learning_starts=1600 --critic-weight 10 --steps 20000 --out runs/sac_critic_demo
    # online critic refresh: the critic fine-tuned on the agent's episodes every 10k steps, the buffer relabelled
    python scripts/train_agent.py --env Lift --reward critic --action position --horizon 80 --workers 1 \
        --set n_steps=5 --critic-weight 10 --tracker-option terminate=false --refresh-every 10000 \
        --steps 140000 --out runs/sac_refresh

Writes TensorBoard logs (``OUT/tb``, with ``critic/*``), ``OUT/eval.csv`` (eval success rate vs env steps),
checkpoints (``OUT/checkpoints``: every one's policy, the newest two with the SAC replay buffer),
``OUT/final_model.zip`` and ``OUT/done.json``; with refresh also ``OUT/refresh.csv`` and the refreshed critic in
``OUT/critic``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from policies.sb3 import add_training_arguments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_arguments(p)
    p.add_argument("--robot", default="Panda")
    p.add_argument("--reward", default="sparse", help="sparse | dense | critic | oracle")
    p.add_argument("--steps", type=int, default=100_000, help="total env steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from policies.sb3 import AgentConfig, train, training_config_kwargs

    cfg = AgentConfig(**training_config_kwargs(args), robot=args.robot, reward=args.reward,
                      steps=args.steps, seed=args.seed,
                      out=args.out, resume=args.resume, progress_bar=not args.no_progress)
    summary = train(cfg)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run(main)
