#!/usr/bin/env python
"""What the fast render profile costs in looks and in critic accuracy.

    python benchmarks/render_profiles.py picture [--out docs/results/render_profiles.png]
    python benchmarks/render_profiles.py critic [--episodes 20] [--seed 300000] [--tasks Lift] [--robots Panda]
                                                [--out runs/render_profiles]

``picture``: Lift/Panda agentview frames of the same states (the scripted policy reaching the cube, then
holding it aloft) drawn with each profile at 64, 128 and 224 px, side by side (small frames shown enlarged
with square pixels).

``critic``: the same scripted episodes (Lift/Panda by default; the collection settings of docs/critic.md: 128 px
frames area-resized to 64, a frame every 10 steps, failure rate 0.5) are rolled out once per profile from the
same seeds, so the states are identical and only the pictures differ; the shipped compact critic's one-camera
twin (``checkpoint="one_view"``; the earlier one-view default until 2026-12-02) is scored on each set with ``primo_loop.evaluate`` and the MAE, VOC and failure F1 are compared. Writes the datasets to
``<out>/<profile>/``, the reports to ``<out>/report_<profile>/`` and the comparison to ``<out>/summary.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PICTURE_SIZES = (64, 128, 224)


def _states(seed: int) -> list[tuple[str, dict]]:
    """(label, robosuite sim state) of a scripted Lift/Panda episode: reaching the cube, then holding it up."""
    import envs
    from policies.scripted import ScriptedPolicy

    env = envs.make_env("Lift", "Panda", horizon=200)
    env.reset(seed=seed)
    policy = ScriptedPolicy(env, seed=seed)
    out, lifted_at = [], None
    for t in range(1, 200):
        _, _, _, _, info = env.step(policy.act())
        if t == 30:
            out.append(("reaching the cube (step 30)", env.rs_env.sim.get_state().flatten()))
        if info["is_success"] and lifted_at is None:
            lifted_at = t
        if lifted_at is not None and t == lifted_at + 15:
            out.append((f"cube lifted (step {t})", env.rs_env.sim.get_state().flatten()))
            break
    env.close()
    return out


def picture(out: Path, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import envs

    states = _states(seed)
    env = envs.make_env("Lift", "Panda", horizon=200)
    env.reset(seed=seed)
    cols = [(label, state, prof) for label, state in states for prof in ("default", "fast")]
    fig, axes = plt.subplots(len(PICTURE_SIZES), len(cols), figsize=(2.6 * len(cols), 2.75 * len(PICTURE_SIZES)))
    for j, (label, state, prof) in enumerate(cols):
        env.rs_env.sim.set_state_from_flattened(state)
        env.rs_env.sim.forward()
        for i, size in enumerate(PICTURE_SIZES):
            ax = axes[i, j]
            ax.imshow(env.render_frame(size=size, profile=prof), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{label}\n{prof} profile", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{size} px", fontsize=10)
    env.close()
    fig.suptitle("Lift/Panda agentview: MuJoCo's default scene vs the fast render profile", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def critic(out: Path, episodes: int, seed: int, profiles: list[str], tasks: list[str], robots: list[str]) -> dict:
    import envs
    from envs.render import PROFILES, RenderProfile
    from primo_loop.critics import make_critic
    from primo_loop.data.collect import CollectConfig, plan_episodes, rollout
    from primo_loop.data.dataset import write_episode, write_index
    from primo_loop.evaluate import evaluate

    custom = {"fast_multisample": RenderProfile("fast_multisample", shadows=False, reflections=False, skybox=False,
                                                max_mesh_faces=PROFILES["fast"].max_mesh_faces, multisample=True)}
    cfg = CollectConfig(image_size=64, render_size=128, frame_every=10)
    plan = plan_episodes(tasks, robots, episodes, seed=seed, failure_rate=0.5)
    scorer = make_critic("compact", checkpoint="one_view")  # these frames are one camera
    summary: dict = {"tasks": tasks, "robots": robots, "episodes": episodes, "seed": seed, "profiles": {},
                     "collect": {"render_size": 128, "image_size": 64, "frame_every": 10}}
    progress_by_profile = {}
    for prof in profiles:
        root = out / prof
        made = {}
        progress = []
        for spec in plan:
            key = (spec.task, spec.robot)
            if key not in made:
                made[key] = envs.make_env(spec.task, spec.robot, image_size=cfg.render_size, horizon=cfg.horizon,
                                          render_profile=custom.get(prof, prof))
            ep = rollout(spec, cfg, made[key])
            progress.append(np.asarray(ep.table["progress"]))
            write_episode(root, ep, overwrite=True)
        for env in made.values():
            env.close()
        write_index(root)
        progress_by_profile[prof] = progress
        report = evaluate(scorer, [root], out_dir=out / f"report_{prof}")
        split = next(iter(report["splits"].values()))
        fd = split.get("failure_detection") or {}
        summary["profiles"][prof] = {"mae": split["progress"]["mae"], "voc_successful": split["voc_successful"],
                                     "failure_f1": fd.get("f1"), "queries": split["queries"],
                                     "successful_episodes": split["successful_episodes"],
                                     "failed_episodes": split["failed_episodes"]}
        print(prof, json.dumps(summary["profiles"][prof]), flush=True)
    first = progress_by_profile[profiles[0]]
    summary["same_states"] = all(len(a) == len(b) and np.array_equal(a, b)
                                 for p in profiles[1:] for a, b in zip(first, progress_by_profile[p]))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pic = sub.add_parser("picture")
    pic.add_argument("--out", default=str(ROOT / "docs" / "results" / "render_profiles.png"))
    pic.add_argument("--seed", type=int, default=0)
    cr = sub.add_parser("critic")
    cr.add_argument("--episodes", type=int, default=20)
    cr.add_argument("--seed", type=int, default=300000)
    cr.add_argument("--profiles", nargs="+", default=["default", "fast", "fast_multisample"])
    cr.add_argument("--tasks", nargs="+", default=["Lift"])
    cr.add_argument("--robots", nargs="+", default=["Panda"])
    cr.add_argument("--out", default="runs/render_profiles")
    args = p.parse_args()
    if args.cmd == "picture":
        print(picture(Path(args.out), args.seed))
    else:
        summary = critic(Path(args.out), args.episodes, args.seed, args.profiles, args.tasks, args.robots)
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
