"""Does a SAC run's Q-function know what its demonstrations are worth? Q against the return they collected.

    python scripts/inspect_q.py runs/shaping_nstep/critic_s0                 # the final model
    python scripts/inspect_q.py runs/shaping_nstep/critic_s0 --steps 4000    # a checkpoint
    python scripts/inspect_q.py RUN --source all --out runs/q_check

Loads the model and its replay buffer, and along every complete stored episode compares the learned
Q(s, a) of the action taken, Q(s, pi(s)) of the actor's action, and the discounted return actually collected
from s (a lower bound of the value where the episode hit the time limit, since Q bootstraps past it; see
:func:`policies.demo_sac.value_check`). A Q far below the return at the start of the episodes says the value
has not yet travelled back from the reward (the one-step targets' slowness n-step returns fix); Q(pi) far
above Q(data) on the data's own states says the actor found actions Q over-rates.

Writes ``q_check.png`` (the three, averaged over episodes, against the step in the episode) and
``q_check.json`` to ``--out`` (default: the run folder), and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from primo_loop.cli import run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from policies.demo_sac import DemoSAC, value_check
    from policies.sb3 import run_files
    from primo_loop.cli import writable_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a training run's folder (scripts/train_agent.py --out)")
    p.add_argument("--steps", type=int, help="use the checkpoint at this many env steps [the final model]")
    p.add_argument("--source", default="demos", choices=["demos", "all"],
                   help="the demonstrations, or every complete episode in the main buffer")
    p.add_argument("--out", help="folder for q_check.png and q_check.json [the run folder]")
    args = p.parse_args(argv)
    run_dir = Path(args.run)
    model_path, buffer_path = run_files(run_dir, args.steps)
    if not buffer_path.exists():
        from primo_loop.errors import ConfigError

        raise ConfigError(f"{buffer_path} not found: Q is checked along the replay buffer (SAC runs only)")
    model = DemoSAC.load(model_path, device="cpu")
    model.load_replay_buffer(buffer_path)
    v = value_check(model, args.source)
    mean = {k: np.nanmean(v[k], axis=0) for k in ("q_data", "q_policy", "ret")}
    print(f"{model_path}: {v['episodes']} episodes ({args.source}), gamma {v['gamma']}")
    print("| step in episode | Q(s, a) | Q(s, pi(s)) | return collected |\n|---|---|---|---|")
    for t in range(0, len(mean["ret"]), 10):
        print(f"| {t} | {mean['q_data'][t]:.1f} | {mean['q_policy'][t]:.1f} | {mean['ret'][t]:.1f} |")
    summary = {"model": str(model_path), "source": args.source, "episodes": v["episodes"], "gamma": v["gamma"],
               "start": {k: float(np.mean(v[k][:, 0])) for k in ("q_data", "q_policy", "ret")},
               "policy_above_data": float(np.nanmean(v["q_policy"] > v["q_data"])),
               "mean_by_step": {k: [round(float(x), 3) for x in m] for k, m in mean.items()}}
    print(f"\nat the episodes' start: Q(s, a) {summary['start']['q_data']:.1f}, return "
          f"{summary['start']['ret']:.1f}; Q(s, pi(s)) > Q(s, a) on {summary['policy_above_data']:.0%} of the steps")
    out = writable_dir(args.out or run_dir)
    (out / "q_check.json").write_text(json.dumps(summary, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    t = np.arange(len(mean["ret"]))
    for key, label in (("ret", "return collected"), ("q_data", "Q(s, a)"), ("q_policy", "Q(s, pi(s))")):
        ax.plot(t, mean[key], label=label)
    ax.set_xlabel("step in episode")
    ax.set_ylabel(f"value (gamma {v['gamma']})")
    ax.set_title(f"{run_dir.name} at {model.num_timesteps} env steps: {v['episodes']} episodes ({args.source})",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "q_check.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'q_check.png'} and {out / 'q_check.json'}")
    return 0


if __name__ == "__main__":
    run(main)
