"""Real (or any) videos as critic inputs: an mp4 plus an instruction sidecar, optional progress labels.

A video folder holds ``NAME.mp4`` (or another suffix in :data:`VIDEO_SUFFIXES`) and a sidecar beside it:

* ``NAME.txt``: the instruction, nothing else; or
* ``NAME.json``: ``{"instruction": "...", "progress": [...], "progress_per": "frame" | "second" | "video",
  "fps": 30, "outcome": "success" | "failure"}``, all but ``instruction`` optional. ``progress`` holds numbers
  on the 0-1 or 0-100 scale (a list whose maximum exceeds 1 is read as 0-100): one per frame (``"frame"``, the
  default: exactly as many as the video has frames), one per second (``"second"``: one for each second the video
  lasts, or one more for its end), or key points spread evenly from the first frame to the last (``"video"``).

:func:`evaluate_videos` replays each video the way the in-loop tracker sees an episode (a frame index is a step:
frames kept every ``frame_every`` frames, a query every ``critic_every`` frames from frame 0, the clip sampled
with :func:`~primo_loop.tracker.sample_clip_indices`) and writes a progress curve per video; labelled videos are
also scored with the evaluator's metrics (:func:`primo_loop.evaluate.summarize`). ``scripts/eval_critic.py
--videos DIR`` calls it.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.data.media import VIDEO_SUFFIXES, read_video, resize_frames
from primo_loop.errors import DatasetError

logger = logging.getLogger(__name__)


@dataclass
class VideoItem:
    """One video and what its sidecar says.

    Attributes:
        name: file stem.
        path: the video file.
        instruction: the task in words.
        frames: uint8 [T, H, W, 3], centre-cropped to a square and resized (see :func:`load_video`).
        fps: frames per second (sidecar, else the file's metadata, else 30).
        progress: per-frame progress labels in [0, 1] (None when unlabelled).
        outcome: "success" / "failure" if the sidecar says so.
    """

    name: str
    path: Path
    instruction: str
    frames: np.ndarray
    fps: float
    progress: np.ndarray | None = None
    outcome: str | None = None


def find_videos(root: str | os.PathLike) -> list[Path]:
    """Video files in ``root`` (sorted) that have a ``.json`` or ``.txt`` sidecar; others are skipped with a
    warning. ``root`` may also be a single video file."""
    root = Path(root)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        raise DatasetError(f"Expected a folder of videos or a video file, actually: {str(root)!r} does not exist")
    found = []
    for p in paths:
        if p.with_suffix(".json").is_file() or p.with_suffix(".txt").is_file():
            found.append(p)
        else:
            logger.warning("skipping %s: no sidecar %s.json or %s.txt with the instruction", p, p.stem, p.stem)
    if not found:
        raise DatasetError(f"No videos with an instruction sidecar in {str(root)!r}: expected NAME.mp4 beside "
                           f"NAME.txt (the instruction) or NAME.json ({{\"instruction\": ..., \"progress\": [...]}})")
    return found


def read_sidecar(video: Path) -> dict[str, Any]:
    """The sidecar of ``video`` as a dict with at least ``instruction``."""
    js, txt = video.with_suffix(".json"), video.with_suffix(".txt")
    if js.is_file():
        try:
            meta = json.loads(js.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{js}: not valid JSON ({exc})") from exc
        if not isinstance(meta, dict) or not str(meta.get("instruction", "")).strip():
            raise DatasetError(f"{js}: expected an object with a non-empty \"instruction\"")
        return meta
    text = txt.read_text().strip()
    if not text:
        raise DatasetError(f"{txt}: the instruction is empty")
    return {"instruction": text}


def progress_per_frame(labels: Any, n_frames: int, fps: float, per: str = "frame") -> np.ndarray:
    """Progress labels -> one value in [0, 1] per frame.

    ``per="frame"``: one label per frame, exactly. ``per="second"``: one label per started second of the video
    (or one more, for its end), each held over its second. ``per="video"``: key points spread evenly over the
    video, each frame taking the nearest one. Labels that do not cover the video are an error, never stretched
    silently.

    >>> progress_per_frame([0, 50, 100], 6, fps=2, per="second").tolist()
    [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    >>> progress_per_frame([0.0, 1.0], 4, fps=30, per="video").tolist()
    [0.0, 0.0, 1.0, 1.0]

    Raises:
        DatasetError: labels that are not numbers, not finite, or too few or too many for the video.
    """
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (list, tuple, np.ndarray)):
        raise DatasetError(f"Expected \"progress\" to be a list of numbers, actually: {labels!r}")
    odd = [x for x in labels if isinstance(x, bool) or not isinstance(x, (int, float, np.number))]
    if odd:
        raise DatasetError(f"Expected \"progress\" to hold numbers (0-1 or 0-100), actually: {odd[0]!r} among "
                           f"{len(odd)} non-numbers (write 40, not \"40\" or \"40%\")")
    arr = np.asarray(labels, dtype=float).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise DatasetError(f"Expected a non-empty list of finite progress labels, actually: {labels!r}")
    if arr.max() > 1.0:
        arr = arr / 100.0
    if per == "second":
        seconds = int(np.ceil(n_frames / fps - 1e-9))
        if not seconds <= arr.size <= seconds + 1:
            raise DatasetError(f"Expected {seconds} or {seconds + 1} per-second progress labels for {n_frames} "
                               f"frames at {fps:g} fps, actually: {arr.size}")
        idx = np.minimum((np.arange(n_frames) / fps).astype(int), arr.size - 1)
    elif per == "frame":
        if arr.size != n_frames:
            raise DatasetError(f"Expected one progress label per frame ({n_frames}), actually: {arr.size}; for "
                               "labels at other times set \"progress_per\" to \"second\" or \"video\" (key "
                               "points spread evenly over the video)")
        idx = np.arange(n_frames)
    elif per == "video":
        if arr.size > n_frames:
            raise DatasetError(f"Expected at most {n_frames} progress key points (one per frame), actually: "
                               f"{arr.size}")
        idx = np.rint(np.arange(n_frames) * (arr.size - 1) / max(1, n_frames - 1)).astype(int)
    else:
        raise DatasetError(f"Expected \"progress_per\" to be \"frame\", \"second\" or \"video\", actually: "
                           f"{per!r}")
    return np.clip(arr[idx], 0.0, 1.0)


def _square(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return frames[:, y:y + s, x:x + s]


def load_video(path: str | os.PathLike, image_size: int = 224) -> VideoItem:
    """Read a video and its sidecar; frames are centre-cropped to a square and resized to ``image_size``."""
    path = Path(path)
    meta = read_sidecar(path)
    frames = read_video(path)
    if frames.ndim != 4 or len(frames) == 0:
        raise DatasetError(f"{path}: no frames could be decoded")
    frames = resize_frames(_square(frames), image_size)
    fps = float(meta.get("fps") or _file_fps(path) or 30.0)
    labels = meta.get("progress")
    try:
        progress = (progress_per_frame(labels, len(frames), fps, meta.get("progress_per", "frame"))
                    if labels is not None else None)
    except DatasetError as exc:
        raise DatasetError(f"{path.with_suffix('.json')}: {exc}") from exc
    return VideoItem(name=path.stem, path=path, instruction=str(meta["instruction"]).strip(), frames=frames,
                     fps=fps, progress=progress, outcome=meta.get("outcome"))


def _file_fps(path: Path) -> float | None:
    try:
        import imageio.v2 as imageio

        with imageio.get_reader(path) as reader:
            fps = reader.get_meta_data().get("fps")
        return float(fps) if fps and math.isfinite(fps) else None
    except Exception:  # noqa: BLE001 - fps is optional metadata
        return None


def video_queries(item: VideoItem, critic_every: int, frame_every: int, clip_len: int):
    """The in-loop queries along a video: ``(queries, frame indices)``; a frame index counts as a step."""
    from primo_loop.tracker import replay_schedule
    from primo_loop.types import CriticQuery

    queries, steps = [], []
    for f, k, clip in replay_schedule(range(len(item.frames)), critic_every, frame_every, clip_len):
        privileged = None if item.progress is None else {"progress": float(item.progress[f]), "failed": False}
        queries.append(CriticQuery(instruction=item.instruction, initial=item.frames[0], clip=item.frames[clip],
                                   current=item.frames[k], step=f, privileged=privileged))
        steps.append(f)
    return queries, steps


def evaluate_videos(critic: Any, sources: list[str | os.PathLike], out_dir: str | os.PathLike, config: Any = None,
                    image_size: int = 224, critic_name: str | None = None) -> dict[str, Any]:
    """Score ``critic`` on folders of videos; write ``videos.json``, ``videos.md`` and a curve per video.

    Args:
        critic: any object with ``assess(queries) -> verdicts``.
        sources: video folders or files (see the module docstring for the sidecar).
        out_dir: output folder.
        config: a :class:`primo_loop.evaluate.EvalConfig` (``critic_every``, ``frame_every``, ``clip_len``,
            ``batch_size`` are used; a frame index counts as a step).
        image_size: frames are resized to this square size.
        critic_name: name for the report.

    Returns:
        ``{"critic", "videos": [{name, instruction, fps, frames, steps, time_s, pred, target}], "metrics",
        "skipped": [{path, error}]}``; ``metrics`` (the evaluator's summary) covers the labelled videos only, and
        is None without any. A video that cannot be read (or whose sidecar is bad) is skipped with a one-line
        warning and listed in ``skipped``.

    Raises:
        DatasetError: no video could be read.
    """
    from primo_loop.evaluate import EpisodeResult, EvalConfig, summarize

    cfg = config or EvalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [p for src in sources for p in find_videos(src)]
    videos, results, skipped = [], [], []
    for path in paths:
        try:
            item = load_video(path, image_size)
        except DatasetError as exc:  # one bad video (or sidecar) is reported; the others are still scored
            logger.warning("skipping %s", exc)
            skipped.append({"path": str(path), "error": str(exc)})
            continue
        queries, steps = video_queries(item, cfg.critic_every, cfg.frame_every, cfg.clip_len)
        verdicts = []
        for i in range(0, len(queries), cfg.batch_size):
            verdicts += critic.assess(queries[i:i + cfg.batch_size])
        pred = [None if v.progress is None else 100.0 * float(v.progress) for v in verdicts]
        target = None if item.progress is None else [100.0 * float(item.progress[s]) for s in steps]
        videos.append({"name": item.name, "path": str(path), "instruction": item.instruction, "fps": item.fps,
                       "frames": int(len(item.frames)), "steps": steps,
                       "time_s": [round(s / item.fps, 3) for s in steps], "pred": pred, "target": target,
                       "latency_s": [float(v.latency_s) for v in verdicts]})
        if target is not None:
            res = EpisodeResult(item.name, str(path.parent), "video", "real", item.outcome, None, steps=steps,
                                target=target, failed=[False] * len(steps), pred=pred,
                                failure_prob=[v.failure_prob for v in verdicts],
                                latency_s=[float(v.latency_s) for v in verdicts],
                                output_tokens=[v.output_tokens for v in verdicts])
            results.append(res)
        _plot_curve(videos[-1], out / f"{item.name}.png")
    if not videos:
        raise DatasetError(f"None of the {len(paths)} videos could be read: " + "; ".join(
            s["error"] for s in skipped[:3]))
    metrics = summarize(results, cfg) if results else None
    report = {"critic": critic_name or getattr(critic, "name", type(critic).__name__),
              "sources": [str(s) for s in sources], "videos": videos, "labelled": len(results), "metrics": metrics,
              "skipped": skipped}
    (out / "videos.json").write_text(json.dumps(report, indent=1, default=_json_default))
    (out / "videos.md").write_text(_markdown(report))
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Critic `{report['critic']}` on videos", "", "| video | instruction | frames | queries | "
             "final predicted progress | final label | MAE (0-100) |", "|---|---|---|---|---|---|---|"]
    for v in report["videos"]:
        pairs = [(p, t) for p, t in zip(v["pred"], v["target"] or []) if p is not None]
        mae = f"{np.mean([abs(p - t) for p, t in pairs]):.1f}" if pairs else "-"
        last = next((p for p in reversed(v["pred"]) if p is not None), None)
        label = v["target"][-1] if v["target"] else None
        lines.append(f"| {v['name']} | {v['instruction']} | {v['frames']} | {len(v['steps'])} | "
                     f"{'-' if last is None else f'{last:.0f}'} | {'-' if label is None else f'{label:.0f}'} "
                     f"| {mae} |")
    if report.get("skipped"):
        lines += ["", "Not scored:", ""] + [f"- {s['path']}: {s['error']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def _plot_curve(video: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    t = video["time_s"]
    ax.plot(t, [np.nan if p is None else p for p in video["pred"]], marker="o", ms=3, label="critic")
    if video["target"] is not None:
        ax.plot(t, video["target"], ls="--", label="label")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("progress (0-100)")
    ax.set_ylim(-3, 103)
    ax.set_title(video["name"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
