"""Run a policy with the critic in the loop and record what happened, step by step.

Env-agnostic: it needs a :class:`primo_loop.wrappers.CriticInTheLoop` and a policy with
``reset()`` and ``act(obs)``. ``scripts/rollout.py`` composes it with the robosuite envs.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from primo_loop.wrappers import CriticInTheLoop


class Policy(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: Any) -> np.ndarray: ...


@dataclass
class EpisodeRecord:
    """Everything one episode produced: per-step rows, the frames the critic saw, a summary."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def oracle(self) -> list[float]:
        return [r["oracle_progress"] for r in self.rows]

    @property
    def critic_points(self) -> tuple[list[int], list[float | None], list[float | None]]:
        q = [r for r in self.rows if r["queried"]]
        return [r["step"] for r in q], [r["critic_progress"] for r in q], [r["failure_prob"] for r in q]


def _f(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def run_episode(env: CriticInTheLoop, policy: Policy, seed: int | None = None, stop_after_success: int | None = 20,
                on_step: Callable[[int], None] | None = None) -> EpisodeRecord:
    """Run one episode until the env or the critic ends it, or success has held for ``stop_after_success`` steps.

    The step-0 row is the reset (the critic's baseline query). A query whose answer could not be read, or whose
    call failed, is null in its row (``critic_progress``; ``critic_verdict`` says which) and is counted apart
    (``critic_unreadable``, ``critic_failed``); critic-vs-oracle MAE is over the read queries only, on the 0-100
    scale.
    """
    tracker = env.tracker
    queries0, unreadable0, errors0 = tracker.stats.queries, tracker.stats.unreadable, tracker.stats.errors
    obs, info = env.reset(seed=seed)
    policy.reset()
    rec = EpisodeRecord()
    rec.rows.append(_row(0, info, None, None, False, False, _said(env, info)))
    t0 = time.perf_counter()
    success_at, held, step, terminated, truncated = None, 0, 0, False, False
    ended_by = None
    while True:
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        step += 1
        rec.rows.append(_row(step, info, info.get("env/reward"), reward, terminated, truncated, _said(env, info)))
        if on_step:
            on_step(step)
        held = held + 1 if info.get("is_success") else 0
        if held and success_at is None:
            success_at = step
        if terminated or truncated:
            ended_by = info.get("critic/terminated_reason") or ("env_terminated" if terminated else "time_limit")
            break
        if stop_after_success is not None and held > stop_after_success:
            ended_by = "success_hold"
            break
    wall = time.perf_counter() - t0
    rec.frames, rec.frame_steps = list(tracker.frames), list(tracker.frame_steps)
    pairs = [(r["critic_progress"], r["oracle_progress"]) for r in rec.rows
             if r["queried"] and r["critic_progress"] is not None]
    lat = [r["critic_latency_s"] for r in rec.rows if r["queried"]]
    rec.summary = {
        "success": bool(rec.rows[-1]["is_success"]),
        "ever_success": success_at is not None,
        "first_success_step": success_at,
        "steps": step,
        "ended_by": ended_by,
        "termination_reason": info.get("critic/terminated_reason"),
        "critic_vs_oracle_mae": (float(np.mean([abs(c - o) for c, o in pairs])) * 100 if pairs else None),
        "final_critic_progress": next((c for c, _ in reversed(pairs)), None),
        "final_oracle_progress": rec.rows[-1]["oracle_progress"],
        "max_oracle_progress": max((r["oracle_progress"] for r in rec.rows if r["oracle_progress"] is not None),
                                   default=None),
        "steps_per_s": step / wall if wall > 0 else None,
        "critic_queries": tracker.stats.queries - queries0,
        "critic_unreadable": tracker.stats.unreadable - unreadable0,
        "critic_failed": tracker.stats.errors - errors0,  # queries whose critic call failed (held or short-circuited)
        "critic_read": len(pairs),
        "critic_cache_hit_rate": _f((getattr(env.critic, "stats", None) or {}).get("cache_hit_rate")),
        "critic_latency_s_mean": float(np.mean(lat)) if lat else None,
        "frames_rendered": len(rec.frames),
        "shaped_return": float(sum(r["shaped_reward"] or 0.0 for r in rec.rows)),
        "env_return": float(sum(r["env_reward"] or 0.0 for r in rec.rows)),
    }
    return rec


def _said(env: CriticInTheLoop, info: dict[str, Any]) -> Any:
    """The verdict of this step's query when the critic keeps what its model said (VLM critics' ``last_verdicts``,
    one per call in a single env), else None."""
    last = getattr(env.critic, "last_verdicts", None)
    return last[0] if info.get("critic/queried") and last and len(last) == 1 else None


def _row(step: int, info: dict[str, Any], env_reward: Any, shaped: Any, terminated: bool, truncated: bool,
         said: Any = None) -> dict:
    # The critic's numbers only where this step's verdict was read: the tracker holds the last good value through
    # an unreadable or failed query, and logging that would pass an old answer off as a new one.
    read = bool(info.get("critic/queried")) and info.get("critic/verdict", "read") == "read"
    return {
        "step": step,
        "env_reward": _f(env_reward),
        "shaped_reward": _f(shaped),
        "critic_progress": _f(info.get("critic/progress")) if read else None,
        "critic_verdict": info.get("critic/verdict") if info.get("critic/queried") else None,
        "critic_phi": _f(info.get("critic/phi")),
        "oracle_progress": _f(info.get("oracle/progress")),
        "oracle_failed": bool(info.get("oracle/failed", False)),
        "failure_prob": _f(info.get("critic/failure_prob")) if read else None,
        "queried": bool(info.get("critic/queried", False)),
        "critic_latency_s": _f(info.get("critic/latency_s")),
        "is_success": bool(info.get("is_success", False)),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "reason": info.get("critic/terminated_reason"),
        "critic_raw": getattr(said, "raw", None),  # a VLM critic's answer text and reasoning at its query
        "critic_reasoning": getattr(said, "reasoning", None),
    }


def write_episode(rec: EpisodeRecord, out_dir: str | Path, index: int, *, horizon: int | None = None, title: str = "",
                  instruction: str = "", fps: float = 10.0) -> dict[str, Path]:
    """Write ``episode_NNN.jsonl`` and ``episode_NNN.mp4`` (annotated: see :mod:`primo_loop.viz`) for one episode.

    ``horizon`` sets the plot's x range (default: the episode's length, so the curves fill the strip);
    ``title`` and ``instruction`` head every frame.
    """
    from primo_loop.data.media import write_video
    from primo_loop.outputs import write_text_atomic
    from primo_loop.viz import annotate_frames, outcome_banners

    out_dir = Path(out_dir)
    stem = f"episode_{index:03d}"
    log_path = write_text_atomic(out_dir / f"{stem}.jsonl", "".join(json.dumps(r) + "\n" for r in rec.rows))
    steps, critic, fail = rec.critic_points
    end = rec.rows[-1] if rec.rows[-1]["reason"] else None
    frames = annotate_frames(rec.frames, rec.frame_steps, horizon=horizon or rec.rows[-1]["step"], oracle=rec.oracle,
                             critic_steps=steps, critic=critic, failure_prob=fail, title=title,
                             instruction=instruction, banners=outcome_banners(rec.rows),
                             end_step=end["step"] if end else None)
    video = write_video(out_dir / f"{stem}.mp4", np.stack(frames), fps=fps)
    return {"log": log_path, "video": video}


def read_episode_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an ``episode_NNN.jsonl`` written by :func:`write_episode`."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def compare_rollouts(folders: dict[str, str | Path], out: str | Path | None = None) -> dict[str, Any]:
    """Several critics on the same episodes: rollout folders of one policy, seeds and horizon that differ only
    in the critic (with the critic's terminations off, so every run sees the same states). Returns each
    critic's per-episode critic-vs-oracle MAE and, with ``out``, plots every episode's oracle progress and
    each critic's answers.

    Raises:
        ConfigError: fewer than two folders, a folder without episode logs, or runs whose oracle progress
            differs (they did not see the same episodes, so the comparison would mean nothing).
    """
    from primo_loop.errors import ConfigError

    if len(folders) < 2:
        raise ConfigError(f"Expected at least two rollout folders to compare, actually: {len(folders)}")
    logs = {}
    for name, folder in folders.items():
        paths = sorted(Path(folder).glob("episode_*.jsonl"))
        if not paths:
            raise ConfigError(f"{folder}: no episode_*.jsonl logs (a --out folder of scripts/rollout.py)")
        logs[name] = [read_episode_log(p) for p in paths]
    (first, ref), *rest = logs.items()
    for name, episodes in rest:
        if len(episodes) != len(ref) or any([r["oracle_progress"] for r in a] != [r["oracle_progress"] for r in b]
                                            for a, b in zip(ref, episodes)):
            raise ConfigError(f"{folders[first]} and {folders[name]} did not roll out the same episodes (their "
                              "oracle progress differs): compare runs of one policy, seeds and horizon, with the "
                              "critic's terminations off (--tracker-option terminate=false)")
    result: dict[str, Any] = {"folders": {n: str(f) for n, f in folders.items()}, "episodes": len(ref), "mae": {}}
    for name, episodes in logs.items():
        result["mae"][name] = [float(np.mean([abs(r["critic_progress"] - r["oracle_progress"]) * 100 for r in ep
                                              if r["queried"] and r["critic_progress"] is not None] or [math.nan]))
                               for ep in episodes]
    if out is not None:
        result["plot"] = str(_plot_compared(logs, Path(out)))
    return result


def _plot_compared(logs: dict[str, list[list[dict[str, Any]]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = next(iter(logs.values()))
    fig, axes = plt.subplots(1, len(ref), figsize=(3.6 * len(ref), 3.0), sharey=True, squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.plot([r["step"] for r in ref[i]], [100 * r["oracle_progress"] for r in ref[i]], color="black",
                lw=2, label="oracle")
        for k, (name, episodes) in enumerate(logs.items()):
            q = [r for r in episodes[i] if r["queried"] and r["critic_progress"] is not None]
            ax.plot([r["step"] for r in q], [100 * r["critic_progress"] for r in q], marker="o", ms=3,
                    color=f"C{k + 1}", label=name)
        ax.set_title(f"episode {i}", fontsize=9)
        ax.set_xlabel("env step")
        ax.set_ylim(-5, 105)
    axes[0][0].set_ylabel("progress (0-100)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
