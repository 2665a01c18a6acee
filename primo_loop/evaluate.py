"""Score a critic on dataset folders or PRIMO records: metrics per split, report files and plots.

    report = evaluate(make_critic("compact"), ["data/eval_panda", "data/eval_robots"], "runs/eval")

Episodes are replayed the way the in-loop tracker sees them: frames kept every ``frame_every`` steps (and at
reset), a query every ``critic_every`` steps from step 0, its clip sampled from the frames kept so far with
:func:`primo_loop.tracker.sample_clip_indices`. The same code scores every backend (compact, VLM, remote,
oracle), so the report carries the unreadable-answer and failed-request rates, output tokens and latency.

Splits (``split_by="auto"``): given the critic's training domain (the compact critic's checkpoint records its
tasks and robots), each episode is ``in_domain`` (seen task and robot; held-out seeds), ``unseen_robot``,
``unseen_task``, or ``humanoid`` (GR1 robots); without a training domain every episode is in split ``all``.
Every report also breaks results down by task/robot.

Outputs in the report folder (written by :mod:`primo_loop.eval_report`): ``report.json``, ``report.md``,
``curves_<split>.png`` (predicted against oracle progress for several episodes), ``error_by_bin.png`` (MAE by
oracle-progress bin, per split).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop import metrics as M
from primo_loop.errors import ConfigError, DatasetError
from primo_loop.eval_report import (compare_reports, display_path, metric_table,  # noqa: F401 - public here too
                                    report_markdown, write_report)
from primo_loop.types import CriticQuery

logger = logging.getLogger(__name__)

SPLIT_ORDER = ("in_domain", "unseen_robot", "unseen_task", "humanoid", "all")


@dataclass
class EvalConfig:
    """Options of an evaluation.

    Attributes:
        critic_every: query every N env steps (and at step 0), as the tracker's default.
        frame_every: keep a frame every M steps for the clip [None = critic_every].
        clip_len: frames per clip, anchors included.
        window: sample the clip from the last ``window`` kept frames only, as the tracker's option [None = all].
        batch_size: queries per ``assess`` call.
        failure_threshold: failure probability at which a query counts as a failure alarm.
        failure_patience: consecutive alarms before a failure is declared.
        nframes: clip frames decoded from a PRIMO record's video (22, as the release evaluates).
        max_episodes: score at most this many episodes per source (None = all).
        split_by: "auto" (from the critic's training domain), "task", "robot", "source" or "none".
        train_tasks / train_robots: the training domain for ``auto`` when the critic does not record one.
        plot_episodes: episodes drawn per split in the curves plot.
        data_root: where relative media paths of PRIMO records resolve (see primo_format.load_records).
    """

    critic_every: int = 10
    frame_every: int | None = None
    clip_len: int = 8
    window: int | None = None
    batch_size: int = 16
    failure_threshold: float = 0.5
    failure_patience: int = 1
    nframes: int = 22
    max_episodes: int | None = None
    split_by: str = "auto"
    train_tasks: list[str] | None = None
    train_robots: list[str] | None = None
    plot_episodes: int = 6
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.frame_every is None:
            self.frame_every = self.critic_every
        for name in ("critic_every", "frame_every", "clip_len", "batch_size", "failure_patience", "nframes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` >= 1, actually: {getattr(self, name)}")
        if self.critic_every % self.frame_every:
            raise ConfigError(f"Expected `critic_every` to be a multiple of `frame_every`, actually: "
                              f"{self.critic_every} and {self.frame_every}")
        if self.split_by not in ("auto", "task", "robot", "source", "none"):
            raise ConfigError(f"Expected `split_by` in auto, task, robot, source, none; actually: {self.split_by!r}")


@dataclass
class EpisodeResult:
    """One episode's queries and the critic's answers (progress on 0-100)."""

    episode_id: str
    source: str
    task: str | None
    robot: str | None
    outcome: str | None
    failure_step: int | None
    steps: list[int] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    pred: list[float | None] = field(default_factory=list)
    failure_prob: list[float | None] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    output_tokens: list[int | None] = field(default_factory=list)
    split: str = "all"
    request_failed: list[bool] = field(default_factory=list)  # the query's request failed (no answer came)

    success = property(lambda self: self.outcome == "success")

    is_failure = property(lambda self: self.outcome == "failure" if self.outcome is not None else any(self.failed))


# ------------------------------------------------------------------------------------- query builders

def _episode_queries(ep: Any, cfg: EvalConfig) -> tuple[list[CriticQuery], list[int], list[float], list[bool]]:
    """In-loop queries along a recorded episode."""
    from primo_loop.tracker import replay_schedule

    queries, steps, target, failed = [], [], [], []
    instruction = ep.meta["instruction"]
    for s, k, clip in replay_schedule(ep.frame_steps, cfg.critic_every, cfg.frame_every, cfg.clip_len, cfg.window):
        p = float(ep.table["progress"][s])
        f = bool(ep.table["failed"][s])
        queries.append(CriticQuery(instruction=instruction, initial=ep.frames[0], clip=ep.frames[clip],
                                   current=ep.frames[k], step=s, privileged={"progress": p, "failed": f},
                                   views=ep.meta.get("views") or ()))
        steps.append(s)
        target.append(100.0 * p)
        failed.append(f)
    return queries, steps, target, failed


def _run_queries(critic: Any, queries: list[CriticQuery], results: list[tuple[EpisodeResult, int]],
                 cfg: EvalConfig) -> None:
    for i in range(0, len(queries), cfg.batch_size):
        chunk = queries[i:i + cfg.batch_size]
        t0 = time.perf_counter()
        verdicts = critic.assess(chunk)
        dt = (time.perf_counter() - t0) / len(chunk)
        if len(verdicts) != len(chunk):
            raise DatasetError(f"Critic {getattr(critic, 'name', critic)!r} returned {len(verdicts)} verdicts "
                               f"for {len(chunk)} queries")
        for (res, _), v in zip(results[i:i + cfg.batch_size], verdicts):
            res.pred.append(None if v.progress is None else 100.0 * float(v.progress))
            res.failure_prob.append(v.failure_prob)
            res.latency_s.append(float(v.latency_s) if v.latency_s else dt)
            res.output_tokens.append(v.output_tokens)
            res.request_failed.append(bool(getattr(v, "failed", False)))  # a remote FailedVerdict


def score_dataset(critic: Any, root: str | os.PathLike, cfg: EvalConfig, progress_bar: bool = False,
                  ids: Sequence[str] | None = None) -> tuple[list[EpisodeResult], int]:
    """Replay the episodes of a dataset folder (all, or a shard's ``ids``) through ``critic``: (results, skipped)."""
    from primo_loop.data.dataset import EpisodeDataset

    ds = EpisodeDataset(root)
    shard, ids = ids is not None, list(ids) if ids is not None else ds.ids[: cfg.max_episodes or len(ds.ids)]
    out: list[EpisodeResult] = []
    it: Iterable[str] = ids
    if progress_bar:
        from tqdm import tqdm

        it = tqdm(ids, desc=f"eval {Path(root).name}", unit="ep")
    pending_q: list[CriticQuery] = []
    pending_r: list[tuple[EpisodeResult, int]] = []
    for eid in it:
        ep = ds.load(eid)
        if ep is None:
            continue
        m = ep.meta
        res = EpisodeResult(eid, str(root), m.get("task"), m.get("robot"), m.get("outcome"), m.get("failure_step"))
        qs, res.steps, res.target, res.failed = _episode_queries(ep, cfg)
        out.append(res)
        pending_q += qs
        pending_r += [(res, j) for j in range(len(qs))]
        if len(pending_q) >= 8 * cfg.batch_size:
            _run_queries(critic, pending_q, pending_r, cfg)
            pending_q, pending_r = [], []
    _run_queries(critic, pending_q, pending_r, cfg)
    return out, len(set(ds.skipped) & set(ids)) if shard else len(ds.skipped)


def score_records(critic: Any, path: str | os.PathLike, cfg: EvalConfig, progress_bar: bool = False,
                  keys: Collection[str] | None = None) -> tuple[list[EpisodeResult], int]:
    """Score PRIMO records; records sharing an ``episode_id`` form one episode (ordered by ``step``); with
    ``keys`` only those episodes (a shard; see :func:`record_groups`)."""
    from primo_loop.data.primo_format import load_record_frames, load_records

    groups = {k: v for k, v in record_groups(load_records(path, data_root=cfg.data_root), cfg).items()
              if keys is None or k in keys}
    out, skipped = [], 0
    queries: list[CriticQuery] = []
    pending: list[tuple[EpisodeResult, int]] = []
    it: Iterable[tuple[str, list[dict[str, Any]]]] = groups.items()
    if progress_bar:
        from tqdm import tqdm

        it = tqdm(list(groups.items()), desc=f"eval {Path(path).name}", unit="ep")
    for key, recs in it:
        recs = sorted(recs, key=lambda r: r.get("step", 0))
        first = recs[0]
        fail_steps = [r.get("step", 0) for r in recs if r.get("failed")]
        outcome = None
        if "failed" in first:
            outcome = "failure" if fail_steps else ("success" if recs[-1].get("progress", 0) >= 100 else "incomplete")
        res = EpisodeResult(key, str(path), first.get("task"), first.get("robot"), outcome,
                            min(fail_steps) if fail_steps else None)
        for r in recs:
            if r.get("progress") is None:
                skipped += 1
                logger.warning("record %s has no readable solution; skipped", r.get("problem_id"))
                continue
            try:
                initial, clip, current = load_record_frames(r, nframes=cfg.nframes)
            except DatasetError as exc:
                skipped += 1
                logger.warning("skipping record %s: %s", r.get("problem_id"), exc)
                continue
            instruction = r.get("instruction") or r.get("problem") or ""
            queries.append(CriticQuery(instruction=instruction, initial=initial, clip=clip, current=current,
                                       step=int(r.get("step", 0)), question=r.get("problem") or None,
                                       privileged={"progress": r["progress"] / 100.0,
                                                   "failed": bool(r.get("failed", False))}))
            pending.append((res, len(res.steps)))
            res.steps.append(int(r.get("step", len(res.steps))))
            res.target.append(float(r["progress"]))
            res.failed.append(bool(r.get("failed", False)))
        if res.steps:
            out.append(res)
    if not out and keys is None:  # a shard may hold only unreadable records; the whole file may not
        raise DatasetError(f"No scorable records in {path} ({skipped} skipped)")
    _run_queries(critic, queries, pending, cfg)
    return out, skipped


def record_groups(records: Sequence[dict[str, Any]], cfg: EvalConfig) -> dict[str, list[dict[str, Any]]]:
    """PRIMO records by episode (``episode_id``, else ``problem_id``, else position), in file order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(records[: cfg.max_episodes] if cfg.max_episodes else records):
        groups.setdefault(str(r.get("episode_id") or r.get("problem_id") or i), []).append(r)
    return groups


# ------------------------------------------------------------------------------------------------ splits

def assign_splits(results: Sequence[EpisodeResult], cfg: EvalConfig, train_info: dict[str, Any] | None) -> None:
    """Set each result's ``split`` (see the module docstring)."""
    tasks = set(cfg.train_tasks or (train_info or {}).get("tasks") or [])
    robots = set(cfg.train_robots or (train_info or {}).get("robots") or [])
    for r in results:
        if cfg.split_by == "none":
            r.split = "all"
        elif cfg.split_by == "task":
            r.split = str(r.task)
        elif cfg.split_by == "robot":
            r.split = str(r.robot)
        elif cfg.split_by == "source":
            r.split = Path(r.source).name
        elif not tasks and not robots:
            r.split = "all"
        elif r.robot and str(r.robot).startswith("GR1"):
            r.split = "humanoid"
        elif tasks and r.task not in tasks:
            r.split = "unseen_task"
        elif robots and r.robot not in robots:
            r.split = "unseen_robot"
        else:
            r.split = "in_domain"


# ----------------------------------------------------------------------------------------------- metrics

def summarize(results: Sequence[EpisodeResult], cfg: EvalConfig) -> dict[str, Any]:
    """Metrics over a group of episodes."""
    pred_all, tgt_all, n_queries, n_unreadable = [], [], 0, 0
    n_failed = sum(sum(r.request_failed) for r in results)  # no answer: counted apart from unreadable ones
    succ_pred, succ_tgt, vocs = [], [], []
    fails = []
    lat, toks = [], []
    for r in results:
        n_queries += len(r.pred)
        for p, t in zip(r.pred, r.target):
            if p is None:
                n_unreadable += 1
            else:
                pred_all.append(p)
                tgt_all.append(t)
        lat += r.latency_s
        toks += [t for t in r.output_tokens if t is not None]
        if r.success:
            # up to the first query at full progress: after that the truth is flat and VOC is about noise
            done = [i for i, t in enumerate(r.target) if t >= 99.999]
            end = (done[0] + 1) if done else len(r.target)
            seq = [p for p in r.pred[:end] if p is not None]
            if len(seq) >= 3:
                vocs.append(M.voc(seq))
            for p, t in zip(r.pred, r.target):
                if p is not None:
                    succ_pred.append(p)
                    succ_tgt.append(t)
        if r.outcome is not None or any(r.failed):
            event_q = None
            if r.is_failure and r.failure_step is not None:
                after = [i for i, s in enumerate(r.steps) if s >= r.failure_step]
                event_q = after[0] if after else None
            fails.append((r, event_q))
    out: dict[str, Any] = {
        "episodes": len(results),
        "successful_episodes": sum(r.success for r in results),
        "failed_episodes": sum(r.is_failure for r in results),
        "queries": n_queries,
        "unreadable_rate": (n_unreadable - n_failed) / n_queries if n_queries else math.nan,
        "failed_rate": n_failed / n_queries if n_queries else math.nan,
        "progress": M.progress_metrics(pred_all, tgt_all),
        "progress_successful": M.progress_metrics(succ_pred, succ_tgt),
        "voc_successful": float(np.nanmean(vocs)) if vocs and not np.all(np.isnan(vocs)) else math.nan,
        "voc_episodes": len(vocs),
        "error_by_bin": M.error_by_bin(pred_all, tgt_all, n_bins=5),
        "latency_ms": 1000 * float(np.mean(lat)) if lat else math.nan,
        "mean_output_tokens": float(np.mean(toks)) if toks else math.nan,
    }
    has_fp = any(fp is not None for r in results for fp in r.failure_prob)
    out["failure_detection"] = None
    if fails and has_fp:
        def detect(patience: int, keep=lambda r: True) -> dict[str, float]:
            return M.failure_detection([
                M.EpisodeFailure(r.is_failure, eq, M.first_detection(r.failure_prob, cfg.failure_threshold, patience))
                for r, eq in fails if keep(r)])

        out["failure_detection"] = detect(cfg.failure_patience)
        # the same against successful episodes only (incomplete ones, e.g. a stall the labeller never flags,
        # are neither), and with the tracker's default patience of 2 consecutive alarms
        out["failure_detection_vs_successes"] = detect(cfg.failure_patience, lambda r: r.is_failure or r.success)
        out["failure_detection_patience2"] = detect(2)
    return out


def evaluate(critic: Any, sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None,
             config: EvalConfig | None = None, critic_name: str | None = None, progress_bar: bool = False,
             extra: dict[str, Any] | None = None, scorer: Callable | None = None) -> dict[str, Any]:
    """Score ``critic`` on dataset folders and/or PRIMO record files; write the report if ``out_dir``.

    Args:
        critic: any object with ``assess(queries) -> verdicts``.
        sources: dataset folders or ``.json``/``.jsonl`` PRIMO record files.
        out_dir: report folder (report.json, report.md, PNG plots); None writes nothing.
        config: evaluation options.
        critic_name: name for the report (default: ``critic.name``).
        progress_bar: show tqdm bars.
        extra: more fields for report.json (e.g. the command line).
        scorer: ``(source, config) -> (results, skipped)`` scores instead (:mod:`primo_loop.eval_shards`: on Ray).

    Returns:
        The report dict (what report.json holds).
    """
    cfg = config or EvalConfig()
    if not sources:
        raise ConfigError("Expected at least one data source (a dataset folder or a PRIMO .jsonl file)")
    t0 = time.time()
    results: list[EpisodeResult] = []
    skipped: dict[str, int] = {}
    for src in sources:
        p = Path(src)
        if not p.is_dir() and p.suffix.lower() not in (".json", ".jsonl"):
            raise DatasetError(f"Data source {p} is neither a dataset folder nor a .json/.jsonl records file")
        local = score_dataset if p.is_dir() else score_records
        res, sk = scorer(p, cfg) if scorer is not None else local(critic, p, cfg, progress_bar)
        results += res
        skipped[str(p)] = sk
    train_info = getattr(getattr(critic, "config", None), "train_info", None) or None
    assign_splits(results, cfg, train_info)
    splits = sorted({r.split for r in results}, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 99, s))
    report: dict[str, Any] = {
        "critic": critic_name or getattr(critic, "name", type(critic).__name__),
        "checkpoint": display_path(getattr(critic, "checkpoint", None)),
        "sources": [str(s) for s in sources],
        "config": asdict(cfg),
        "train_domain": {"tasks": (train_info or {}).get("tasks"), "robots": (train_info or {}).get("robots")},
        "skipped": skipped,
        "splits": {s: summarize([r for r in results if r.split == s], cfg) for s in splits},
        "by_task_robot": {},
        "wall_s": None,
    }
    for key in sorted({f"{r.task}/{r.robot}" for r in results}):
        group = [r for r in results if f"{r.task}/{r.robot}" == key]
        s = summarize(group, cfg)
        report["by_task_robot"][key] = {"split": group[0].split, "episodes": s["episodes"],
                                        "mae": s["progress"]["mae"], "voc_successful": s["voc_successful"],
                                        "failure_f1": (s["failure_detection"] or {}).get("f1")}
    if extra:
        report.update(extra)
    report["wall_s"] = round(time.time() - t0, 1)
    if out_dir is not None:
        write_report(report, results, out_dir, cfg)
    return report
