#!/usr/bin/env python
"""Train an SB3 agent on a robosuite task with a sparse, dense, critic-shaped or oracle-shaped reward.

    python scripts/train_agent.py --env Lift --algo sac --reward critic --critic compact --critic-every 10 \
        --steps 200000 --seed 0 --workers 2 --out runs/sac_critic_s0
    python scripts/train_agent.py ... --out runs/sac_critic_s0 --resume     # after a kill
    # position actions and 20 scripted demonstrations, cloned and replayed (the shaping experiment's setting)
    python scripts/train_agent.py --env Lift --reward critic --action position --horizon 80 --workers 1 \
        --demo-episodes 20 --demo-fraction 0.5 --bc-steps 2000 --bc-regularize --set ent_coef=0.01 \
        --set learning_starts=1600 --critic-weight 10 --steps 20000 --out runs/sac_critic_demo

Writes TensorBoard logs (``OUT/tb``, with ``critic/*``), ``OUT/eval.csv`` (eval success rate vs env steps),
checkpoints with the SAC replay buffer (``OUT/checkpoints``), ``OUT/final_model.zip`` and ``OUT/done.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import parse_options, run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Lift", help="task name, or module:callable building a Gymnasium env")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--algo", default="sac", help="sac | ppo")
    p.add_argument("--reward", default="sparse", help="sparse | dense | critic | oracle")
    p.add_argument("--critic", default="compact", help="critic backend for --reward critic")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE", help="critic option")
    p.add_argument("--critic-every", type=int, default=10, help="query the critic every N env steps")
    p.add_argument("--critic-weight", type=float, default=1.0, help="weight of the critic's shaping term")
    p.add_argument("--shaping", default="delta", help="delta (potential-based) | progress")
    p.add_argument("--action", default="pose", help="pose (OSC_POSE, 7-D) | position ([dx, dy, dz, gripper])")
    p.add_argument("--demo-episodes", type=int, default=0,
                   help="scripted episodes per worker seeding the SAC replay buffer (rewarded like the rest)")
    p.add_argument("--demo-noise", type=float, default=0.1, help="action-noise std of the scripted episodes")
    p.add_argument("--demo-fraction", type=float, default=0.5, help="share of each SAC batch from the demonstrations")
    p.add_argument("--bc-steps", type=int, default=0, help="behaviour-cloning steps on the demonstrations first")
    p.add_argument("--bc-regularize", action="store_true",
                   help="a behaviour-cloning step on the demonstrations after every SAC update")
    p.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrackerConfig field, e.g. terminate=false")
    p.add_argument("--steps", type=int, default=100_000, help="total env steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between evaluations (0: off)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an algorithm hyperparameter, e.g. learning_starts=5000")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from policies.sb3 import AgentConfig, train

    cfg = AgentConfig(env=args.env, robot=args.robot, algo=args.algo, reward=args.reward, critic=args.critic,
                      critic_options=parse_options(args.critic_option), critic_every=args.critic_every,
                      critic_weight=args.critic_weight, shaping=args.shaping, action=args.action,
                      demo_episodes=args.demo_episodes, demo_noise=args.demo_noise,
                      demo_fraction=args.demo_fraction, bc_steps=args.bc_steps,
                      bc_regularize=args.bc_regularize,
                      tracker_options=parse_options(args.tracker_option), steps=args.steps, seed=args.seed,
                      workers=args.workers, horizon=args.horizon, eval_every=args.eval_every,
                      eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every,
                      algo_kwargs=parse_options(args.set), out=args.out, resume=args.resume,
                      progress_bar=not args.no_progress)
    summary = train(cfg)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run(main)
