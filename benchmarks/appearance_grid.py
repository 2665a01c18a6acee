#!/usr/bin/env python
"""One scene under the nominal look, three training looks and three held-out looks, at 64 and 128 px.

    python benchmarks/appearance_grid.py [--out docs/results/appearance.png] [--seed 0] [--looks 4 5 6]

The scene is a Lift/Panda state of a scripted episode (the gripper closing on the cube, step ``--step``); every
column shows that same physical state, drawn after a reset with appearance ``"train"`` or ``"heldout"`` and the
look seed of the column (``envs/appearance.py``), so only the look differs: colours, light, camera pose and the
pixel noise. The 64 px frames are shown enlarged with square pixels.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (64, 128)


def scene_state(seed: int, step: int):
    """The flattened sim state of a scripted Lift/Panda episode (nominal look) at ``step``."""
    import envs
    from policies.scripted import ScriptedPolicy

    env = envs.make_env("Lift", "Panda", horizon=200)
    env.reset(seed=seed)
    policy = ScriptedPolicy(env, seed=seed)
    for _ in range(step):
        env.step(policy.act())
    state = env.rs_env.sim.get_state().flatten()
    env.close()
    return state


def picture(out: Path, seed: int, step: int, look_seeds: list[int]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import envs

    state = scene_state(seed, step)
    cols = [("nominal", seed)] + [(split, s) for split in ("train", "heldout") for s in look_seeds]
    fig, axes = plt.subplots(len(SIZES), len(cols), figsize=(2.3 * len(cols), 2.6 * len(SIZES)))
    env_by_split = {}
    for j, (split, look_seed) in enumerate(cols):
        env = env_by_split.get(split)
        if env is None:
            env = env_by_split[split] = envs.make_env("Lift", "Panda", horizon=200, appearance=split)
        env.reset(seed=look_seed)
        env.rs_env.sim.set_state_from_flattened(state)
        env.rs_env.sim.forward()
        look = env.look
        for i, size in enumerate(SIZES):
            ax = axes[i, j]
            ax.imshow(env.render_frame(size=size), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{size} px", fontsize=10)
        if look is None:
            title = "nominal"
        else:
            title = (f"{split}, look seed {look_seed}\ncube hue {look.object_hsv[0][0]:.0f}, table "
                     f"{look.table_hsv[0]:.0f}\nlight tilt {look.light_tilt_deg:.0f}, noise {look.noise_std:.1f}")
        axes[0, j].set_title(title, fontsize=8)
    for env in env_by_split.values():
        env.close()
    fig.suptitle("Lift/Panda agentview, one state: nominal, training looks, held-out looks (hues and tilts in "
                 "degrees, noise std on 0-255)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "appearance.png"))
    p.add_argument("--seed", type=int, default=0, help="seed of the scripted episode whose state is shown")
    p.add_argument("--step", type=int, default=30, help="step of that episode shown")
    p.add_argument("--looks", type=int, nargs="+", default=[4, 5, 6], help="look seeds of each split")
    args = p.parse_args(argv)
    print(picture(Path(args.out), args.seed, args.step, args.looks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
