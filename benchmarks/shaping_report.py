"""The shaping experiment's report: success curves over seeds, the verdict (reached, stayed, per-seed differences
with their standard errors), the plots and the markdown table (:func:`write_report`). ``benchmarks/shaping.py``
trains the runs and aggregates their curves; this module judges and draws them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
