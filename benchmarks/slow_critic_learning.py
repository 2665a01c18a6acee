"""Does learning survive a slow critic? The report of issue 32's item 6 runs, side by side.

Reads finished (or still running) SAC run folders and writes ``report.md``, ``report.json`` and ``curves.png``:

* the synchronous run and the asynchronous one (the critic behind a delay): evaluation success against env steps,
  and the registered decision (``docs/results/slow_critic_learning/README.md``): the asynchronous run's mean over
  its last three evaluations is at least the synchronous one's minus ``--margin``, and its best evaluation reaches
  ``--reach`` when the synchronous one's does;
* the teacher-student run: at each refresh, the student's MAE against privileged progress on the agent's fresh
  states (``fresh_mae``: scored before that refresh's fit, on states it was never trained on) beside the
  never-refreshed student's on the same states (``frozen_mae``); the registered decision: ``fresh_mae <
  frozen_mae`` at every refresh from the second on (at the first the two are the same model).

Usage::

    python benchmarks/slow_critic_learning.py --sync runs/slow_sync/critic_s100 --async runs/slow_async/critic_s100 \\
        --cascade runs/slow_cascade --results docs/results/slow_critic_learning
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_page import write_results_page  # noqa: E402
from primo_loop.errors import ConfigError  # noqa: E402

LAST = 3  # evaluations the end-of-run mean covers


def read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of a run folder's CSV as floats; an empty cell is None (not read, never a stand-in value)."""
    import csv

    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: (float(v) if v not in (None, "") else None) for k, v in row.items()} for row in csv.DictReader(f)]


def curve(run: Path) -> list[tuple[int, float]]:
    """``(env steps, success rate)`` of a run's evaluations, in order."""
    rows = read_csv(run / "eval.csv")
    return [(int(r["timesteps"]), r["success_rate"]) for r in rows if r.get("success_rate") is not None]


def summary(points: list[tuple[int, float]]) -> dict:
    """End-of-run mean (last ``LAST`` evaluations), best, final, and how many evaluations there were."""
    if not points:
        return {"evaluations": 0, "last_mean": None, "best": None, "final": None, "final_steps": None}
    values = [v for _, v in points]
    return {"evaluations": len(points), "last_mean": sum(values[-LAST:]) / len(values[-LAST:]),
            "best": max(values), "final": values[-1], "final_steps": points[-1][0]}


def async_decision(sync: dict, slow: dict, margin: float, reach: float) -> dict:
    """The registered rule for the asynchronous run against the synchronous one (None: a run has no evaluations).

    >>> async_decision({"last_mean": 0.6, "best": 0.8}, {"last_mean": 0.4, "best": 0.55}, 0.25, 0.5)["survives"]
    True
    >>> async_decision({"last_mean": 0.6, "best": 0.8}, {"last_mean": 0.3, "best": 0.55}, 0.25, 0.5)["survives"]
    False
    """
    if sync["last_mean"] is None or slow["last_mean"] is None:
        return {"survives": None, "close_enough": None, "reaches": None}
    close = slow["last_mean"] >= sync["last_mean"] - margin - 1e-9
    reaches = slow["best"] >= reach if sync["best"] >= reach else True
    return {"survives": bool(close and reaches), "close_enough": bool(close), "reaches": bool(reaches)}


def cascade_table(run: Path) -> list[dict]:
    """Each teacher refresh's statistics (``refresh.csv``), in order."""
    return read_csv(run / "refresh.csv")


def cascade_decision(rows: list[dict]) -> dict:
    """The registered rule: the refreshed student beats the frozen one on fresh states at every refresh from the
    second on (None when fewer than two refreshes, or a value is missing).

    >>> cascade_decision([{"fresh_mae": .1, "frozen_mae": .1}, {"fresh_mae": .05, "frozen_mae": .09}])["honest"]
    True
    >>> cascade_decision([{"fresh_mae": .1, "frozen_mae": .1}, {"fresh_mae": .09, "frozen_mae": .05}])["honest"]
    False
    """
    later = rows[1:]
    pairs = [(r.get("fresh_mae"), r.get("frozen_mae")) for r in later]
    if not later or any(a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) for a, b in pairs):
        return {"honest": None, "refreshes_compared": len(later)}
    return {"honest": all(a < b for a, b in pairs), "refreshes_compared": len(later)}


def plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from primo_loop.outputs import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in curves.items():
        if points:
            ax.plot([s / 1000 for s, _ in points], [v for _, v in points], marker="o", ms=3, label=name)
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel("eval success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def fmt(x, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def markdown(result: dict) -> str:
    s, a = result["sync"], result["async"]
    lines = ["# Does learning survive a slow critic?", "",
             "Registered runs and decision rules: [README.md](README.md). Curves: [curves.png](curves.png).", "",
             "| run | evaluations | final (at steps) | best | mean of last 3 |", "|---|---|---|---|---|"]
    for name in ("sync", "async", "cascade"):
        r = result[name]
        lines.append(f"| {result['labels'][name]} | {r['evaluations']} | {fmt(r['final'])} ({r['final_steps']}) | "
                     f"{fmt(r['best'])} | {fmt(r['last_mean'])} |")
    d = result["async_decision"]
    verdict = {True: "yes", False: "no", None: "not decided (a run has no evaluations)"}[d["survives"]]
    lines += ["", f"**Learning survives the asynchronous critic (registered rule, margin {result['margin']}, reach "
              f"{result['reach']}): {verdict}.** Mean of the last three evaluations: asynchronous {fmt(a['last_mean'])}"
              f" against synchronous {fmt(s['last_mean'])}.", "",
              "## Teacher and student", "",
              "MAE on the 0-1 scale against privileged progress at the loop's queries in the episodes since the "
              "previous refresh (`fresh_mae`: the student as it was while the agent visited them; `frozen_mae`: the "
              "never-refreshed student on the same queries; `fit_mae`: the student after this refresh's fit, on "
              "the same queries, which its teacher labelled in part).", "",
              "| refresh | env steps | teacher labels (new) | student-teacher MAE before -> after | fresh_mae | "
              "frozen_mae | fit_mae |", "|---|---|---|---|---|---|---|"]
    for r in result["cascade_refreshes"]:
        lines.append(f"| {int(r['refreshes'])} | {int(r['timesteps'])} | "
                     f"{int(r['labels'])} ({int(r['fresh_labels'])}) | "
                     f"{fmt(r.get('teacher_mae_before'), 3)} -> {fmt(r.get('teacher_mae_after'), 3)} | "
                     f"{fmt(r.get('fresh_mae'), 3)} | {fmt(r.get('frozen_mae'), 3)} | {fmt(r.get('fit_mae'), 3)} |")
    c = result["cascade_decision"]
    verdict = {True: "yes", False: "no", None: "not decided (fewer than two refreshes)"}[c["honest"]]
    lines += ["", f"**The teacher keeps its student honest (registered rule: fresh_mae < frozen_mae at every refresh "
              f"from the second on, {c['refreshes_compared']} compared): {verdict}.**", "",
              "Command:", "", "```", result["command"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sync", required=True, help="run folder of the synchronous run")
    p.add_argument("--async", dest="slow", required=True, help="run folder of the asynchronous run")
    p.add_argument("--cascade", required=True, help="run folder of the teacher-student run")
    p.add_argument("--results", required=True, help="folder for report.md, report.json and curves.png")
    p.add_argument("--margin", type=float, default=0.25, help="registered margin on the last-3 mean")
    p.add_argument("--reach", type=float, default=0.5, help="registered success level the best evaluation reaches")
    args = p.parse_args(argv)
    runs = {"sync": Path(args.sync), "async": Path(args.slow), "cascade": Path(args.cascade)}
    missing = [str(r) for r in runs.values() if not (r / "config.json").is_file()]
    if missing:
        raise ConfigError(f"Expected SAC run folders (with config.json), actually missing: {', '.join(missing)}")
    curves = {name: curve(run) for name, run in runs.items()}
    labels = {"sync": "synchronous compact critic", "async": "asynchronous, critic delayed 1 s a batch",
              "cascade": "cascade (compact student, oracle teacher 1 in 10, 1 s)"}
    result = {name: summary(points) for name, points in curves.items()}
    refreshes = cascade_table(runs["cascade"])
    result.update(labels=labels, margin=args.margin, reach=args.reach,
                  async_decision=async_decision(result["sync"], result["async"], args.margin, args.reach),
                  cascade_refreshes=refreshes, cascade_decision=cascade_decision(refreshes),
                  curves={k: v for k, v in curves.items()}, runs={k: str(v) for k, v in runs.items()},
                  command="python benchmarks/slow_critic_learning.py " + " ".join(argv or sys.argv[1:]))
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    plot({labels[k]: v for k, v in curves.items()}, out / "curves.png")
    from primo_loop.outputs import write_text_atomic

    write_text_atomic(out / "report.json", json.dumps(result, indent=1) + "\n")
    write_results_page(out / "report.md", markdown(result), "slow_critic_learning.py")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
