"""The failure-recovery experiment: success with and without critic-monitored replanning under injected
failures, false alarms on nominal runs, and its report (``scripts/recovery.py`` is its command line).

The reusable part, the executor that replans when the critic reports a failed attempt, is
:class:`policies.recovery.RecoveryExecutor`; this module runs the study with it and writes
``episodes.jsonl`` (resumable), ``recovery.md``, ``recovery.png`` and ``recovery.json``.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policies.recovery import NOMINAL, RecoveryConfig, RecoveryExecutor
from primo_loop.critics.base import capabilities
from primo_loop.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class ExperimentConfig:
    """The recovery experiment: each condition (failure mode or nominal) with and without monitoring.

    Attributes:
        env: task name.
        robot: robosuite robot.
        critic: critic backend (the oracle reads privileged state, so it gets blank frames, no rendering).
        critic_options: options for ``make_critic``.
        critic_on_error: a failed critic query is held (counted) or raised (``CriticInTheLoop(on_critic_error=)``).
        tracker_options: TrackerConfig fields (``terminate`` is forced on for the monitored runs).
        conditions: "nominal" and failure modes of the scripted policy.
        episodes: episodes per condition and arm (seeds ``seed .. seed+episodes-1``, paired across arms).
        seed: first seed.
        horizon: episode length.
        image_size: frame size for the critic.
        recovery: the executor's options.
        out: folder for ``episodes.jsonl`` (appended; a re-run skips the episodes already there).
    """

    env: str = "Lift"
    robot: str = "Panda"
    critic: str = "compact"
    critic_options: dict[str, Any] = field(default_factory=dict)
    critic_on_error: str = "hold"
    tracker_options: dict[str, Any] = field(default_factory=dict)
    conditions: Sequence[str] = (NOMINAL, "drop", "offset_grasp", "push_away")
    episodes: int = 50
    seed: int = 0
    horizon: int = 250
    image_size: int = 128
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    out: str = "docs/results/recovery"


def _episode_key(row: dict[str, Any]) -> tuple[str, bool, int]:
    return row["condition"], bool(row["monitored"]), int(row["seed"])


def read_episodes(path: Path) -> list[dict[str, Any]]:
    """Rows of ``episodes.jsonl`` (a half-written last line from a kill is skipped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("skipping a truncated line in %s", path)
    return rows


def run_experiment(cfg: ExperimentConfig, make_env: Callable[..., Any] | None = None,
                   make_policy: Callable[..., Any] | None = None, critic: Any | None = None,
                   on_episode: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every (condition, monitored, seed) episode not yet in ``OUT/episodes.jsonl``; returns all rows.

    Args:
        cfg: the experiment.
        make_env: ``(task, robot, horizon=, image_size=) -> env`` (default ``envs.make_env``).
        make_policy: ``(env, failure, seed) -> policy`` (default the scripted policy).
        critic: a critic instance instead of building ``cfg.critic`` (tests inject fakes).
        on_episode: called with each new row (progress reporting).
    """
    from primo_loop.cli import writable_dir
    from primo_loop.tracker import TrackerConfig
    from primo_loop.wrappers import CriticInTheLoop

    if make_env is None:
        import envs

        def make_env(task, robot, **kw):
            return envs.make_env(task, robot, **kw)
    if make_policy is None:
        from policies.scripted import ScriptedPolicy

        def make_policy(env, failure, seed):
            return ScriptedPolicy(env, failure=failure, seed=seed)
    if cfg.episodes < 1:
        raise ConfigError(f"Expected `episodes` >= 1, actually: {cfg.episodes}")

    out = writable_dir(cfg.out)
    path = out / "episodes.jsonl"
    rows = read_episodes(path)
    if path.exists() and path.read_text() != "".join(json.dumps(r) + "\n" for r in rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # drop a line cut by a kill
    done = {_episode_key(r) for r in rows}
    tracker_cfg = TrackerConfig.from_options(**{**cfg.tracker_options, "terminate": True})
    if critic is None:
        from primo_loop.critics import make_critic

        critic = make_critic(cfg.critic, **cfg.critic_options)
    blank = not capabilities(critic).needs_frames  # declared by the backend (the oracle reads no frames)
    base = make_env(cfg.env, cfg.robot, horizon=cfg.horizon, image_size=cfg.image_size)
    try:
        render_fn = (lambda: np.zeros((8, 8, 3), dtype=np.uint8)) if blank else None
        monitored_env = CriticInTheLoop(base, critic, config=tracker_cfg, render_fn=render_fn,
                                        on_critic_error=cfg.critic_on_error)
        for condition in cfg.conditions:
            failure = None if condition == NOMINAL else condition
            policy = make_policy(base, failure, cfg.seed)
            for monitored in (False, True):
                executor = RecoveryExecutor(monitored_env if monitored else base, policy, cfg.recovery)
                for seed in range(cfg.seed, cfg.seed + cfg.episodes):
                    if (condition, monitored, seed) in done:
                        continue
                    t0 = time.perf_counter()
                    outcome = executor.run(seed=seed)
                    row = {"condition": condition, "monitored": monitored, "seed": seed, "critic": cfg.critic,
                           **outcome.as_dict(), "wall_s": round(time.perf_counter() - t0, 2)}
                    with path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    rows.append(row)
                    if on_episode:
                        on_episode(row)
    finally:
        base.close()
    return rows


def _rate(xs: Sequence[bool]) -> tuple[float, int, int]:
    return (float(np.mean(xs)) if xs else float("nan")), int(sum(xs)), len(xs)


def summarize(rows: Sequence[dict[str, Any]], conditions: Sequence[str]) -> dict[str, Any]:
    """Per condition: success without / with monitoring, replans, false alarms (nominal: any replan)."""
    out: dict[str, Any] = {}
    for cond in conditions:
        off = [r for r in rows if r["condition"] == cond and not r["monitored"]]
        on = [r for r in rows if r["condition"] == cond and r["monitored"]]
        entry = {
            "success_unmonitored": _rate([r["success"] for r in off]),
            "success_monitored": _rate([r["success"] for r in on]),
            "mean_replans": float(np.mean([r["replans"] for r in on])) if on else float("nan"),
            "episodes_with_replan": _rate([r["replans"] > 0 for r in on]),
        }
        # an alarm before the failure happened is a false alarm too
        early = [r["first_signal_step"] is not None and (r["failure_injected_at"] is None
                                                        or r["first_signal_step"] < r["failure_injected_at"])
                 for r in on]
        entry["false_alarms"] = _rate(early)
        delays = [r["first_signal_step"] - r["failure_injected_at"] for r in on
                  if r["first_signal_step"] is not None and r["failure_injected_at"] is not None
                  and r["first_signal_step"] >= r["failure_injected_at"]]
        entry["detection_delay_steps"] = float(np.median(delays)) if delays else None
        out[cond] = entry
    return out


def report_table(summary: dict[str, Any]) -> str:
    """The summary as a markdown table."""
    def pct(t):
        rate, k, n = t
        return f"{100 * rate:.0f}% ({k}/{n})" if n else "-"

    lines = ["| condition | success, no monitoring | success, critic-monitored | episodes with a replan | "
             "false alarms | median detection delay (steps) |", "|---|---|---|---|---|---|"]
    for cond, e in summary.items():
        delay = "-" if e["detection_delay_steps"] is None else f"{e['detection_delay_steps']:.0f}"
        lines.append(f"| {cond} | {pct(e['success_unmonitored'])} | {pct(e['success_monitored'])} | "
                     f"{pct(e['episodes_with_replan'])} | {pct(e['false_alarms'])} | {delay} |")
    return "\n".join(lines) + "\n"


def report_plot(summary: dict[str, Any], path: Path, title: str = "") -> None:
    """Grouped bars: success without vs with monitoring per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(summary)
    x = np.arange(len(conds))
    off = [summary[c]["success_unmonitored"][0] for c in conds]
    on = [summary[c]["success_monitored"][0] for c in conds]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.bar(x - 0.2, off, 0.4, label="no monitoring")
    ax.bar(x + 0.2, on, 0.4, label="critic-monitored replanning")
    for xi, c in zip(x, conds):
        fa = summary[c]["false_alarms"]
        if fa[2]:
            ax.text(xi + 0.2, min(1.0, (on[list(conds).index(c)] or 0) + 0.02), f"FA {100 * fa[0]:.0f}%",
                    ha="center", fontsize=7)
    ax.set_xticks(x, conds)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("success rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(cfg: ExperimentConfig, rows: Sequence[dict[str, Any]], command: str) -> dict[str, Any]:
    """``recovery.md`` (table + command), ``recovery.png`` and ``recovery.json`` in ``cfg.out``."""
    out = Path(cfg.out)
    rows = [r for r in rows if r["condition"] in cfg.conditions and r["seed"] >= cfg.seed]
    summary = summarize(rows, cfg.conditions)
    table = report_table(summary)
    counts = sorted({n for e in summary.values() for n in (e["success_unmonitored"][2], e["success_monitored"][2]) if n})
    title = (f"{cfg.env}/{cfg.robot}, critic {cfg.critic}, {'/'.join(map(str, counts))} episodes per bar, "
             f"max {cfg.recovery.max_retries} replans")
    report_plot(summary, out / "recovery.png", title)
    (out / "recovery.md").write_text(f"# Failure recovery\n\n{title}\n\n{table}\nCommand:\n\n```\n{command}\n```\n")
    result = {"config": {**asdict(cfg), "conditions": list(cfg.conditions)}, "summary": summary,
              "command": command}
    (out / "recovery.json").write_text(json.dumps(result, indent=2, default=str))
    return result
