"""The shaping experiment's command line, as its committed reports record it (``docs/results/*/shaping.json``
hold the commands whose ``--prior`` reports lend their curves), and its translation to an
:class:`policies.sb3.AgentConfig`.

``scripts/train_agent.py`` has one route per setting, generated from the config dataclasses; this experiment
keeps the flags its reports were made with (``--critic-every``, ``--tracker-option KEY=VALUE``, ``--set
KEY=VALUE``, ...) so that a recorded command still parses and its options can still be compared. Here each
setting again has one route: the flags that duplicated a ``KEY=VALUE`` entry (``critic_every``,
``critic_weight``, ``shaping`` in ``--tracker-option``; ``every`` in ``--refresh-option``; ``bc_steps`` and
``bc_regularize`` in ``--set``) are refused there.
"""
from __future__ import annotations

import argparse
from typing import Any

from primo_loop.cli import parse_options
from primo_loop.errors import ConfigError

#: KEY=VALUE entries that have a flag of their own in this command line
_FLAGGED = {"tracker_option": ("critic_every", "critic_weight", "shaping", "gamma"),
            "refresh_option": ("every", "seed"), "set": ("bc_steps", "bc_regularize")}


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The training options of the experiment's command line (it adds its reward, seed and output options)."""
    p.add_argument("--env", default="Lift", help="task name, or module:callable building a Gymnasium env")
    p.add_argument("--algo", default="sac", help="sac | ppo")
    p.add_argument("--critic", default="compact", help="critic backend of the `critic` reward")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE", help="critic option")
    p.add_argument("--critic-every", type=int, default=10, help="query the critic every N env steps")
    p.add_argument("--critic-weight", type=float, default=1.0, help="weight of the critic's shaping term")
    p.add_argument("--shaping", default="delta", help="delta (potential-based) | progress")
    p.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other TrackerConfig field, e.g. terminate=false")
    p.add_argument("--action", default="pose", help="pose (OSC_POSE, 7-D) | position ([dx, dy, dz, gripper])")
    p.add_argument("--demo-episodes", type=int, default=0, help="scripted episodes per worker seeding SAC's buffer")
    p.add_argument("--demo-noise", type=float, default=0.1, help="action-noise std of the scripted episodes")
    p.add_argument("--demo-fraction", type=float, default=0.5, help="share of each SAC batch from the demonstrations")
    p.add_argument("--bc-steps", type=int, default=0, help="behaviour-cloning steps on the demonstrations first")
    p.add_argument("--bc-regularize", action="store_true", help="a behaviour-cloning step after every SAC update")
    p.add_argument("--refresh-every", type=int, default=0, help="online critic refresh every N env steps (0: off)")
    p.add_argument("--refresh-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other RefreshConfig field, e.g. grad_steps=200")
    p.add_argument("--workers", type=int, default=2, help="simulation worker processes")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between evaluations (0: off)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an algorithm hyperparameter, e.g. learning_starts=5000")


def training_config_kwargs(args: argparse.Namespace, reward: str) -> dict[str, Any]:
    """:class:`AgentConfig` keyword arguments of a ``reward``'s runs from the options above."""
    from primo_loop.tracker import TrackerConfig
    from primo_loop.training.refresh_config import RefreshConfig

    lists = {name: parse_options(getattr(args, name)) for name in _FLAGGED}
    for name, keys in _FLAGGED.items():
        twice = [k for k in keys if k in lists[name]]
        if twice:
            raise ConfigError(f"--{name.replace('_', '-')} {twice[0]}=...: this setting has its own flag "
                              f"(--{twice[0].replace('_', '-')}); give it there only")
    kwargs = {n: getattr(args, n) for n in ("env", "algo", "action", "demo_episodes", "demo_noise",
                                            "demo_fraction", "bc_steps", "bc_regularize", "workers", "horizon",
                                            "eval_every", "eval_episodes", "checkpoint_every")}
    critic_reward = reward in ("critic", "oracle")
    kwargs["critic"] = args.critic if reward == "critic" else None
    kwargs["critic_options"] = parse_options(args.critic_option) if critic_reward else {}
    kwargs["tracker"] = TrackerConfig.from_options(  # sparse and dense runs read no tracker option
        critic_every=args.critic_every, critic_weight=args.critic_weight, shaping=args.shaping,
        **lists["tracker_option"]) if critic_reward else TrackerConfig()
    refresh = reward == "critic" and args.refresh_every
    kwargs["refresh"] = RefreshConfig.from_options(every=args.refresh_every if refresh else 0,
                                                   **(lists["refresh_option"] if refresh else {}))
    kwargs["algo_kwargs"] = lists["set"]
    return kwargs
