#!/usr/bin/env python
"""Shaping experiment: eval success rate against env steps for sparse, dense, critic and oracle rewards.

    python benchmarks/shaping.py --env Lift --algo sac --rewards sparse dense critic oracle --seeds 0 1 2 \
        --steps 300000 --critic compact --runs runs/shaping --results docs/results/shaping

Each (reward, seed) run trains in ``RUNS/<reward>_s<seed>`` through :func:`policies.sb3.train` with
``resume=True``: re-running the same command skips finished runs and continues killed ones from their
newest checkpoint. ``--report-only`` just aggregates what is on disk, up to the ``--steps`` budget (runs
resumed to a longer one are reported at the budget asked for). ``--prior REPORT.json`` adds the curves of
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from primo_loop.cli import parse_options, run  # noqa: E402
from primo_loop.errors import ConfigError  # noqa: E402

TARGET = 0.8
LATE = 3  # evaluations averaged for the end-of-run success (one 10-episode evaluation is noisy)
EPS = 1e-9  # a mean of (0.9 + 0.5 + 1.0) / 3 is 0.7999999999999999 in floating point, and it reached 0.8
COLORS = {"sparse": "C0", "dense": "C1", "critic": "C2", "oracle": "C3"}  # one colour per reward in every plot
CLEAR = 2.0  # "clearly beats": the per-seed difference exceeds this many standard errors
# the pairs the verdict compares (a minus b), as the report words them: the critic against sparse (the issue's
# target), robosuite's dense reward against sparse (how much this setting rewards shaping at all), the oracle
# against sparse, and the critic against the hand-crafted dense reward
COMPARISONS = (("critic", "sparse", "Critic minus sparse"),
               ("dense", "sparse", "For reference, dense minus sparse (robosuite's hand-crafted shaping)"),
               ("oracle", "sparse", "Oracle minus sparse"),
               ("critic", "dense", "Critic minus dense"))
# options that say where runs and reports live, not how agents train: a prior report may differ in these
BOOKKEEPING = {"rewards", "seeds", "runs", "results", "report_only", "prior", "checkpoint_every"}
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
    """Train (or resume) every (reward, seed) run, except those a prior report already holds. ``report`` is
    called after each run and when training is interrupted, so the curves so far reach the results folder (a
    report can be committed; run folders die with the machine). Returns the last report written (None if none
    was: every run came from a prior)."""
    from benchmarks.shaping_options import training_config_kwargs
    from policies.sb3 import AgentConfig, train

    last = None
    for reward in args.rewards:
        for seed in args.seeds:
            out = Path(args.runs) / f"{reward}_s{seed}"
            if not (out / "eval.csv").exists() and any(prior_curve(p, reward, seed) for p in priors.values()):
                print(f"{reward} seed {seed}: taken from the prior report", flush=True)
                continue
            kwargs = training_config_kwargs(args, reward)  # refresh applies to the critic reward only
            cfg = AgentConfig(**kwargs, reward=reward, steps=args.steps, seed=seed,
                              out=str(out), resume=True, progress_bar=False)
            t0 = time.time()
            try:
                summary = train(cfg)
            except KeyboardInterrupt:
                if report is not None:
                    report()
                    print(f"interrupted: the report in {args.results} holds the curves so far", flush=True)
                raise
            print(f"{reward} seed {seed}: {summary['timesteps']} steps, last eval {summary.get('eval')}, "
                  f"{time.time() - t0:.0f} s", flush=True)
            if report is not None:
                last = report()
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


def success_matrix(run: dict) -> np.ndarray:
    """Success rate per seed (rows) and evaluation (columns); NaN where a seed lacks that evaluation."""
    return np.array([[np.nan if v is None else v for v in run["success"][str(s)]] for s in run["seeds"]],
                    dtype=float)


def mean_curve(run: dict, every_seed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Env steps and the success rate averaged over seeds. Seeds missing an evaluation are left out, or with
    ``every_seed`` the average is NaN there: while some runs are shorter than others (a report of an unfinished
    experiment), the average of the seeds that got that far is not the seed average, and no budget is read from it."""
    matrix = success_matrix(run)
    return np.array(run["steps"], dtype=float), (np.mean if every_seed else np.nanmean)(matrix, axis=0)


def reached(success, target: float = TARGET):
    """``success >= target`` up to float rounding (elementwise on arrays; NaN has not reached it)."""
    return np.asarray(success, dtype=float) >= target - EPS


def first_reaching(run: dict, target: float = TARGET) -> int | None:
    """First evaluated env step at which the success rate averaged over all seeds reaches ``target``."""
    steps, mean = mean_curve(run, every_seed=True)
    hit = np.flatnonzero(reached(mean, target))
    return int(steps[hit[0]]) if hit.size else None


def first_staying(run: dict, target: float = TARGET) -> int | None:
    """First evaluated env step from which the success averaged over all seeds stays at or above ``target`` to
    the end of the run (one lucky evaluation does not count; nor do evaluations only some seeds have)."""
    steps, mean = mean_curve(run, every_seed=True)
    below = np.flatnonzero(~reached(mean, target))
    start = below[-1] + 1 if below.size else 0
    return int(steps[start]) if start < len(steps) else None


def verdict(result: dict) -> dict:
    """The issue's comparison, computed from the curves: does critic shaping reach the target within the step
    budget in which robosuite's dense reward does, and how does it compare with the sparse reward?"""
    runs = result["runs"]
    out: dict = {"target": TARGET}
    shared = shared_evaluations(runs)
    out["compared_to_steps"] = int(shared[-1]) if shared else None
    out["evaluated_to_steps"] = int(max(max(r["steps"]) for r in runs.values())) if runs else None
    for name, r in runs.items():
        mean = mean_curve(r)[1][np.isin(r["steps"], shared)]
        complete = complete_steps(r)
        out[name] = {"steps_to_target": first_reaching(r), "steps_to_stay_at_target": first_staying(r),
                     "every_seed_to_steps": int(complete[-1]) if complete.size else 0,
                     "mean_success_over_evals": round(float(np.mean(mean)), 3) if mean.size else None,
                     "late_mean_success": round(float(np.mean(mean[-LATE:])), 3) if mean.size else None}
    if "dense" in runs and "critic" in runs:
        budget, critic = out["dense"]["steps_to_target"], out["critic"]["steps_to_target"]
        # no answer either way ("pending") while a seed has not been evaluated far enough: a dense seed short
        # of the other runs (no budget yet), or a critic seed short of dense's budget
        within, pending = None, None
        if budget is None:
            pending = "dense" if out["dense"]["every_seed_to_steps"] < out["evaluated_to_steps"] else None
        elif critic is not None and critic <= budget:
            within = True
        elif out["critic"]["every_seed_to_steps"] >= budget:
            within = False
        else:
            pending = "critic"
        out["critic_within_dense_budget"] = within
        if pending:
            out["critic_within_dense_budget_pending"] = pending
    # while some run got further than others, the differences cover only the start of the budget: they are
    # reported, but "clearly beats" is answered only once every run has been evaluated as far
    ragged = out["compared_to_steps"] != out["evaluated_to_steps"]
    for a, b, _ in COMPARISONS:
        if a in runs and b in runs:
            if not shared:
                continue
            diff, se = seed_difference(runs[a], runs[b], shared)
            out[f"{a}_minus_{b}"] = round(diff, 3)
            out[f"{a}_minus_{b}_se"] = None if se is None else round(se, 3)
            out[f"{a}_clearly_beats_{b}"] = None if se is None or ragged else bool(diff > CLEAR * se)
    return out


def complete_steps(run: dict) -> np.ndarray:
    """The env steps at which every seed of ``run`` has an evaluation."""
    steps, mean = mean_curve(run, every_seed=True)
    return steps[~np.isnan(mean)]


def shared_evaluations(runs: dict) -> list:
    """The env steps at which every seed of every run has an evaluation. Means over evaluations are taken over
    these alone: while an experiment is unfinished, a run (or seed) that got further would otherwise be
    averaged over a longer, later and so more successful range than the ones it is compared with."""
    have = [set(complete_steps(r).tolist()) for r in runs.values()]
    return sorted(set.intersection(*have)) if have else []


def seed_difference(a: dict, b: dict, steps: list) -> tuple[float, float | None]:
    """Difference of the per-seed mean success over the evaluations at ``steps`` (a - b) and its standard
    error.

    Each seed's whole curve is one sample, so evaluation noise and seed-to-seed spread both count; the error
    is Welch's, ``sqrt(var_a / n_a + var_b / n_b)`` with sample variances. None with fewer than 2 seeds a side.
    """
    per_seed = [np.nanmean(success_matrix(r)[:, np.isin(r["steps"], steps)], axis=1) for r in (a, b)]
    diff = float(per_seed[0].mean() - per_seed[1].mean())
    if min(len(x) for x in per_seed) < 2:
        return diff, None
    return diff, float(np.sqrt(sum(x.var(ddof=1) / len(x) for x in per_seed)))


PENDING = {  # why critic-within-dense's-budget has no answer yet, by the run that is not far enough
    "critic": "not known yet: some critic seed has not been evaluated up to dense's budget",
    "dense": "not known yet: dense has no budget in the evaluations every seed has, and some dense seed has not "
             "been evaluated as far as other runs",
}


def verdict_lines(v: dict) -> list[str]:
    pct = f"{v['target']:.0%}"
    lines = []
    upto = v.get("compared_to_steps", v.get("evaluated_to_steps"))  # reports from before: no such keys
    if upto != v.get("evaluated_to_steps"):  # an unfinished experiment: some runs got further than others
        lines.append("- Unfinished runs: means over evaluations are taken over those every seed of every run "
                     + (f"has, to {upto} env steps." if upto is not None else "has, and there are none."))
    for name in ("dense", "critic", "oracle", "sparse"):
        if name not in v:
            continue
        hit = v[name]["steps_to_target"]
        upto_all = v[name].get("every_seed_to_steps")  # absent in reports from before
        unfinished = upto_all is not None and upto_all < v.get("evaluated_to_steps", upto_all)
        reach = (f"reaches {pct} at {hit} env steps" if hit is not None
                 else f"has not reached {pct} in the evaluations every seed has (to {upto_all} env steps)"
                 if unfinished else f"never reaches {pct}")
        stay = v[name].get("steps_to_stay_at_target")
        if hit is not None:
            reach += f" (stays there from {stay})" if stay is not None else " (does not stay there)"
        means = ("" if v[name]["mean_success_over_evals"] is None else
                 f"; mean over all evaluations {v[name]['mean_success_over_evals']:.2f}, over the last {LATE} "
                 f"{v[name]['late_mean_success']:.2f}")
        lines.append(f"- `{name}`: seed-averaged success {reach}{means}.")
    if "critic_within_dense_budget" in v:
        w = v["critic_within_dense_budget"]
        unknown = PENDING.get(v.get("critic_within_dense_budget_pending"),
                              "not measurable: dense never reaches the target in this budget")
        answer = unknown if w is None else "yes" if w else "no"
        lines.append(f"- Critic shaping reaches {pct} within dense's budget: {answer}.")
    for a, b, what in COMPARISONS:
        key = f"{a}_minus_{b}"
        if key not in v:
            continue
        line = f"- {what}, mean success over evaluations: {v[key]:+.2f}"
        if v.get(f"{key}_se") is not None:
            beats = v[f"{a}_clearly_beats_{b}"]
            clear = ("not known yet: some run has not been evaluated as far as others" if beats is None
                     else "yes" if beats else "no")
            line += (f" (standard error over seeds {v[f'{key}_se']:.2f}; clearly above {b}, "
                     f"i.e. by more than {CLEAR:g} standard errors: {clear})")
        lines.append(line + ".")
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for reward, r in result["runs"].items():
        steps, mean = mean_curve(r)
        mat = success_matrix(r)
        color = COLORS.get(reward)
        ax.plot(steps, mean, marker="o", ms=3, color=color, label=f"{r['label']} (n={len(r['seeds'])})")
        if len(r["seeds"]) > 1:
            ax.fill_between(steps, np.nanmin(mat, axis=0), np.nanmax(mat, axis=0), color=color, alpha=0.2)
    ax.axhline(TARGET, color="gray", lw=0.8, ls="--")
    st = result.get("setting")
    if st:
        demos = (f", {st['demo_episodes']} scripted demos"
                 + (" (cloned first)" if st.get("bc_steps") else " (replay only)") if st["demo_episodes"] else "")
        n = st.get("algo_kwargs", {}).get("n_steps", 1)
        n_step = f", {n}-step returns" if n != 1 else ""
        ax.set_title(f"{st['algo'].upper()} on {st['env']}: {st['action']} actions{demos}{n_step}, "
                     f"horizon {st['horizon']}", fontsize=9)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bias(result: dict, path: Path) -> None:
    """``critic/oracle_bias`` against env steps, one thin line per seed and the seed mean: a learned reward being
    exploited shows as a bias that climbs while training goes on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    runs = {r["label"]: r for r in result["runs"].values() if "oracle_bias" in r}
    for k, (name, r) in enumerate(runs.items()):
        steps = np.array(r["steps"], dtype=float)
        mat = np.array([[np.nan if v is None else v for v in b] for b in r["oracle_bias"].values()], dtype=float)
        mat = mat[~np.isnan(mat).all(axis=1)]  # runs from before the bias was logged have none
        color = f"C{k + 2}"
        for row in mat:
            ax.plot(steps, row, color=color, lw=0.7, alpha=0.5)
        ax.plot(steps, np.nanmean(mat, axis=0), color=color, lw=2, label=f"{name} (n={len(mat)}, mean)")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("critic - oracle progress\n(last 1,000 queries)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: dict, command: str) -> str:
    peaks = any("q_loss_peak" in r for r in result["runs"].values())
    lines = ["| reward | seeds | env steps | final eval success (per seed) | mean | steps to 80% |"
             + (" largest SAC Q-loss (per seed, at) |" if peaks else ""),
             "|---|---|---|---|---|---|" + ("---|" if peaks else "")]
    for r in result["runs"].values():
        finals = [r["final_success"][str(s)] for s in r["seeds"]]
        hits = [r["steps_to_target"][str(s)] for s in r["seeds"]]
        steps = sorted(set(r["final_steps"].values()))
        line = (f"| {r['label']} | {len(finals)} | {', '.join(map(str, steps))} | "
                f"{', '.join(f'{f:.2f}' for f in finals)} | {np.mean(finals):.2f} | "
                f"{', '.join('not reached' if h is None else str(h) for h in hits)} |")
        if peaks:
            at = [r.get("q_loss_peak", {}).get(str(s)) for s in r["seeds"]]
            line += " " + ", ".join("-" if p is None else f"{p[1]:.3g} ({p[0] // 1000}k)" for p in at) + " |"
        lines.append(line)
    note = ("\n\nLargest SAC Q-loss: the largest mean of `train/critic_loss` (the agent's value function, not the "
            "reward's critic) over one interval between evaluations, and the evaluation ending it."
            if peaks else "")
    return "\n".join(lines) + note + f"\n\nCommand:\n\n```\n{command}\n```\n"


def write_report(result: dict, results: Path) -> str:
    """Write ``shaping.json``, ``shaping.png`` and ``shaping.md`` for an aggregated ``result`` (its command and
    setting already set); the verdict is computed here, from the curves. Returns the markdown."""
    result["verdict"] = verdict(result) if result["runs"] else {}
    (results / "shaping.json").write_text(json.dumps(result, indent=2))
    if result["runs"]:
        plot(result, results / "shaping.png")
    if any("oracle_bias" in r for r in result["runs"].values()):
        plot_bias(result, results / "oracle_bias.png")
    md = table(result, result["command"])
    reused: dict[str, dict[str, list[str]]] = {}  # prior report -> reward -> the seeds taken from it
    for name, r in result["runs"].items():
        for seed, src in r.get("source", {}).items():  # a run's folder, or the report.json it came from
            if src.endswith(".json"):
                reused.setdefault(src, {}).setdefault(name, []).append(seed)
    for path, rewards in reused.items():
        taken = "; ".join(f"{name} seeds {', '.join(seeds)}" for name, seeds in rewards.items())
        md += (f"\nFrom the earlier report `{path}` (trained with the options these rewards read; a longer run is "
               f"read up to this report's budget): {taken}.\n")
    if result["verdict"]:
        md += "\nSummary (from the curves):\n\n" + "\n".join(verdict_lines(result["verdict"])) + "\n"
    (results / "shaping.md").write_text("# Shaping experiment\n\n" + md)
    return md


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
