#!/usr/bin/env python
"""Run a policy on a robosuite task with a critic in the loop; write an annotated video and logs.

    python scripts/rollout.py --env Lift --robot Panda --policy scripted --inject-failure drop --out runs/drop
    python scripts/rollout.py --env Lift --policy runs/sac_demos --policy-steps 4000 --out runs/watch  # a trained agent
    python scripts/rollout.py --compare runs/watch runs/watch_tuned --names default tuned --out runs/cmp

Per episode: ``episode_NNN.mp4`` (what the critic saw, with critic and oracle progress drawn over it),
``episode_NNN.jsonl`` (one object per step); and ``summary.json`` for the run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import (  # noqa: E402
    add_output_flags,
    check_frame_size,
    named_folders,
    new_parser,
    options_beside_flags,
    parse_options,
    run,
)
from primo_loop.outputs import output_folder  # noqa: E402
from primo_loop.wrappers.common import ON_ERROR, ON_ERROR_HELP  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(__doc__)
    p.add_argument("--env", default="Lift", help="task name (Lift, Stack, PickPlaceCan, ...)")
    p.add_argument("--robot", default="Panda")
    p.add_argument("--policy", default="scripted",
                   help="scripted | random | a trained agent's run folder (scripts/train_agent.py --out)")
    p.add_argument("--policy-steps", type=int, default=None, metavar="N",
                   help="with a run folder: its checkpoint at N env steps instead of the final model")
    p.add_argument("--inject-failure", default=None, metavar="MODE",
                   help="drop | offset_grasp | close_early | push_away | freeze (scripted policy only)")
    p.add_argument("--critic", default=None,
                   help="a registered critic (compact, oracle, primo, remote) or package.module:Factory for your "
                        "own (default: the embedded compact critic)")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (e.g. model=/path, checkpoint=ckpt.pt)")
    p.add_argument("--critic-every", type=int, default=10, help="query the critic every N steps")
    p.add_argument("--critic-on-error", choices=ON_ERROR, default="hold", help=ON_ERROR_HELP)
    p.add_argument("--frame-every", type=int, default=2, help="keep a frame every M steps (video and clip)")
    p.add_argument("--clip-len", type=int, default=8)
    p.add_argument("--shaping", default="delta", help="delta | progress | none")
    p.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrackerConfig field, e.g. failure_threshold=0.6, terminate=false")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--camera", default="agentview")
    p.add_argument("--size", type=int, default=224, help="frame size in pixels (square)")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--stop-after-success", type=int, default=20,
                   help="end an episode once success has held this many steps (-1: run to the horizon)")
    p.add_argument("--no-video", action="store_true", help="skip the mp4 (logs only)")
    p.add_argument("--out", default="runs/rollout", help="output folder (new or empty, unless --overwrite)")
    p.add_argument("--compare", nargs="+", default=[], metavar="ROLLOUT_DIR",
                   help="no rollout: plot the critics of earlier runs of the same episodes (same policy, seeds and "
                        "horizon, --tracker-option terminate=false) against the oracle: OUT/critics_compared.png")
    p.add_argument("--names", nargs="+", default=None, help="legend names for --compare (default: folder names)")
    add_output_flags(p)
    return p


def compare(args: argparse.Namespace) -> int:
    from primo_loop.rollout import compare_rollouts

    from primo_loop.outputs import write_text_atomic

    folders = named_folders(args.compare, args.names)
    with output_folder(args.out, overwrite=args.overwrite) as out:
        result = compare_rollouts(folders, out / "critics_compared.png")
        write_text_atomic(out / "critics_compared.json", json.dumps(result, indent=1))
    for name, maes in result["mae"].items():
        print(f"{name}: critic-vs-oracle MAE per episode " + ", ".join(f"{m:.1f}" for m in maes))
    print(f"plot: {result['plot']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.compare:
        return compare(args)
    from primo_loop.critics import check_critic, default_critic_name
    from primo_loop.errors import ConfigError, UnsupportedError, check_choice

    # Validate every name before paying for a simulator.
    import envs
    from policies.scripted import FAILURE_MODES

    task = check_choice("env", args.env, envs.TASKS)
    robot = check_choice("robot", args.robot, envs.ROBOTS)
    if robot not in envs.supported_robots(task):
        raise UnsupportedError(f"{task} cannot run on {robot}; robots that work: {', '.join(envs.supported_robots(task))}")
    from policies.specs import check_policy_spec, load_trained

    spec = check_policy_spec(args.policy, args.policy_steps)  # the one resolver of policy specs
    trained = None
    if spec.kind == "trained":
        trained = load_trained(spec)
        trained.check_task(task, robot)
    failure = check_choice("failure mode", args.inject_failure, FAILURE_MODES) if args.inject_failure else None
    if failure and not spec.injects_failures:
        raise ConfigError("--inject-failure needs --policy scripted")
    critic_name = check_critic(args.critic or default_critic_name())
    if args.episodes < 1:
        raise ConfigError(f"Expected --episodes >= 1, actually: {args.episodes}")
    check_frame_size(args.size)
    from primo_loop.critics import make_critic
    from primo_loop.tracker import TrackerConfig

    config = TrackerConfig.from_options(**options_beside_flags(
        {"critic_every": args.critic_every, "frame_every": args.frame_every, "clip_len": args.clip_len,
         "shaping": args.shaping}, args.tracker_option, "--tracker-option"))
    critic = make_critic(critic_name, **parse_options(args.critic_option))
    with output_folder(args.out, overwrite=args.overwrite) as out:
        episodes = _roll_out(args, task, robot, spec, trained, failure, (critic_name, critic), config, out)
    for e in episodes:
        if e["video"]:
            print(f"video: {e['video']}")
    print(f"summary: {out / 'summary.json'}")
    return 0


def _roll_out(args: argparse.Namespace, task: str, robot: str, spec, trained, failure: str | None,
              critic: tuple, config, out: Path) -> list[dict]:
    """Run the episodes into ``out``; ``summary.json`` is written even when a run stops part-way."""
    from tqdm import tqdm

    import envs
    from policies.specs import resolve_policy
    from primo_loop.outputs import write_text_atomic
    from primo_loop.rollout import run_episode, write_episode
    from primo_loop.wrappers import CriticInTheLoop

    critic_name, critic = critic
    env = envs.make_env(task, robot, camera=args.camera, image_size=args.size, horizon=args.horizon)
    wrapped = CriticInTheLoop(trained.wrap_env(env) if trained else env, critic=critic, config=config,
                              on_critic_error=args.critic_on_error)
    stop = None if args.stop_after_success < 0 else args.stop_after_success
    title = f"{task} / {robot} / {critic_name}" + (f" / inject {failure}" if failure else "")
    episodes = []
    try:
        for ep in range(args.episodes):
            seed = args.seed + ep
            policy = trained or resolve_policy(spec, env, failure=failure, seed=seed)
            with tqdm(total=args.horizon, desc=f"episode {ep}", unit="step", leave=False, mininterval=1.0) as bar:
                rec = run_episode(wrapped, policy, seed=seed, stop_after_success=stop, on_step=lambda _: bar.update())
            files = ({"log": None, "video": None} if args.no_video else
                     write_episode(rec, out, ep, title=title, instruction=wrapped.tracker.instruction,
                                   fps=max(1.0, 20 / config.frame_every)))
            if args.no_video:
                files["log"] = write_text_atomic(out / f"episode_{ep:03d}.jsonl",
                                                 "".join(json.dumps(r) + "\n" for r in rec.rows))
            summary = dict(rec.summary, episode=ep, seed=seed, video=str(files["video"]) if files["video"] else None,
                           log=str(files["log"]))
            episodes.append(summary)
            mae = summary["critic_vs_oracle_mae"]
            print(f"episode {ep}: success={summary['success']} steps={summary['steps']} "
                  f"ended_by={summary['ended_by']} critic-vs-oracle MAE="
                  f"{'n/a' if mae is None else f'{mae:.1f}'} (over {summary['critic_read']} read) "
                  f"unreadable={summary['critic_unreadable']} failed={summary['critic_failed']} of "
                  f"{summary['critic_queries']} queries ({summary['steps_per_s']:.1f} steps/s)")
    finally:
        run_summary = {
            "env": task, "robot": robot, "policy": str(trained.path) if trained is not None else spec.source, "inject_failure": failure, "critic": critic_name,
            "critic_options": parse_options(args.critic_option), "tracker": config.as_dict(),
            "camera": args.camera, "size": args.size, "horizon": args.horizon,
            "success_rate": (sum(e["success"] for e in episodes) / len(episodes)) if episodes else None,
            "episodes": episodes,
        }
        write_text_atomic(out / "summary.json", json.dumps(run_summary, indent=2) + "\n")
        env.close()
    return episodes


if __name__ == "__main__":
    run(main)
