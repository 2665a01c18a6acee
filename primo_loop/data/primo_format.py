"""PRIMO benchmark records: import (``load_records``, ``load_record_frames``) and export (``export_primo``).

A PRIMO record (notes/primo_reference.md §5) is one progress question about one video:

.. code-block:: json

    {"problem_id": "Lift-Panda-s000012/t0040", "problem": "Task: lift the cube. ... 0 to 100 ...",
     "problem_type": "numerical", "data_type": "video", "options": [],
     "path": "media/Lift-Panda-s000012/t0040.mp4", "solution": "<answer>37</answer>"}

The official benchmark names the video ``path``, ``video`` or ``video_path``; relative paths resolve against
a data root: the argument, else ``$VIDEO_DATA_ROOT`` (the release's variable), else
``$PRIMO_DATA_ROOT``, else the records file's folder; a path not found there is looked up under the root's
``primo-video/`` folder (the release's media layout). Paths are normalised as the release's loader does:
backslashes become ``/``, a leading ``./`` is dropped, and ``/videos/...`` or ``/images/...`` are relative to
the root. A file holds a JSON list, a
dict holding the list (under ``results``, ``data``, ``annotations``, ``train`` or ``items``, or its only list
value), or JSONL. The anchor images are re-derived as the clip's first and last frames, as the official
evaluation harness does.

Our exports carry what the release's SFT and GRPO loaders require (records without them are skipped there):
``init_frame_path`` and ``current_frame_path`` (JPEGs of the first and last frame), ``process`` with
``planning``, ``observation`` and ``reasoning`` (written from privileged sim events), and ``select: true``; plus
simulator extras: ``instruction``, ``task``, ``robot``, ``canonical_steps``, ``events`` (seen up to the step),
``progress`` (0-100, unrounded), ``episode_id``, ``step``, ``failed``.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.answers import solution_value
from primo_loop.data.media import read_video, resize_frames, write_video
from primo_loop.errors import ConfigError, DatasetError
from primo_loop.outputs import write_text_atomic
from primo_loop.prompting import progress_question

logger = logging.getLogger(__name__)

DATA_ROOT_ENVS = ("VIDEO_DATA_ROOT", "PRIMO_DATA_ROOT")
MEDIA_SUBDIR = "primo-video"
MEDIA_KEYS = ("path", "video", "video_path")
LIST_KEYS = ("results", "data", "annotations", "train", "items")
_SECTION_RE = re.compile(r"<(planning|observation|reasoning)>(.*?)</\1>", re.S)


def solution_text(progress_0_100: float) -> str:
    """Format a progress value as a PRIMO solution.

    >>> solution_text(36.6)
    '<answer>37</answer>'
    """
    return f"<answer>{int(round(float(progress_0_100)))}</answer>"


# ----------------------------------------------------------------------------------------------- import

def load_records(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read PRIMO records from a JSON list or a JSONL file.

    Each returned record is the file's dict plus two keys: ``media_path`` (the video resolved to an absolute
    path, or None when the record names none) and ``progress`` (0-100; kept when present, else parsed from
    ``solution``, else None).

    Args:
        path: a ``.json`` file holding a list of records (or a dict holding the list), or a ``.jsonl`` file
            with one record per line.
        data_root: folder that relative media paths resolve against; default ``$VIDEO_DATA_ROOT``, then
            ``$PRIMO_DATA_ROOT``, else the records file's folder.

    Raises:
        DatasetError: the file is missing, empty, or not valid JSON/JSONL (the message names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"PRIMO records file not found: {path}")
    text = path.read_text()
    if not text.strip():
        raise DatasetError(f"PRIMO records file is empty: {path}")
    records: list[Any]
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")) and (path.suffix.lower() == ".json" or stripped.startswith("[")):
        try:
            records = _record_list(json.loads(text), path)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not a valid JSON list of records ({exc})") from exc
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: not a valid JSON record ({exc.msg})") from exc
    root = _data_root(path, data_root)
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DatasetError(f"{path}: record {i} is a {type(rec).__name__}, expected a JSON object")
        rec = dict(rec)
        media = next((rec[k] for k in MEDIA_KEYS if rec.get(k)), None)
        rec["media_path"] = str(_resolve(media, root)) if media else None
        if rec.get("progress") is None:
            rec["progress"] = solution_value(rec.get("solution"))
        else:
            rec["progress"] = float(rec["progress"])
        out.append(rec)
    if not out:
        raise DatasetError(f"PRIMO records file holds no records: {path}")
    return out


def load_record_frames(record: dict[str, Any], data_root: str | os.PathLike | None = None,
                       nframes: int = 8, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a record's video into the critic's three inputs.

    Args:
        record: a record from :func:`load_records` (or a raw one; its media path is then resolved here).
        data_root: see :func:`load_records` (used only when the record has no ``media_path``).
        nframes: frames in the clip, sampled uniformly with the tracker's sampler (first and last included).
        image_size: resize frames to this square size (None keeps the video's size).

    Returns:
        ``(initial, clip, current)``: uint8 ``[H, W, 3]``, ``[nframes, H, W, 3]``, ``[H, W, 3]``; the anchors
        are the clip's first and last frames.

    Raises:
        DatasetError: the record names no media or the media cannot be read.
    """
    from primo_loop.tracker import sample_clip_indices

    media = record.get("media_path")
    if not media:
        rel = next((record[k] for k in MEDIA_KEYS if record.get(k)), None)
        if not rel:
            raise DatasetError(f"Record {record.get('problem_id')!r} names no video "
                               f"(expected one of the keys {', '.join(MEDIA_KEYS)})")
        media = _resolve(rel, _data_root(None, data_root))
    frames = read_video(media)
    clip = frames[sample_clip_indices(len(frames), nframes)]
    if image_size is not None:
        clip = resize_frames(clip, image_size)
    return clip[0].copy(), clip, clip[-1].copy()


def _record_list(data: Any, path: Path) -> list[Any]:
    """The records of a loaded JSON file: a list, or a dict holding one (as the release's loader accepts)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    raise DatasetError(f"{path}: expected a JSON list of records or a dict holding one (under one of "
                       f"{', '.join(LIST_KEYS)}), actually: {type(data).__name__}"
                       + (f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else ""))


def _data_root(records_file: Path | None, data_root: str | os.PathLike | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    for name in DATA_ROOT_ENVS:
        if os.environ.get(name):
            return Path(os.environ[name])
    return records_file.parent if records_file is not None else Path.cwd()


def normalize_media_path(media: str) -> str:
    """A record's media path as the release's loader reads it.

    >>> [normalize_media_path(p) for p in ["./a/b.mp4", "a\\\\b.mp4", "/videos/x.mp4", "/data/x.mp4"]]
    ['a/b.mp4', 'a/b.mp4', 'videos/x.mp4', '/data/x.mp4']
    """
    p = str(media).replace("\\", "/")
    if p.startswith("./"):
        p = p[2:]
    if p.startswith(("/videos/", "/images/")):
        p = p.lstrip("/")
    return p


def _resolve(media: str, root: Path) -> Path:
    p = Path(normalize_media_path(media)).expanduser()
    if p.is_absolute():
        return p
    direct = (root / p).resolve()
    under = (root / MEDIA_SUBDIR / p).resolve()
    return under if not direct.exists() and under.exists() else direct


# ----------------------------------------------------------------------------------------------- export

def export_primo(dataset_dir: str | os.PathLike, out_jsonl: str | os.PathLike, *, per_episode: int = 8,
                 fps: float = 10.0, include_start: bool = False, episode_ids: Iterable[str] | None = None,
                 progress_bar: bool = False, problem_type: str = "numerical") -> int:
    """Export a dataset folder as PRIMO records: one clip video and one question per sampled step.

    Steps are sampled uniformly over each episode's kept frames; each record's video holds every kept frame
    from reset up to its step. Videos go to ``<out_jsonl folder>/media/<episode_id>/t<step>.mp4`` and records
    name them relative to the JSONL's folder. The JSONL is written atomically.

    Args:
        dataset_dir: a dataset folder (see :mod:`primo_loop.data.dataset`).
        out_jsonl: output records file.
        per_episode: records per episode.
        fps: frame rate of the written videos.
        include_start: also export the reset frame alone (progress 0).
        episode_ids: restrict to these episodes.
        progress_bar: show a tqdm bar.
        problem_type: the records' ``problem_type``, which picks the release's accuracy reward: ``numerical``
            (``1 - |p - t| / 100``, the paper's Eq. 2) or ``regression`` (``1 - |p - t| / |t|``).

    Returns:
        The number of records written.
    """
    from primo_loop.data.dataset import EpisodeDataset

    if per_episode < 1:
        raise ConfigError(f"Expected `per_episode` >= 1, actually: {per_episode}")
    ds = EpisodeDataset(dataset_dir)
    out_jsonl = Path(out_jsonl)
    out_dir = out_jsonl.parent
    ids = list(ds.ids) if episode_ids is None else list(episode_ids)
    it: Iterable[str] = ids
    if progress_bar:
        from tqdm import tqdm

        it = tqdm(ids, desc="export", unit="ep")
    lines = []
    for eid in it:
        ep = ds.load(eid)
        if ep is None:
            continue
        for rec in episode_records(ep, out_dir=out_dir, per_episode=per_episode, fps=fps,
                                   include_start=include_start, problem_type=problem_type):
            lines.append(json.dumps(rec))
    if not lines:
        raise DatasetError(f"No records to export from {dataset_dir}")
    write_text_atomic(out_jsonl, "\n".join(lines) + "\n")
    logger.info("wrote %d PRIMO records to %s", len(lines), out_jsonl)
    return len(lines)


def episode_records(ep: Any, out_dir: Path, per_episode: int = 8, fps: float = 10.0, include_start: bool = False,
                    problem_type: str = "numerical") -> list[dict[str, Any]]:
    """The PRIMO records of one :class:`~primo_loop.data.dataset.Episode`, writing their videos and anchors."""
    from primo_loop.training.reasoning import write_reasoning

    if problem_type not in ("numerical", "regression"):
        raise ConfigError(f"Expected `problem_type` 'numerical' or 'regression', actually: {problem_type!r}")
    n = len(ep.frames)
    first = 0 if include_start else min(1, n - 1)
    ks = sorted(set(np.floor(np.linspace(first, n - 1, per_episode) + 0.5).astype(int).tolist()))
    meta = ep.meta
    out = []
    for k in ks:
        step = int(ep.frame_steps[k])
        rel = Path("media") / ep.episode_id / f"t{step:04d}.mp4"
        write_video(out_dir / rel, ep.frames[: k + 1], fps=fps)
        anchors = {}
        for key, frame in (("init_frame_path", ep.frames[0]), ("current_frame_path", ep.frames[k])):
            jpg = rel.with_name(f"{rel.stem}_{key.split('_')[0]}.jpg")
            _write_jpeg(out_dir / jpg, frame)
            anchors[key] = jpg.as_posix()
        progress = 100.0 * float(ep.table["progress"][step])
        events = [e["event"] for e in meta.get("events", []) if e["step"] <= step]
        failed = bool(ep.table["failed"][step])
        process = write_reasoning(meta["instruction"], meta.get("canonical_steps") or [], events, progress,
                                  failed=failed, key=f"{ep.episode_id}/t{step:04d}")
        sections = dict(_SECTION_RE.findall(process))
        out.append({
            "problem_id": f"{ep.episode_id}/t{step:04d}",
            "problem": progress_question(meta["instruction"]),
            "problem_type": problem_type,
            "data_type": "video",
            "options": [],
            "path": rel.as_posix(),
            **anchors,
            "solution": solution_text(progress),
            "process": process,
            "planning": sections.get("planning", ""),
            "observation": sections.get("observation", ""),
            "reasoning": sections.get("reasoning", ""),
            "select": True,
            "instruction": meta["instruction"],
            "task": meta.get("task"),
            "robot": meta.get("robot"),
            "canonical_steps": list(meta.get("canonical_steps") or []),
            "events": events,
            "progress": round(progress, 3),
            "failed": failed,
            "episode_id": ep.episode_id,
            "step": step,
        })
    return out


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    """One anchor frame as a JPEG (quality 95, as the release extracts its anchors), written atomically."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(np.ascontiguousarray(frame)).save(tmp, format="JPEG", quality=95)
    os.replace(tmp, path)
