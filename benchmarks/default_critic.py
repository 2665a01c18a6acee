#!/usr/bin/env python
"""The rebuilt default critic against every target of issue 33 item 5, beside the shipped default.

    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/default_critic.py --build runs/default_critic \\
        --out docs/results/default_critic

Reads the evaluation reports that ``scripts/build_default_critic.sh`` wrote under ``BUILD/eval/`` (one folder per
model and held-out set: ``model``, ``model_humanoid``, ``shipped``, ``loto/<task>``), measures inference latency
here (one torch thread, batch 8, warm-up, median of ``--repeats``), and writes ``report.md`` and ``report.json``:
one row per target with its figure, the target, met/missed, and the shipped default's figure on the same held-out
data where it could read it. A figure that is missing (a set not collected, a metric without episodes to compute
it) is null and its row reads "not measured", never met.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCRIPT = "default_critic.py"
# Which formula each metric is (primo_loop/metrics.py, primo_loop/evaluate.py summarize).
FORMULAS = {
    "mae": "mean |critic - oracle| over all queries, progress on 0-100 (metrics.mae)",
    "voc": "Spearman rank correlation of the critic's progress with query order, per successful episode up to its "
           "first query at full progress, mean over episodes (metrics.voc)",
    "f1": "episode-level F1: a failed episode flagged at any query (failure probability >= 0.5, patience 1) is a "
          "true positive, a successful or incomplete one flagged a false positive (metrics.failure_detection)",
    "delay": "queries from the first query at or after the labeller's failure event to the critic's first alarm, "
             "median over detected failures; negative = before the event (metrics.failure_detection)",
    "latency": "wall time of CompactCritic.assess on 8 queries / 8, torch.set_num_threads(1), after warm-up, median "
               "of N repeats, on this machine; the queries are the last 8 of the first in-domain nominal held-out "
               "episode, frames as stored (random 128 px frames of the critic's views when that set is missing or "
               "holds other views)",
}


@dataclass
class Row:
    """One target: what was measured, the bound, whether it holds, and the shipped default's figure."""

    group: str
    target: str
    metric: str
    figure: float | None
    op: str | None = None  # "<=", ">=", or None: reported, no target
    bound: float | None = None
    shipped: float | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.op is None or self.bound is None:
            return None
        if self.figure is None or (isinstance(self.figure, float) and math.isnan(self.figure)):
            return False  # not measured is not met
        return self.figure <= self.bound if self.op == "<=" else self.figure >= self.bound

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


# --------------------------------------------------------------------------------------------- reading

def _num(x: Any) -> float | None:
    """A finite float, or None (a NaN in a report means no data for that metric)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        return None
    return float(x)


def read_report(path: Path) -> dict[str, Any] | None:
    """``path/report.json``, or None if that evaluation was not run (or could not read its data)."""
    f = path / "report.json"
    return json.loads(f.read_text()) if f.is_file() else None


def metric(report: Mapping[str, Any] | None, split: str, name: str) -> float | None:
    """A target's figure from one split of an eval_critic report: mae, voc, f1 or delay (None if absent)."""
    s = (report or {}).get("splits", {}).get(split)
    if s is None:
        return None
    if name == "mae":
        return _num((s.get("progress") or {}).get("mae"))
    if name == "voc":
        return _num(s.get("voc_successful"))
    fd = s.get("failure_detection") or {}
    return _num(fd.get("f1" if name == "f1" else "median_delay"))


def read_build(build: Path) -> dict[str, Any]:
    """Every report of a build: {model: {set: report}}, LOTO reports under ``loto``, and build.json."""
    ev = build / "eval"
    out: dict[str, Any] = {"settings": json.loads((build / "build.json").read_text())
                           if (build / "build.json").is_file() else {}}
    for model in ("model", "model_humanoid", "model_first_view", "shipped"):
        out[model] = {d.name: read_report(d) for d in sorted((ev / model).glob("*")) if d.is_dir()}
    out["loto"] = {d.name: read_report(d) for d in sorted((ev / "loto").glob("*")) if d.is_dir()}
    return out


# --------------------------------------------------------------------------------------------- latency

def measure_latency(critic: Any, queries: Sequence[Any], batch: int = 8, warmup: int = 5, repeats: int = 50,
                    clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Milliseconds per query of ``critic.assess`` on ``batch`` queries: median (and min, max) of ``repeats``
    timed calls after ``warmup`` untimed ones, with one torch thread (restored afterwards)."""
    import torch

    if len(queries) < batch:
        queries = list(queries) * math.ceil(batch / max(1, len(queries)))
    chunk = list(queries[:batch])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(warmup):
            critic.assess(chunk)
        times = []
        for _ in range(repeats):
            t0 = clock()
            critic.assess(chunk)
            times.append(1000.0 * (clock() - t0) / batch)
    finally:
        torch.set_num_threads(threads)
    return {"ms_per_query": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "batch": batch, "repeats": repeats, "warmup": warmup, "threads": 1,
            "load_average_1min": os.getloadavg()[0]}  # other jobs on the machine slow it: say how busy it was


def sample_queries(data: Path | None, size: int = 128, n: int = 8, views: Sequence[str] = ()) -> list[Any]:
    """Queries as the in-loop tracker makes them: from the first episode of dataset ``data`` (its frames, its
    views) when there is one that a critic reading ``views`` can read, else from random frames of ``size`` px per
    view tiling ``views``."""
    import numpy as np

    from primo_loop.types import CriticQuery

    if data is not None and data.is_dir():
        from primo_loop.data.dataset import EpisodeDataset
        from primo_loop.evaluate import EvalConfig, _episode_queries

        ds = EpisodeDataset(data)
        for eid in ds.ids if not views or tuple(views) == ds.views else ():
            ep = ds.load(eid)
            if ep is not None:
                qs = _episode_queries(ep, EvalConfig())[0]
                if qs:
                    return qs[-n:]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, size, size * max(1, len(views)), 3), dtype=np.uint8)
    return [CriticQuery(instruction="pick up the cube and lift it", initial=frames[0], clip=frames[:8],
                        current=frames[7], step=10 * i, views=tuple(views)) for i in range(n)]


# --------------------------------------------------------------------------------------------- targets

def target_rows(b: Mapping[str, Any], latency: Mapping[str, float | None]) -> list[Row]:
    """Every target of issue 33 item 5 as a row, from ``read_build``'s reports and measured latencies."""
    new, hum, old = b.get("model", {}), b.get("model_humanoid", {}), b.get("shipped", {})

    def fig(reports: Mapping[str, Any], set_: str, split: str, name: str) -> float | None:
        return metric(reports.get(set_), split, name)

    rows = []
    for name, op, bound, label in (("mae", "<=", 3.0, "MAE"), ("voc", ">=", 0.99, "VOC (successful episodes)"),
                                   ("f1", ">=", 0.95, "failure F1"),
                                   ("delay", "<=", 1.0, "median detection delay (queries)")):
        rows.append(Row("in-domain", label, name, fig(new, "in_domain", "all", name), op, bound,
                        fig(old, "in_domain", "all", name)))
    look = new.get("in_domain_by_look") or {}
    for split in sorted(look.get("splits", {})):
        rows.append(Row("in-domain", f"MAE, look {split}", "mae", fig(new, "in_domain_by_look", split, "mae"),
                        shipped=fig(old, "in_domain_by_look", split, "mae")))
    robots = new.get("unseen_robots") or {}
    if not robots:
        rows.append(Row("unseen robots", "MAE", "mae", None, "<=", 5.0, note="set not scored"))
    for robot in sorted(robots.get("splits", {})):
        rows.append(Row("unseen robots", f"MAE, {robot}", "mae", fig(new, "unseen_robots", robot, "mae"), "<=", 5.0,
                        fig(old, "unseen_robots", robot, "mae")))
    appearance = "unseen_appearance" in new
    rows.append(Row("unseen appearance", "MAE", "mae", fig(new, "unseen_appearance", "all", "mae"), "<=", 6.0,
                    fig(old, "unseen_appearance", "all", "mae"),
                    "" if appearance else "set not collected (no APPEARANCE in this build)"))
    settings = b.get("settings", {})
    loto_note = (f"side model, {settings['loto_epochs']} epochs (main model: {settings.get('epochs')})"
                 if "loto_epochs" in settings else "side model")
    if not b.get("loto"):
        rows.append(Row("leave one task out", "MAE", "mae", None, "<=", 12.0, note="no side model scored"))
    for task, rep in sorted(b.get("loto", {}).items()):
        rows.append(Row("leave one task out", f"MAE, {task} held out", "mae", metric(rep, task, "mae"), "<=", 12.0,
                        fig(old, "in_domain_by_task", task, "mae"), loto_note))
    rows.append(Row("inference", "ms per query, batch 8, 1 thread", "latency", latency.get("model"), "<=", 3.0,
                    latency.get("shipped")))
    rows.append(Row("humanoid", "zero-shot MAE", "mae", fig(new, "humanoid", "all", "mae"),
                    shipped=fig(old, "humanoid", "all", "mae")))
    rows.append(Row("humanoid", "zero-shot VOC", "voc", fig(new, "humanoid", "all", "voc"),
                    shipped=fig(old, "humanoid", "all", "voc")))
    rows.append(Row("humanoid", "few-shot MAE (humanoid variant)", "mae", fig(hum, "humanoid", "all", "mae"),
                    "<=", 8.0, fig(old, "humanoid", "all", "mae")))
    rows.append(Row("humanoid", "few-shot VOC (humanoid variant)", "voc", fig(hum, "humanoid", "all", "voc"),
                    shipped=fig(old, "humanoid", "all", "voc")))
    first = b.get("model_first_view", {})
    if first:  # the view-set comparison: the same data and budget, the first camera only
        cams = b.get("settings", {}).get("cameras") or ["the first camera"]
        for name, label in (("mae", "MAE"), ("f1", "failure F1")):
            rows.append(Row("views", f"in-domain {label}, {cams[0]} only (side model; main: {' + '.join(cams)})",
                            name, fig(first, "in_domain", "all", name), shipped=fig(old, "in_domain", "all", name),
                            note=f"main model: {_fmt(fig(new, 'in_domain', 'all', name), name)}"))
    base = fig(new, "in_domain", "all", "mae")
    rows.append(Row("humanoid", "humanoid variant's in-domain MAE (costs the arms nothing: <= the main model's)",
                    "mae", fig(hum, "in_domain", "all", "mae"), "<=", base))
    return rows


# --------------------------------------------------------------------------------------------- writing

def _fmt(x: float | None, metric_name: str) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3f}" if metric_name == "voc" or (metric_name == "f1") else f"{x:.2f}"


def latency_note(details: Mapping[str, Any]) -> str:
    """One sentence on how the latency figures were measured (and how busy the machine was)."""
    parts = [f"{name}: median of {d['repeats']} after {d['warmup']} warm-up calls, min {d['min_ms']:.2f} / max "
             f"{d['max_ms']:.2f} ms, load average {d['load_average_1min']:.1f}" if "ms_per_query" in d
             else f"{name}: not measured ({d.get('error', 'skipped')})" for name, d in details.items()]
    return "Latency (" + "; ".join(parts) + ")." if parts else "Latency: not measured."


def render_markdown(rows: Sequence[Row], settings: Mapping[str, Any], views_note: str, command: str) -> str:
    met = [r.met for r in rows if r.met is not None]
    lines = ["# The default critic against issue 33's targets", "",
             f"Written by `{command}`. Held-out sets were collected after training, on seeds training never used.",
             f"Targets met: **{sum(met)} of {len(met)}**.", ""]
    if settings.get("quick"):
        lines += ["**QUICK build: toy scale (a few episodes, a few gradient steps); these figures test the pipeline "
                  "and say nothing about the critic.**", ""]
    lines += ["| group | target | figure | bound | met | shipped default | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        bound = "reported" if r.op is None else (f"{r.op} {_fmt(r.bound, r.metric)}" if r.bound is not None
                                                 else f"{r.op} n/a")
        met_s = "-" if r.met is None else ("**met**" if r.met else ("not measured" if r.figure is None else "missed"))
        lines.append(f"| {r.group} | {r.target} | {_fmt(r.figure, r.metric)} | {bound} | {met_s} | "
                     f"{_fmt(r.shipped, r.metric)} | {r.note} |")
    lines += ["", views_note, "", "Formulas:", ""] + [f"- **{k}**: {v}" for k, v in FORMULAS.items()]
    lines += ["", "Build settings (`build.json`): " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
    return "\n".join(lines)


def views_note(settings: Mapping[str, Any], new_cfg: Mapping[str, Any], old_cfg: Mapping[str, Any]) -> str:
    """What the two models see: a multi-view model and a one-view model read different frames."""
    cams = settings.get("cameras") or []
    text = (f"Views: the rebuilt model was trained on {' + '.join(cams) if cams else 'the single default camera'} "
            f"({new_cfg.get('image_size', '?')} px); the shipped default on one agentview frame "
            f"({old_cfg.get('image_size', '?')} px).")
    if len(cams) > 1:
        text += (" The shipped default's figures are on the same held-out episodes but it reads their multi-view "
                 "frames as one picture it never trained on: a comparison of the two critics as shipped, not of "
                 "their architectures.")
    text += (" Leave-one-task-out: the shipped column is the shipped default on that task's in-domain set; it trained "
             "on Lift, Stack and PickPlaceCan, so for those tasks it is not a held-out task to it.")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True, help="OUT of scripts/build_default_critic.sh")
    p.add_argument("--out", required=True, help="folder for report.md and report.json")
    p.add_argument("--repeats", type=int, default=50, help="timed assess calls per latency figure")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement (its row: not measured)")
    args = p.parse_args(argv)

    from benchmarks.results_page import write_results_page
    from primo_loop.outputs import write_text_atomic

    build = Path(args.build)
    b = read_build(build)
    latency: dict[str, float | None] = {"model": None, "shipped": None}
    details: dict[str, Any] = {}
    cfgs: dict[str, dict[str, Any]] = {}
    from primo_loop.critics import make_critic

    data = build / "data" / "eval_in_domain_nominal"
    for name, opts in (("model", {"checkpoint": str(build / "model")}), ("shipped", {})):
        if name == "model" and not (build / "model" / "config.json").is_file():
            continue
        critic = make_critic("compact", **opts)
        cfgs[name] = asdict(critic.config) if hasattr(critic.config, "__dataclass_fields__") else {}
        if args.no_latency:
            continue
        try:
            queries = sample_queries(data if data.is_dir() else None, views=critic.config.views)
            details[name] = measure_latency(critic, queries, repeats=args.repeats)
            latency[name] = details[name]["ms_per_query"]
        except Exception as exc:  # noqa: BLE001 - e.g. the shipped one-view model refusing multi-view frames
            details[name] = {"error": f"{type(exc).__name__}: {exc}"}
    rows = target_rows(b, latency)
    note = views_note(b["settings"], cfgs.get("model", {}), cfgs.get("shipped", {})) + "\n\n" + latency_note(details)
    command = f"python benchmarks/{SCRIPT} --build {args.build} --out {args.out}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"build": str(build), "settings": b["settings"], "rows": [r.to_dict() for r in rows],
              "met": sum(bool(r.met) for r in rows), "targets": sum(r.met is not None for r in rows),
              "latency": details, "views": note, "formulas": FORMULAS, "command": command}
    write_text_atomic(out / "report.json", json.dumps(report, indent=1, default=str))
    write_results_page(out / "report.md", render_markdown(rows, b["settings"], note, command), SCRIPT)
    print(render_markdown(rows, b["settings"], note, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
