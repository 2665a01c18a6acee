"""Read critics by stage (experiment 15, docs/results/README.md): the mean progress a critic answers where the
oracle says the agent is starting, reaching, at the cube, grasping or lifting, on the held-out sets of the pilot
(pilot_rehearsal.py): experiment 14's critic seed 101 episodes (an agent that lifts), 20 held-out scripted
rollouts, and experiment 14's critic seed 102 episodes from 80-84k.

    python docs/results/scratch_rehearse/read_by_stage.py embedded \\
        runs/scratch_rehearse/critic_s102/checkpoints/refresh_state_84000_steps.pt

Each argument is ``embedded``, ``hardened`` or a refresh state saved by a run with online refresh (its critic's
weights are read). A record of the analysis, not part of the package.
"""
import sys

import numpy as np
import torch

from primo_loop.critics.compact import CompactCritic
from primo_loop.training.compact import Batcher, TrainConfig, forward_batch, load_episodes, losses

torch.set_num_threads(1)
BINS = np.array([0.1, 0.29, 0.45, 0.55])
NAMES = ["start", "reaching", "at cube", "grasped", "lifting"]
ALPHA = "runs/scratch_alpha/critic_s{}/checkpoints/refresh_state_84000_steps.pt"


def stored(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def read(critic, episodes):
    tc = TrainConfig(data=["<read>"], frame_every=10, stride_jitter=False, model=critic.config)
    b, o, c = Batcher(tc, episodes), [], []
    critic.model.eval()
    with torch.inference_mode():
        for i in range(0, len(episodes), 16):
            batch = b.build(list(range(i, min(i + 16, len(episodes)))), None, train=False)
            _, _, _, pred = losses(forward_batch(critic.model, batch, tc), batch, tc)
            o.append(batch["progress"])
            c.append(pred.numpy())
    o, c = np.concatenate(o), np.concatenate(c)
    stage = np.digitize(o, BINS)
    parts = [f"MAE {abs(c - o).mean():.3f}"]
    for k, name in enumerate(NAMES):
        m = stage == k
        if m.any():
            parts.append(f"{name} {m.sum()} {o[m].mean():.2f}->{c[m].mean():.2f}")
    return " | ".join(parts)


def main():
    s101, s102 = stored(ALPHA.format(101)), stored(ALPHA.format(102))
    s80 = stored(ALPHA.format(102).replace("84000", "80000"))
    sets = {"agent 101 (last 100)": [e.arrays for e in list(s101["episodes"].values())[-100:]],
            "agent 102 (80-84k)": [e.arrays for k, e in s102["episodes"].items() if k not in s80["episodes"]]}
    for which in sys.argv[1:]:
        if which in ("embedded", "hardened"):
            critic = CompactCritic(checkpoint=None if which == "embedded" else which)
        else:
            critic = CompactCritic()
            critic.model.load_state_dict(stored(which)["critic"])
            critic.weights_changed()
        sets["scripted held-out"] = load_episodes(["data/heldout_lift"], critic.config.image_size)[0]
        print(which)
        for name, eps in sets.items():
            print(f"  {name:22s} {read(critic, eps)}", flush=True)


if __name__ == "__main__":
    main()
