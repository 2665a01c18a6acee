#!/usr/bin/env python
"""Shaping experiment: eval success rate against env steps for sparse, dense, critic and oracle rewards.

    python benchmarks/shaping.py --env Lift --algo sac --rewards sparse dense critic oracle --seeds 0 1 2 \
        --steps 300000 --critic compact --runs runs/shaping --results docs/results/shaping

Each (reward, seed) run trains in ``RUNS/<reward>_s<seed>`` through :func:`policies.sb3.train` with
``resume=True``: re-running the same command skips finished runs and continues killed ones from their
newest checkpoint (``--ray auto``: the runs as Ray tasks on a cluster, benchmarks/sweep.py). ``--report-only``
just aggregates what is on disk, up to the ``--steps`` budget (runs resumed to a longer one are reported at
the budget asked for). ``--prior REPORT.json`` adds the curves of
an earlier report for the (reward, seed) runs that are not on disk, so a committed report can be extended with
more seeds without its run folders, or a critic variant compared with the sparse and dense runs it did not
change: a prior's curves of a reward are used only when every option that reward's training reads is the same
(a prior trained for more steps lends its curves up to ``--steps``).
Writes ``RESULTS/shaping.png`` (mean success over seeds, min-max band), ``RESULTS/shaping.md`` (table + the
command) and ``RESULTS/shaping.json``, after every run and when training is interrupted: run folders are lost
with the machine, a committed report is not (it lends its curves to later commands through ``--prior``).
``--rewrite REPORT.json`` redoes those three from the curves a report holds, in place (the runs behind a
committed report are usually gone; the analysis needs only its curves).
Evaluation uses the task's own success (``info["is_success"]``) in a separate env with no critic.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.shaping_report import EPS, TARGET, reached, write_report  # noqa: E402
from primo_loop.cli import parse_options, run  # noqa: E402
from primo_loop.errors import ConfigError  # noqa: E402

# options that say where runs and reports live, not how agents train: a prior report may differ in these
BOOKKEEPING = {"rewards", "seeds", "runs", "results", "report_only", "prior", "checkpoint_every", "ray",
               "ray_task_cpus", "ray_task_gpus"}
KEY_VALUE_LISTS = ("set", "critic_option", "tracker_option", "refresh_option")  # order-free: compared as dicts
# options only some rewards read: sparse and dense runs build no critic and no tracker; the oracle reward builds
# the oracle critic (given --critic-option) whatever --critic names
CRITIC_ONLY = {"critic", "refresh_every", "refresh_option"}  # online refresh trains the critic reward's critic
REPORT_SCALARS = ("train/critic_loss", "critic/oracle_bias")  # what the report reads from a run's TensorBoard logs
SHAPING_ONLY = {"critic_option", "critic_every", "critic_weight", "shaping", "tracker_option"}


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.shaping_options import add_training_arguments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_arguments(p)
    p.add_argument("--rewards", nargs="+", default=["sparse", "dense", "critic", "oracle"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--runs", default="runs/shaping", help="folder of the training runs")
    p.add_argument("--results", default="docs/results/shaping", help="folder of the plot and table")
    p.add_argument("--report-only", action="store_true", help="aggregate existing runs, train nothing")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="train each (reward, seed) run as a Ray task: auto (the cluster this machine joined), local, "
                        "or HOST:PORT; --runs must be a folder every node sees (docs/cluster.md)")
    p.add_argument("--ray-task-cpus", type=float, default=2.0, metavar="N",
                   help="CPUs each run declares (about --workers + 1)")
    p.add_argument("--ray-task-gpus", type=float, default=0.0, metavar="N", help="GPUs each run declares")
    p.add_argument("--rewrite", metavar="REPORT.json",
                   help="rewrite a report (table, verdict, plot) from the curves its shaping.json holds, in place; "
                        "trains nothing and ignores the other options")
    p.add_argument("--prior", action="append", default=[], metavar="REPORT.json",
                   help="an earlier shaping.json: its curves of the rewards it trained with this command's "
                        "options (and for at least --steps) stand in for the (reward, seed) runs missing from --runs")
    return p


def training_options(args: argparse.Namespace) -> dict:
    """Every option that changes what an agent learns (all but where runs and reports are kept)."""
    return {k: (parse_options(v) if k in KEY_VALUE_LISTS else v) for k, v in vars(args).items()
            if k not in BOOKKEEPING}


def reward_options(reward: str, options: dict) -> dict:
    """The training options a ``reward``'s runs actually read (a sparse run is the same whatever the critic)."""
    from policies.sb3 import CRITIC_REWARDS

    unread = (set() if reward == "critic" else CRITIC_ONLY) | (set() if reward in CRITIC_REWARDS else SHAPING_ONLY)
    return {k: v for k, v in options.items() if k not in unread}


def same_option(key: str, theirs, mine) -> bool:
    """Whether a prior's training option lets its curves stand in for ours. Its step budget may be longer than
    ours, since its curves are then cut at ours (as runs resumed past the budget are); a shorter one ends early."""
    return theirs >= mine if key == "steps" else theirs == mine


def load_prior(path: str, args: argparse.Namespace) -> dict:
    """An earlier report whose curves may stand in for missing runs. Its curves of a reward are usable (listed
    under ``"usable"``) when the command it records trained that reward with this command's options; a prior
    usable for none of ``--rewards`` is refused."""
    try:
        prior = json.loads(Path(path).read_text())
        command = shlex.split(prior["command"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--prior {path}: not a readable shaping report with its command ({exc})") from exc
    try:
        old = build_parser().parse_args(command[2:])
    except SystemExit as exc:  # argparse has printed why
        raise ConfigError(f"--prior {path}: its recorded command does not parse: {prior['command']}") from exc
    mine, theirs = training_options(args), training_options(old)
    runs = prior.get("runs")
    lent = list(runs) if isinstance(runs, dict) else []  # the rewards the prior holds curves for
    differ = {reward: [f"--{k.replace('_', '-')} {theirs[k]!r} there, {mine[k]!r} here"
                       for k in reward_options(reward, mine) if not same_option(k, theirs[k], mine[k])]
              for reward in dict.fromkeys([*args.rewards, *lent])}
    usable = [r for r in args.rewards if not differ[r]]
    if not usable:
        reasons = sorted({d for r in args.rewards for d in differ[r]})
        unnamed = [r for r in lent if r not in args.rewards and not differ[r]]
        hint = f" (it could lend {', '.join(unnamed)}: name them in --rewards)" if unnamed else ""
        raise ConfigError(f"--prior {path} was trained with other options: " + "; ".join(reasons) + hint)
    return {**prior, "usable": usable}


def prior_curve(prior: dict, reward: str, seed: int) -> tuple[list[dict], int | None] | None:
    """A seed's evaluation rows and finished step count from a report, as ``read_eval`` would give them."""
    run = prior.get("runs", {}).get(reward)
    if run is None or seed not in run["seeds"] or reward not in prior["usable"]:
        return None
    rows = [{"timesteps": float(t), "success_rate": v}
            for t, v in zip(run["steps"], run["success"][str(seed)]) if v is not None]
    return rows, run.get("finished_steps", {}).get(str(seed))


def label(reward: str, args: argparse.Namespace) -> str:
    """Legend name: the critic's backend and options, the shaping form when it is not the default, and any
    tracker options (``terminate=false``)."""
    if reward not in ("critic", "oracle"):
        return reward
    parts = ([args.critic, *args.critic_option] if reward == "critic" else []) + (
        [f"{args.shaping} shaping"] if args.shaping != "delta" else []) + list(args.tracker_option) + (
        [f"refreshed every {args.refresh_every}"] if reward == "critic" and args.refresh_every else [])
    return f"{reward} ({', '.join(parts)})" if parts else reward


def within_budget(rows: list[dict], finished: int | None, steps: int) -> tuple[list[dict], int | None]:
    """A run's evaluations up to the ``--steps`` budget: a run since resumed to a longer budget is reported at
    the one asked for (its later evaluations left out, and it counts as finished there)."""
    return ([r for r in rows if r["timesteps"] <= steps + EPS],
            None if finished is None else min(int(finished), steps))


def seed_curve(args: argparse.Namespace, priors: dict[str, dict], reward: str, seed: int):
    """(evaluation rows, finished env steps, where they came from) of one run within the ``--steps`` budget:
    its folder under ``--runs`` when it has evaluations, else the first ``--prior`` report that holds it;
    None when neither does."""
    from policies.sb3 import read_eval

    folder = Path(args.runs) / f"{reward}_s{seed}"
    rows = read_eval(folder / "eval.csv")
    if rows:
        done = folder / "done.json"
        finished = json.loads(done.read_text())["timesteps"] if done.exists() else None
        if finished is not None and finished < rows[-1]["timesteps"]:
            # left by an earlier budget: a resume to a longer one was killed before its end. train() now removes
            # the file when it resumes past it; run folders written by older code (experiment 14's) still hold one
            finished = None
        rows, finished = within_budget(rows, finished, args.steps)
        return (rows, finished, str(folder)) if rows else None
    for path, prior in priors.items():
        found = prior_curve(prior, reward, seed)
        if found and found[0]:
            rows, finished = within_budget(*found, args.steps)
            if rows:
                return rows, finished, path
    return None


def run_all(args: argparse.Namespace, priors: dict[str, dict],
            report: Callable[[], str] | None = None) -> str | None:
    """Train (or resume) every (reward, seed) run, except those a prior report already holds, through
    :func:`benchmarks.sweep.run_sweep` (here, or one Ray task each with ``--ray``). ``report`` is called after
    each run and when training is interrupted, so the curves so far reach the results folder (a report can be
    committed; run folders die with the machine). Returns the last report written (None if none was: every run
    came from a prior)."""
    from benchmarks.shaping_options import training_config_kwargs
    from benchmarks.sweep import SweepRun, run_sweep
    from policies.sb3 import AgentConfig, train

    runs = []
    for reward in args.rewards:
        for seed in args.seeds:
            out = Path(args.runs) / f"{reward}_s{seed}"
            if not (out / "eval.csv").exists() and any(prior_curve(p, reward, seed) for p in priors.values()):
                print(f"{reward} seed {seed}: taken from the prior report", flush=True)
                continue
            kwargs = training_config_kwargs(args, reward)  # refresh applies to the critic reward only
            runs.append(SweepRun(f"{reward} seed {seed}", AgentConfig(
                **kwargs, reward=reward, steps=args.steps, seed=seed, out=str(out), resume=True, progress_bar=False),
                out=str(out)))
    last = None
    t0 = time.time()

    def finished(run: SweepRun, summary: dict) -> None:
        nonlocal last
        print(f"{run.name}: {summary['timesteps']} steps, last eval {summary.get('eval')}, "
              f"{time.time() - t0:.0f} s since the sweep began", flush=True)
        if report is not None:
            last = report()

    def interrupted() -> None:
        if report is not None:
            report()
            print(f"interrupted: the report in {args.results} holds the curves so far", flush=True)

    ray = None
    if getattr(args, "ray", None):
        from primo_loop.executors import RayOptions

        ray = RayOptions(args.ray, num_cpus=args.ray_task_cpus, num_gpus=args.ray_task_gpus)
    run_sweep(runs, train, ray=ray, on_finished=finished, on_interrupt=interrupted)
    return last


def aggregate(args: argparse.Namespace, priors: dict[str, dict]) -> dict:
    from primo_loop.tblog import read_scalars

    out: dict = {"target": TARGET, "runs": {}}
    for reward in args.rewards:
        found = {seed: seed_curve(args, priors, reward, seed) for seed in args.seeds}
        found = {s: f for s, f in found.items() if f}
        if not found:
            continue
        curves = {s: f[0] for s, f in found.items()}
        steps = sorted({r["timesteps"] for c in curves.values() for r in c})
        per_seed = {s: {r["timesteps"]: r["success_rate"] for r in c} for s, c in curves.items()}
        first_hit = {s: next((r["timesteps"] for r in c if reached(r["success_rate"])), None)
                     for s, c in curves.items()}
        done = {s: f[1] for s, f in found.items()}
        out["runs"][reward] = {
            "label": label(reward, args), "seeds": sorted(curves), "steps": steps,
            "success": {str(s): [per_seed[s].get(t) for t in steps] for s in sorted(curves)},
            "final_success": {str(s): c[-1]["success_rate"] for s, c in curves.items()},
            "final_steps": {str(s): int(c[-1]["timesteps"]) for s, c in curves.items()},
            "steps_to_target": {str(s): (int(v) if v is not None else None) for s, v in first_hit.items()},
            "finished_steps": {str(s): v for s, v in done.items()},
            "source": {str(s): found[s][2] for s in sorted(found)},
        }
        # each run folder's event files are read once, for every scalar the report takes from them
        scalars = {s: {} if f[2].endswith(".json") else read_scalars(f[2], REPORT_SCALARS)
                   for s, f in found.items()}
        peaks = {str(s): q_loss_peak(found[s][2], priors, reward, s, steps, scalars[s]) for s in sorted(found)}
        if any(p is not None for p in peaks.values()):
            out["runs"][reward]["q_loss_peak"] = peaks
        if reward in ("critic", "oracle"):
            bias = {str(s): oracle_bias(found[s][2], priors, reward, s, steps, scalars[s]) for s in sorted(found)}
            if any(any(v is not None for v in b) for b in bias.values()):
                out["runs"][reward]["oracle_bias"] = bias
    return out


def oracle_bias(source: str, priors: dict[str, dict], reward: str, seed: int, steps: list,
                scalars: dict[str, dict[int, float]]) -> list:
    """A run's ``critic/oracle_bias`` (critic minus oracle progress over its last 1,000 queries) at each evaluation
    step: from its TensorBoard ``scalars``, or from the prior report it came from (None where neither has it)."""
    from primo_loop.tblog import value_at

    if source.endswith(".json"):
        run = priors.get(source, {}).get("runs", {}).get(reward, {})
        series = {int(t): v for t, v in zip(run.get("steps", []), run.get("oracle_bias", {}).get(str(seed), []))
                  if v is not None}
    else:
        series = scalars.get("critic/oracle_bias", {})
    return [None if (v := value_at(series, int(t))) is None else round(v, 4) for t in steps]


def q_loss_peak(source: str, priors: dict[str, dict], reward: str, seed: int, steps: list,
                scalars: dict[str, dict[int, float]]) -> list | None:
    """``[evaluation step, loss]``: the largest mean of SAC's Q-function loss (``train/critic_loss``) over one
    interval between evaluations, within the budget (None without that scalar). A value function that diverges
    shows here as a loss orders of magnitude above the runs that learn."""
    from primo_loop.tblog import interval_means

    if source.endswith(".json"):
        return priors.get(source, {}).get("runs", {}).get(reward, {}).get("q_loss_peak", {}).get(str(seed))
    series = scalars.get("train/critic_loss", {})
    means = [(int(t), m) for t, m in zip(steps, interval_means(series, [int(t) for t in steps])) if m is not None]
    if not means:
        return None
    step, loss = max(means, key=lambda tm: tm[1])
    return [step, float(f"{loss:.4g}")]


def rewrite(path: str) -> int:
    """Rewrite a report from the curves its ``shaping.json`` holds, with this version's verdict and table: the
    runs behind a committed report are often gone, and its numbers are all the analysis needs."""
    try:
        result = json.loads(Path(path).read_text())
        if not isinstance(result.get("runs"), dict) or not isinstance(result.get("command"), str):
            raise ValueError("no runs and command")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"--rewrite {path}: not a readable shaping report with its runs and command ({exc})") \
            from exc
    print(write_report(result, Path(path).parent))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rewrite:
        return rewrite(args.rewrite)
    from benchmarks.shaping_options import training_config_kwargs
    from primo_loop.cli import writable_dir

    results = writable_dir(args.results)
    priors = {path: load_prior(path, args) for path in args.prior}

    def report() -> str:
        result = aggregate(args, priors)
        # the command that trains (re-running it resumes; --report-only only rewrites the report)
        result["command"] = "python benchmarks/shaping.py " + shlex.join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only")
        result["setting"] = {k: getattr(args, k) for k in (
            "env", "algo", "action", "demo_episodes", "demo_fraction", "bc_steps", "bc_regularize", "horizon",
            "steps", "critic", "critic_every", "critic_weight", "shaping", "tracker_option", "refresh_every",
            "refresh_option")}
        result["setting"]["algo_kwargs"] = training_config_kwargs(args, "sparse")["algo_kwargs"]
        return write_report(result, results)

    written = None if args.report_only else run_all(args, priors, report)
    print(written if written is not None else report())
    return 0


if __name__ == "__main__":
    run(main)
