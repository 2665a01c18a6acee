#!/usr/bin/env python
"""Train an SB3 agent on a robosuite task or any Gymnasium env, rewarded sparsely, densely, by a critic or oracle.

    python scripts/train_agent.py --env Lift --algo sac --reward critic --critic compact \
        --tracker.critic-every 10 --steps 200000 --seed 0 --workers 2 --out runs/sac_critic_s0
    python scripts/train_agent.py ... --out runs/sac_critic_s0 --resume     # after a kill
    # position actions and 20 scripted demonstrations, cloned and replayed (the shaping experiment's setting)
    python scripts/train_agent.py --env Lift --reward critic --action position --horizon 80 --workers 1 \
        --demo-episodes 20 --demo-fraction 0.5 --bc-steps 2000 --bc-regularize --sb3.ent-coef 0.01 \
        --sb3.learning-starts 1600 --tracker.critic-weight 10 --steps 20000 --out runs/sac_critic_demo
    # online critic refresh: the critic fine-tuned on the agent's episodes every 10k steps, the buffer relabelled
    python scripts/train_agent.py --env Lift --reward critic --action position --horizon 80 --workers 1 \
        --sb3.n-steps 5 --tracker.critic-weight 10 --tracker.no-terminate --refresh.every 10000 \
        --steps 140000 --out runs/sac_refresh
    # your own Gymnasium env (a module:callable returning it; episodes judged on return without is_success)
    python scripts/train_agent.py --env mypkg.envs:make_pusher --reward critic --critic compact --out runs/pusher

Every option is a field of :class:`policies.sb3.AgentConfig` (or of its nested tracker, refresh and SB3 settings);
``--help`` lists them with their defaults. An existing non-empty ``--out`` is refused unless ``--resume`` or
``--overwrite``.

Writes TensorBoard logs (``OUT/tb``, with ``critic/*``), ``OUT/eval.csv`` (eval success rate vs env steps),
checkpoints (``OUT/checkpoints``: every one's policy, the newest two with the SAC replay buffer),
``OUT/final_model.zip`` and ``OUT/done.json``; with refresh also ``OUT/refresh.csv`` and the refreshed critic in
``OUT/critic``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import run  # noqa: E402
from primo_loop.config_cli import OneLineParser, add_dataclass_options  # noqa: E402


def build_parser() -> OneLineParser:
    from policies.sb3 import AgentConfig

    p = OneLineParser(description=__doc__.splitlines()[0])
    add_dataclass_options(p, AgentConfig, required=("out",))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from policies.sb3 import AgentConfig, train
    from primo_loop.config_cli import from_namespace

    summary = train(from_namespace(AgentConfig, args))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    run(main)
