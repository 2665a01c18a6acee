"""Evaluation reports: the markdown report, side-by-side comparisons of reports, and plots.

:func:`primo_loop.evaluate.evaluate` writes them with :func:`write_report`; ``scripts/eval_critic.py --compare``
puts saved reports side by side with :func:`compare_reports`.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError

logger = logging.getLogger(__name__)


def _failed(split: dict) -> str:
    """The failed-request rate beside the unreadable one, where requests failed."""
    rate = split.get("failed_rate")
    return f" (+{rate:.3f} failed)" if rate else ""


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown document (tables per split and per task/robot)."""
    lines = [f"# Critic evaluation: `{report['critic']}`", ""]
    if report.get("checkpoint"):
        lines.append(f"Checkpoint: `{report['checkpoint']}`  ")
    lines.append(f"Data: {', '.join(f'`{s}`' for s in report['sources'])}  ")
    c = report["config"]
    lines.append(f"Queries every {c['critic_every']} steps, frames every {c['frame_every']}, clip of "
                 f"{c['clip_len']}; failure declared at p >= {c['failure_threshold']} x{c['failure_patience']}.  ")
    td = report.get("train_domain") or {}
    if td.get("tasks"):
        lines.append(f"Training domain: tasks {', '.join(td['tasks'])}; robots {', '.join(td['robots'] or [])}.")
    lines += ["", "Progress on the 0-100 scale. VOC on successful episodes (up to the first full-progress query); "
              "failure-detection delay in queries after the failure event. MRA thr. = threshold mean relative "
              "accuracy, mean over 0.50..0.95 of |p-t|/|t| < 1-thr (the baselines' harnesses); lin. acc. = linear "
              "relative accuracy, 1 - min(1, |p-t|/|t|) (the paper's PRIMO R1 numbers).", "",
              "| split | episodes | queries | MAE | RMSE | MRA thr. | lin. acc. | Acc@5 | Acc@10 | MAE (succ.) | "
              "VOC (succ.) | "
              "fail P | fail R | fail F1 | median delay | unreadable | latency ms | out tokens |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["splits"].items():
        p, ps, fd = s["progress"], s["progress_successful"], s["failure_detection"] or {}
        lines.append(f"| {name} | {s['episodes']} | {s['queries']} | {_fmt(p['mae'])} | {_fmt(p['rmse'])} | "
                     f"{_fmt(p['mra_threshold'], 3)} | {_fmt(p['linear_rel_acc'], 3)} | {_fmt(p['acc@5'], 3)} | "
                     f"{_fmt(p['acc@10'], 3)} | {_fmt(ps['mae'])} | "
                     f"{_fmt(s['voc_successful'], 3)} | {_fmt(fd.get('precision'), 3)} | {_fmt(fd.get('recall'), 3)} | "
                     f"{_fmt(fd.get('f1'), 3)} | {_fmt(fd.get('median_delay'), 1)} | "
                     f"{_fmt(s['unreadable_rate'], 3)}{_failed(s)} | {_fmt(s['latency_ms'], 2)} | "
                     f"{_fmt(s['mean_output_tokens'], 1)} |")
    lines += ["", "## By task and robot", "", "| task/robot | split | episodes | MAE | VOC (succ.) | fail F1 |",
              "|---|---|---|---|---|---|"]
    for k, v in report["by_task_robot"].items():
        lines.append(f"| {k} | {v['split']} | {v['episodes']} | {_fmt(v['mae'])} | {_fmt(v['voc_successful'], 3)} "
                     f"| {_fmt(v['failure_f1'], 3)} |")
    lines += ["", "## Failure detection", "",
              "Episode level: a failed episode flagged at any query is a true positive; a flag in any other episode "
              "is a false positive. Delay in queries after the first query at or after the failure event "
              "(negative: flagged before the labeller's event).", "",
              "| split | variant | TP | FP | FN | TN | precision | recall | F1 | median delay | mean delay | early |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    variants = (("failure_detection", f"p>={c['failure_threshold']} x{c['failure_patience']}, all episodes"),
                ("failure_detection_vs_successes", "same, negatives = successes only"),
                ("failure_detection_patience2", f"p>={c['failure_threshold']} x2 (tracker default)"))
    for name, s in report["splits"].items():
        for key, label in variants:
            fd = s.get(key)
            if not fd:
                continue
            lines.append(f"| {name} | {label} | {fd['tp']} | {fd['fp']} | {fd['fn']} | {fd['tn']} | "
                         f"{_fmt(fd['precision'], 3)} | {_fmt(fd['recall'], 3)} | {_fmt(fd['f1'], 3)} | "
                         f"{_fmt(fd['median_delay'], 1)} | {_fmt(fd['mean_delay'], 2)} | {fd['early']} |")
    lines += ["", "## MAE by oracle-progress bin", "", "| split | " + " | ".join(
        f"{int(b['lo'])}-{int(b['hi'])}" for b in next(iter(report["splits"].values()))["error_by_bin"]) + " |",
              "|---|" + "---|" * 5]
    for name, s in report["splits"].items():
        lines.append(f"| {name} | " + " | ".join(f"{_fmt(b['mae'], 1)} (n={b['n']})" for b in s["error_by_bin"]) + " |")
    skipped = {k: v for k, v in report.get("skipped", {}).items() if v}
    if skipped:
        lines += ["", "Skipped (missing frames or unreadable records): " + ", ".join(
            f"`{k}`: {v}" for k, v in skipped.items())]
    lines += ["", "Plots: `curves_<split>.png` (predicted vs oracle progress), `error_by_bin.png`.", ""]
    return "\n".join(lines)


#: Rows of :func:`metric_table`: label and the path into a split summary (a callable computes the value).
COMPARE_ROWS: tuple[tuple[str, Any], ...] = (
    ("episodes", ("episodes",)),
    ("queries", ("queries",)),
    ("MAE (0-100)", ("progress", "mae")),
    ("Acc@10", ("progress", "acc@10")),
    ("MAE where the oracle says < 40", lambda s: _low_progress(s, "mae")),
    ("mean signed error where the oracle says < 40", lambda s: _low_progress(s, "bias")),
    ("VOC (successful)", ("voc_successful",)),
    ("failure F1", ("failure_detection", "f1")),
    ("median detection delay (queries)", ("failure_detection", "median_delay")),
)


def _low_progress(split: Mapping[str, Any], key: str, below: float = 40.0) -> float | None:
    """``key`` ("mae" or "bias", critic minus oracle) over the queries whose oracle progress is below ``below``:
    where a critic that rates unfinished states as done (the reward an agent can exploit) shows."""
    bins = [b for b in split.get("error_by_bin") or [] if b["hi"] <= below and b["n"] and b.get(key) is not None]
    n = sum(b["n"] for b in bins)
    return sum(b[key] * b["n"] for b in bins) / n if n else None


def _split_metric(split: Mapping[str, Any] | None, path: Any) -> Any:
    if split is None:
        return None
    if callable(path):
        return path(split)
    for key in path:
        split = (split or {}).get(key)
    return split


def metric_table(columns: Mapping[str, Mapping[str, Any] | None], rows: Sequence[tuple[str, Any]] = COMPARE_ROWS
                 ) -> list[str]:
    """A markdown table, one row per metric and one column per split summary (``report["splits"][name]``)."""
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, path in rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(_split_metric(s, path)) for s in columns.values()) + " |")
    return lines


def compare_reports(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Reports of several critics on the same data (``{name: report.json's content}``), side by side per split."""
    if len(reports) < 2:
        raise ConfigError(f"Expected at least two reports to compare, actually: {len(reports)}")
    splits = list(dict.fromkeys(k for r in reports.values() for k in r["splits"]))
    lines = ["# Critics compared: " + " vs ".join(f"`{n}`" for n in reports), ""]
    for name, r in reports.items():
        lines.append(f"- `{name}`: {r['critic']}" + (f", checkpoint `{r['checkpoint']}`" if r.get("checkpoint") else "")
                     + (f"; `{r['command']}`" if r.get("command") else ""))
    lines += ["", "Progress errors on the 0-100 scale; signed error is critic minus oracle (positive: the critic "
              "rates the state as further along than it is).", ""]
    for split in splits:
        lines += [f"## {split}", "", *metric_table({n: r["splits"].get(split) for n, r in reports.items()}), ""]
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def write_report(report: dict[str, Any], results: Sequence[Any], out_dir: str | os.PathLike,
                 cfg: Any) -> Path:
    """Write report.json, report.md and the PNG plots into ``out_dir``.

    ``results`` are the :class:`primo_loop.evaluate.EpisodeResult` of the report, ``cfg`` its
    :class:`primo_loop.evaluate.EvalConfig`.
    """
    from primo_loop.outputs import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.json", json.dumps(_clean(report), indent=1))
    write_text_atomic(out / "report.md", report_markdown(report))
    try:
        plot_curves(results, out, cfg.plot_episodes)
        plot_error_by_bin(report, out / "error_by_bin.png")
    except ImportError as exc:  # matplotlib is in the pinned stack; a bare install may lack it
        logger.warning("no plots: %s", exc)
    return out


def plot_curves(results: Sequence[Any], out: Path, n: int = 6) -> list[Path]:
    """One PNG per split: predicted (and failure probability) vs oracle progress for ``n`` episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for split in sorted({r.split for r in results}):
        group = [r for r in results if r.split == split and len(r.steps) > 1]
        if not group:
            continue
        # a mix: successes and failures, spread over the split
        succ = [r for r in group if r.success]
        fail = [r for r in group if not r.success]
        pick = (succ[: (n + 1) // 2] + fail[: n // 2])
        pick += [r for r in group if r not in pick][: n - len(pick)]
        cols = min(3, len(pick))
        rows = math.ceil(len(pick) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
        for ax, r in zip(axes.flat, pick):
            ax.plot(r.steps, r.target, color="tab:blue", lw=2, label="oracle")
            xs = [s for s, p in zip(r.steps, r.pred) if p is not None]
            ys = [p for p in r.pred if p is not None]
            ax.plot(xs, ys, "o-", color="tab:orange", ms=3, lw=1.5, label="critic")
            fps = [(s, 100 * f) for s, f in zip(r.steps, r.failure_prob) if f is not None]
            if fps:
                ax.plot(*zip(*fps), ":", color="tab:red", lw=1.2, label="failure p (x100)")
            if r.failure_step is not None:
                ax.axvline(r.failure_step, color="tab:red", alpha=0.4, lw=1)
            ax.set_ylim(-5, 105)
            ax.set_title(f"{r.task}/{r.robot} {r.episode_id[-8:]} ({r.outcome})", fontsize=8)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(pick):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7, loc="upper left")
        fig.suptitle(f"predicted vs oracle progress: {split}", fontsize=10)
        fig.tight_layout()
        path = out / f"curves_{split}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_error_by_bin(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars: MAE per oracle-progress bin, one colour per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(report["splits"])
    bins = report["splits"][splits[0]]["error_by_bin"]
    x = np.arange(len(bins))
    w = 0.8 / max(1, len(splits))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, s in enumerate(splits):
        vals = [b["mae"] if b["mae"] is not None and not math.isnan(b["mae"]) else 0.0
                for b in report["splits"][s]["error_by_bin"]]
        ax.bar(x + i * w - 0.4 + w / 2, vals, w, label=s)
    ax.set_xticks(x, [f"{int(b['lo'])}-{int(b['hi'])}" for b in bins])
    ax.set_xlabel("oracle progress bin")
    ax.set_ylabel("MAE (0-100)")
    ax.legend(fontsize=8)
    ax.set_title(f"error by progress bin: {report['critic']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def display_path(path: Any) -> str | None:
    """A checkpoint path for reports: relative to the working directory when inside it (no machine paths)."""
    if not path:
        return None
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
