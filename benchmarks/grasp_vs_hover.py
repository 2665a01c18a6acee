#!/usr/bin/env python
"""How critics read a trained agent's grasps against its hovering at the cube (experiment 15's finding).

    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/grasp_vs_hover.py --run runs/sac_lift \\
        --critic default runs/default_critic/model --names shipped rebuilt --episodes 10 \\
        --out docs/results/grasp_vs_hover
    python benchmarks/grasp_vs_hover.py --policy scripted --inject-failure none offset_grasp --near 0.06 \
        --critic default runs/default_critic/model --episodes 30 --out runs/gvh_scripted

Rolls out the agent of a ``scripts/train_agent.py`` run folder (deterministic actions, fixed seeds ``--seed`` ..),
or the scripted policy with the failure modes of ``--inject-failure`` taken in turn (``none``: nominal; a
stand-in for an agent's hovering when no trained agent is at hand: ``offset_grasp`` closes 4-5 cm beside the
cube, which ``--near 0.06`` counts as hover; ``close_early`` and ``freeze`` gave no hover states at 0.04),
keeps a frame every ``--critic-every`` steps and the privileged sim state there, and asks every critic the
in-loop tracker's queries at those steps (the same frames for every critic). Each queried state is classified
from privileged state (:func:`classify`):

- **grasp**: the cube is held (the oracle's hold: finger pads on it for 2 steps, until 3 steps without) or the
  finger pads touch it now; split into *cube on the table* and *cube lifted* in the report;
- **hover**: the gripper within ``--near`` of the cube, not touching it (open, or closed on nothing), the cube
  on the table (within ``--on-table`` of its resting height);
- **other**: anything else (reaching, a released or dropped cube, ...).

Per critic and class: the mean signed error (critic minus oracle progress, 0-100), mean critic and oracle
progress, and the count. A critic that cannot see grasps reads them like hovering: a negative error at grasps.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCRIPT = "grasp_vs_hover.py"
CLASSES = ("grasp", "grasp_on_table", "grasp_lifted", "hover", "other")


def classify(priv: Mapping[str, Any], near: float = 0.04, on_table: float = 0.01) -> str:
    """``grasp``, ``hover`` or ``other`` for one privileged state (``RobosuiteEnv.privileged()``: ``holding``,
    ``grasped``, ``reach_dist`` in m, ``object_height`` in m above the cube's resting height).

    >>> classify({"holding": True, "grasped": True, "reach_dist": 0.0, "object_height": 0.0})
    'grasp'
    >>> classify({"holding": False, "grasped": False, "reach_dist": 0.02, "object_height": 0.0})
    'hover'
    >>> classify({"holding": False, "grasped": False, "reach_dist": 0.2, "object_height": 0.0})
    'other'
    """
    if bool(priv.get("holding")) or bool(priv.get("grasped")):
        return "grasp"
    if float(priv["reach_dist"]) <= near and abs(float(priv["object_height"])) <= on_table:
        return "hover"
    return "other"


def classes_of(priv: Mapping[str, Any], near: float = 0.04, on_table: float = 0.01) -> list[str]:
    """Every report class a state counts in: its class, and for a grasp whether the cube is on the table."""
    c = classify(priv, near, on_table)
    if c != "grasp":
        return [c]
    return [c, "grasp_on_table" if abs(float(priv["object_height"])) <= on_table else "grasp_lifted"]


@dataclass
class Rollout:
    """One episode's kept frames and, at each, the step and the privileged state."""

    instruction: str
    frames: list[np.ndarray] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    privileged: list[dict[str, Any]] = field(default_factory=list)
    views: tuple[str, ...] = ()  # the cameras tiled in each frame (a multi-view critic's); () for one


def roll_out(env: Any, policy: Any, seed: int, every: int, horizon: int,
             frame: Callable[[], np.ndarray], privileged: Callable[[], dict[str, Any]],
             views: Sequence[str] = ()) -> Rollout:
    """Run ``policy`` in ``env`` from ``reset(seed=seed)`` for up to ``horizon`` steps (or until the episode
    ends); keep ``frame()`` and ``privileged()`` at step 0 and every ``every`` steps."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(seed=seed)
    rec = Rollout(instruction=str(getattr(env.unwrapped, "instruction", "")), views=tuple(views))

    def keep(step: int) -> None:
        rec.frames.append(np.asarray(frame()))
        rec.steps.append(step)
        rec.privileged.append(dict(privileged()))

    keep(0)
    for t in range(1, horizon + 1):
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        if t % every == 0:
            keep(t)
        if terminated or truncated:
            break
    return rec


def queries_of(rec: Rollout, clip_len: int = 8) -> list[Any]:
    """The tracker's query at every kept frame (frames kept at the query cadence, so the k-th query sees frames
    0..k)."""
    from primo_loop.clips import sample_clip_indices
    from primo_loop.types import CriticQuery

    frames = np.stack(rec.frames)
    return [CriticQuery(instruction=rec.instruction, initial=frames[0],
                        clip=frames[sample_clip_indices(k + 1, clip_len)], current=frames[k], step=rec.steps[k],
                        views=rec.views)
            for k in range(len(rec.frames))]


def score(critics: Mapping[str, Any], rollouts: Sequence[Rollout], near: float = 0.04, on_table: float = 0.01,
          clip_len: int = 8) -> dict[str, Any]:
    """Per critic and class: signed error (critic - oracle, 0-100) mean, mean critic, mean oracle, count.
    Unreadable verdicts (progress None) are counted apart and left out of the means."""
    labels, oracle, queries = [], [], []
    for rec in rollouts:
        queries += queries_of(rec, clip_len)
        labels += [classes_of(p, near, on_table) for p in rec.privileged]
        oracle += [100.0 * float(p["progress"]) for p in rec.privileged]
    out: dict[str, Any] = {"queries": len(queries), "class_counts": {c: sum(c in ls for ls in labels)
                                                                     for c in CLASSES}, "critics": {}}
    for name, critic in critics.items():
        verdicts = []
        for i in range(0, len(queries), 16):
            verdicts += critic.assess(queries[i:i + 16])
        pred = [None if v.progress is None else 100.0 * float(v.progress) for v in verdicts]
        per: dict[str, Any] = {}
        for c in CLASSES:
            idx = [i for i, ls in enumerate(labels) if c in ls and pred[i] is not None]
            err = [pred[i] - oracle[i] for i in idx]
            per[c] = {"n": len(idx), "signed_error": float(np.mean(err)) if idx else None,
                      "critic": float(np.mean([pred[i] for i in idx])) if idx else None,
                      "oracle": float(np.mean([oracle[i] for i in idx])) if idx else None}
        per["unreadable"] = sum(p is None for p in pred)
        out["critics"][name] = per
    return out


def _failure_note(result: Mapping[str, Any]) -> str:
    modes = sorted(set(result.get("failures") or ["none"]))
    return "" if modes == ["none"] else " (injected failures in turn: " + ", ".join(modes) + ")"


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.1f}"

    def g(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1f}"

    at = f" at {result['policy_steps']} steps" if result.get("policy_steps") else ""
    lines = ["# Grasp versus hover: how critics read grasps against hovering at the cube", "",
             f"Written by `{command}`.", "",
             f"Policy: `{result.get('run')}`{at}{_failure_note(result)}; {result.get('episodes')} episodes, "
             f"seeds {result.get('seeds')}; "
             f"{result['queries']} queried states. Classes from privileged state (near = {result.get('near')} m, "
             f"on the table = within {result.get('on_table')} m of the resting height): "
             + ", ".join(f"{c} {n}" for c, n in result["class_counts"].items()) + ".", "",
             "Signed error = critic minus oracle progress (0-100), mean over the class's queried states.", "",
             "| critic | class | n | signed error | critic mean | oracle mean |", "|---|---|---|---|---|---|"]
    for name, per in result["critics"].items():
        for c in CLASSES:
            s = per[c]
            lines.append(f"| {name} | {c} | {s['n']} | {f(s['signed_error'])} | {g(s['critic'])} | {g(s['oracle'])} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", "--run", dest="policy", required=True,
                   help="run folder of scripts/train_agent.py (a Lift agent), or scripted")
    p.add_argument("--policy-steps", type=int, default=None,
                   help="with a run folder: its checkpoint at this many env steps (default: the final model)")
    p.add_argument("--inject-failure", nargs="+", default=["none"], metavar="MODE",
                   help="scripted policy only: failure modes taken in turn over the episodes (none: nominal)")
    p.add_argument("--robot", default="Panda", help="scripted policy only (an agent acts on its own robot)")
    p.add_argument("--critic", nargs="+", default=["default"],
                   help="compact checkpoints: folders or shipped names (default, hardened)")
    p.add_argument("--names", nargs="+", help="column names (default: the --critic values)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="episode seeds are SEED .. SEED+episodes-1")
    p.add_argument("--horizon", type=int, default=80)
    p.add_argument("--critic-every", type=int, default=10)
    p.add_argument("--image-size", type=int, default=128, help="rendered frame size (the critic resizes)")
    p.add_argument("--near", type=float, default=0.04, help="hover: gripper within this of the cube (m)")
    p.add_argument("--on-table", type=float, default=0.01, help="cube within this of its resting height (m)")
    p.add_argument("--out", required=True, help="folder for report.md and report.json")
    args = p.parse_args(argv)
    names = args.names or args.critic
    if len(names) != len(args.critic):
        p.error(f"expected one --names per --critic ({len(args.critic)}), got {len(names)}")

    import envs
    from benchmarks.results_page import write_results_page
    from policies.scripted import FAILURE_MODES
    from policies.specs import check_policy_spec, load_trained, resolve_policy
    from primo_loop.critics import make_critic
    from primo_loop.errors import ConfigError, check_choice
    from primo_loop.outputs import write_text_atomic

    spec = check_policy_spec(args.policy, args.policy_steps)
    modes = [None if m == "none" else check_choice("failure mode", m, FAILURE_MODES) for m in args.inject_failure]
    if any(modes) and not spec.injects_failures:
        raise ConfigError(f"--inject-failure needs --policy scripted, actually: --policy {args.policy}")
    if spec.kind == "trained":
        agent = load_trained(spec)
        task, robot = agent.config["env"], agent.config.get("robot", "Panda")
    else:
        task, robot = "Lift", check_choice("robot", args.robot, envs.supported_robots("Lift"))
    critics = {n: make_critic("compact", checkpoint=c) for n, c in zip(names, args.critic)}
    # frames tile the views of the multi-view critic if there is one; a one-view critic reads its camera of them
    multi = {c.config.views for c in critics.values() if c.config.views}
    if len(multi) > 1:
        p.error(f"critics of different view sets {sorted(multi)}: compare them in separate runs")
    views = next(iter(multi), ())
    env = envs.make_env(task, robot, image_size=args.image_size, horizon=args.horizon, obs_mode="state",
                        **({"cameras": views} if views else {}))
    seeds = list(range(args.seed, args.seed + args.episodes))
    failures = [modes[i % len(modes)] for i in range(len(seeds))]
    rollouts = []
    for s, failure in zip(seeds, failures):
        policy = resolve_policy(spec, env, task=task, robot=robot, failure=failure, seed=s)
        acting = policy.wrap_env(env) if spec.kind == "trained" else env
        rollouts.append(roll_out(acting, policy, s, args.critic_every, args.horizon, env.render_frame,
                                 env.privileged, views))
    env.close()
    result = {"run": args.policy, "policy_steps": args.policy_steps, "task": task, "robot": robot,
              "episodes": args.episodes,
              "failures": [f or "none" for f in failures],
              "seeds": f"{seeds[0]}..{seeds[-1]}", "near": args.near, "on_table": args.on_table,
              "critic_checkpoints": dict(zip(names, args.critic)),
              **score(critics, rollouts, args.near, args.on_table)}
    command = "python benchmarks/" + SCRIPT + " " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.json", json.dumps(result, indent=1))
    write_results_page(out / "report.md", render_markdown(result, command), SCRIPT)
    print(render_markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
