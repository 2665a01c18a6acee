"""PRIMO benchmark records: import (``load_records``, ``load_record_frames``) and export (``export_primo``).

A PRIMO record (notes/primo_reference.md §5) is one progress question about one video:

.. code-block:: json

    {"problem_id": "Lift-Panda-s000012/t0040", "problem": "Task: lift the cube. ... 0 to 100 ...",
     "problem_type": "numerical", "data_type": "video", "options": [],
     "path": "media/Lift-Panda-s000012/t0040.mp4", "solution": "<answer>37</answer>"}

The official benchmark names the video ``path``, ``video`` or ``video_path``; relative paths resolve against
a data root (argument, else the ``PRIMO_DATA_ROOT`` environment variable, else the records file's folder).
The anchor images are re-derived as the clip's first and last frames, as the official harness does.

Our exported records add simulator extras: ``instruction``, ``task``, ``robot``, ``canonical_steps``,
``events`` (seen up to the step), ``progress`` (0-100, unrounded), ``episode_id``, ``step``, ``failed``.
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

from primo_loop.data.media import read_video, resize_frames, write_video
from primo_loop.outputs import write_text_atomic
from primo_loop.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "PRIMO_DATA_ROOT"
MEDIA_KEYS = ("path", "video", "video_path")
_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S | re.I)
_NUMBER_RE = re.compile(r"[-+]?\d+(?:\.\d+)?")


def progress_question(instruction: str) -> str:
    """The ``problem`` text of a progress record: the instruction and the progress question.

    >>> progress_question("lift the cube")[:28]
    'Task: "lift the cube". The f'
    """
    return (f'Task: "{instruction}". The first image shows the initial state, the video shows the attempt so '
            "far, and the last image shows the current state. How far has the task progressed? Answer with a "
            "number from 0 (not started) to 100 (fully completed).")


def solution_text(progress_0_100: float) -> str:
    """Format a progress value as a PRIMO solution.

    >>> solution_text(36.6)
    '<answer>37</answer>'
    """
    return f"<answer>{int(round(float(progress_0_100)))}</answer>"


def parse_solution(text: str | None) -> float | None:
    """The number inside ``<answer>...</answer>`` (or the first number of a bare answer), else None.

    >>> parse_solution("<think>..</think><answer>42</answer>"), parse_solution("<answer>~37.5%</answer>")
    (42.0, 37.5)
    >>> parse_solution("no idea") is None
    True
    """
    if text is None:
        return None
    text = str(text)
    m = _ANSWER_RE.search(text)
    body = m.group(1) if m else text
    n = _NUMBER_RE.search(body)
    return float(n.group(0)) if n else None


# ----------------------------------------------------------------------------------------------- import

def load_records(path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read PRIMO records from a JSON list or a JSONL file.

    Each returned record is the file's dict plus two keys: ``media_path`` (the video resolved to an absolute
    path, or None when the record names none) and ``progress`` (0-100; kept when present, else parsed from
    ``solution``, else None).

    Args:
        path: a ``.json`` file holding a list of records, or a ``.jsonl`` file with one record per line.
        data_root: folder that relative media paths resolve against; default ``$PRIMO_DATA_ROOT``, else the
            records file's folder.

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
    if stripped.startswith("["):
        try:
            records = json.loads(text)
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
            rec["progress"] = parse_solution(rec.get("solution"))
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


def _data_root(records_file: Path | None, data_root: str | os.PathLike | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env)
    return records_file.parent if records_file is not None else Path.cwd()


def _resolve(media: str, root: Path) -> Path:
    p = Path(media).expanduser()
    return p if p.is_absolute() else (root / p).resolve()


# ----------------------------------------------------------------------------------------------- export

def export_primo(dataset_dir: str | os.PathLike, out_jsonl: str | os.PathLike, *, per_episode: int = 8,
                 fps: float = 10.0, include_start: bool = False, episode_ids: Iterable[str] | None = None,
                 progress_bar: bool = False) -> int:
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
                                   include_start=include_start):
            lines.append(json.dumps(rec))
    if not lines:
        raise DatasetError(f"No records to export from {dataset_dir}")
    write_text_atomic(out_jsonl, "\n".join(lines) + "\n")
    logger.info("wrote %d PRIMO records to %s", len(lines), out_jsonl)
    return len(lines)


def episode_records(ep: Any, out_dir: Path, per_episode: int = 8, fps: float = 10.0,
                    include_start: bool = False) -> list[dict[str, Any]]:
    """The PRIMO records of one :class:`~primo_loop.data.dataset.Episode`, writing their videos."""
    n = len(ep.frames)
    first = 0 if include_start else min(1, n - 1)
    ks = sorted(set(np.floor(np.linspace(first, n - 1, per_episode) + 0.5).astype(int).tolist()))
    meta = ep.meta
    out = []
    for k in ks:
        step = int(ep.frame_steps[k])
        rel = Path("media") / ep.episode_id / f"t{step:04d}.mp4"
        write_video(out_dir / rel, ep.frames[: k + 1], fps=fps)
        progress = 100.0 * float(ep.table["progress"][step])
        out.append({
            "problem_id": f"{ep.episode_id}/t{step:04d}",
            "problem": progress_question(meta["instruction"]),
            "problem_type": "numerical",
            "data_type": "video",
            "options": [],
            "path": rel.as_posix(),
            "solution": solution_text(progress),
            "instruction": meta["instruction"],
            "task": meta.get("task"),
            "robot": meta.get("robot"),
            "canonical_steps": list(meta.get("canonical_steps") or []),
            "events": [e["event"] for e in meta.get("events", []) if e["step"] <= step],
            "progress": round(progress, 3),
            "failed": bool(ep.table["failed"][step]),
            "episode_id": ep.episode_id,
            "step": step,
        })
    return out
