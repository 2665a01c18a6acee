"""Experiment 15's offline pilot (docs/results/README.md): replay experiment 14's critic-seed-102 refreshes (8
refreshes of 200 steps, 125 new agent episodes each, from the refresh state that run saved at 84k) starting from a
critic, with or without rehearsal, and read the result by stage on episodes it never trained on: experiment 14's
critic seed 101 (an agent that lifts), held-out scripted rollouts, and seed 102's episodes from 80-84k.

    python docs/results/scratch_rehearse/pilot_rehearsal.py none                    # embedded critic, no rehearsal
    python docs/results/scratch_rehearse/pilot_rehearsal.py data/rehearsal_lift     # with rehearsal
    python docs/results/scratch_rehearse/pilot_rehearsal.py none hardened           # hardened critic

Needs runs/scratch_alpha/critic_s10{1,2}/checkpoints/refresh_state_84000_steps.pt, data/rehearsal_lift and
data/heldout_lift (scripts/collect.py --env Lift --robot Panda --episodes 20 --seed 100000 --failure-rate 0.5
--frame-every 10 --out data/heldout_lift). A record of the analysis, not part of the package.
"""
import sys, time, numpy as np, torch
from primo_loop.critics.compact import CompactCritic
from primo_loop.tracker import TrackerConfig
from primo_loop.training.online import CriticRefresher, RefreshConfig, _Episode
from primo_loop.training.compact import TrainConfig, Batcher, forward_batch, losses, load_episodes
torch.set_num_threads(1)
rehearse = sys.argv[1]  # "none" or folder
s102 = torch.load("runs/scratch_alpha/critic_s102/checkpoints/refresh_state_84000_steps.pt", map_location="cpu", weights_only=False)
s101 = torch.load("runs/scratch_alpha/critic_s101/checkpoints/refresh_state_84000_steps.pt", map_location="cpu", weights_only=False)
critic = CompactCritic(checkpoint=sys.argv[2] if len(sys.argv) > 2 else None)
tracker = TrackerConfig(critic_every=10, shaping="progress", terminate=False)
opts = dict(every=10000, seed=102)
if rehearse != "none":
    opts.update(rehearsal_data=rehearse)
ref = CriticRefresher(critic, tracker, RefreshConfig(**opts), buffer_size=1, n_envs=1)
BINS = np.array([0.1, 0.29, 0.45, 0.55]); names = ["start", "reaching", "at cube", "grasped", "lifting"]
tc = TrainConfig(data=["<x>"], batch_episodes=8, queries_per_episode=16, frame_every=10, stride_jitter=False, model=critic.config)
def read(tag, eps):
    m = critic.model; m.eval(); b = Batcher(tc, eps); o, c = [], []
    with torch.inference_mode():
        for i in range(0, len(eps), 16):
            batch = b.build(list(range(i, min(i + 16, len(eps)))), None, train=False)
            _, _, _, pred = losses(forward_batch(m, batch, tc), batch, tc)
            o.append(batch["progress"]); c.append(pred.numpy())
    o, c = np.concatenate(o), np.concatenate(c); st = np.digitize(o, BINS)
    line = f"  {tag:16s} MAE {abs(c-o).mean():.3f} |"
    for k, n in enumerate(names):
        mk = st == k
        if mk.any(): line += f" {n} {mk.sum()} {o[mk].mean():.2f}->{c[mk].mean():.2f} (MAE {abs(c-o)[mk].mean():.2f}) |"
    print(line, flush=True)
agent102 = list(s102["episodes"].items())
train_eps, held102 = agent102[:1000], [e.arrays for _, e in agent102[1000:]]
held101 = [e.arrays for _, e in list(s101["episodes"].items())[-100:]]
scripted, _ = load_episodes(["data/heldout_lift"], critic.config.image_size)
def report(tag):
    print(tag, flush=True)
    read("agent 102 (80-84k)", held102); read("agent 101 (last 100)", held101); read("scripted held-out", scripted)
report("embedded critic")
t0 = time.time()
for r in range(8):
    for k, e in train_eps[125 * r:125 * (r + 1)]:
        ref.episodes[k] = _Episode(e.arrays, e.length)
    st = ref.refresh(np.zeros((1, 1), np.float32))
    print(f"refresh {r+1}: fresh MAE {st['fresh_mae']:.3f} fit {st['fit_mae']:.3f} {st['seconds']} s", flush=True)
report(f"after 8 refreshes, rehearsal={rehearse}")
print("total", round(time.time() - t0), "s")
