"""Episodes on disk and datasets of them (DESIGN.md §5).

Layout of a dataset folder::

    DIR/
      index.json                 summary of every episode (rebuilt from the episode folders on demand)
      episodes/<episode_id>/
        frames.npz               frames uint8 [K, H, W, 3] at the critic's resolution, frame_steps int [K]
        steps.npz                per-step table, row t = the state after t env steps (row 0 = after reset):
                                 step, action [T+1, A] (row 0 is zeros), progress (oracle, 0-1), failed (bool),
                                 reward, success (bool), stage (str)
        meta.json                task, instruction, robot, camera, seed, failure (injected), outcome, events,
                                 canonical_steps, failure_step, n_steps, frame_every, image_size, views,
                                 versions (``views``: camera names tiled left to right in each frame, each a
                                 square of its height, :mod:`primo_loop.views`; absent in older datasets: one view)

An episode folder is written under a temporary name and renamed into place when complete, so a folder that
exists under its final name is whole; collection skips episodes whose folder exists (resume). The episode in
memory and its step-by-step recorder are in :mod:`primo_loop.data.episode`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.data.episode import Episode, EpisodeRecorder  # noqa: F401 - EpisodeRecorder: importable here too
from primo_loop.errors import ConfigError, DatasetError
from primo_loop.outputs import write_text_atomic
from primo_loop.views import check_tiled

logger = logging.getLogger(__name__)

EPISODES = "episodes"
INDEX = "index.json"
FORMAT_VERSION = 1
TABLE_KEYS = ("step", "action", "progress", "failed", "reward", "success", "stage")
_TMP_PREFIX = ".tmp-"


class MissingFramesError(DatasetError):
    """An episode folder lacks its frames (or they are empty): the episode is skipped and counted."""


# ------------------------------------------------------------------------------------------- read/write

def episodes_dir(root: str | os.PathLike) -> Path:
    return Path(root) / EPISODES


def write_episode(root: str | os.PathLike, ep: Episode, overwrite: bool = False) -> Path:
    """Write an episode atomically: into a temporary folder, then one rename.

    Returns:
        The episode folder.

    Raises:
        DatasetError: the episode exists already (and ``overwrite`` is False).
    """
    final = episodes_dir(root) / ep.episode_id
    if final.exists() and not overwrite:
        raise DatasetError(f"Episode {ep.episode_id!r} exists already in {root}")
    tmp = episodes_dir(root) / f"{_TMP_PREFIX}{ep.episode_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        np.savez_compressed(tmp / "frames.npz", frames=np.asarray(ep.frames, np.uint8),
                            frame_steps=np.asarray(ep.frame_steps, np.int32))
        np.savez_compressed(tmp / "steps.npz", **{k: np.asarray(v) for k, v in ep.table.items()})
        (tmp / "meta.json").write_text(json.dumps(_jsonable(ep.meta), indent=1))
        if final.exists() and overwrite:
            shutil.rmtree(final)
        os.rename(tmp, final)  # atomic; fails if another writer got there first
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if final.exists():
            raise DatasetError(f"Episode {ep.episode_id!r} exists already in {root}") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / "meta.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"Episode folder {folder} has no meta.json") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Corrupt episode meta file {path}: {exc}") from exc


def read_episode(folder: str | os.PathLike, load_frames: bool = True) -> Episode:
    """Read one episode folder.

    Raises:
        MissingFramesError: frames.npz is missing or holds no frames.
        DatasetError: a file is corrupt (the message names it).
    """
    folder = Path(folder)
    meta = read_meta(folder)
    table = _load_npz(folder / "steps.npz")
    missing = [k for k in ("progress", "failed") if k not in table]
    if missing:
        raise DatasetError(f"Episode table {folder / 'steps.npz'} lacks the columns {missing}")
    _check_table(table, meta, folder / "steps.npz")
    fpath = folder / "frames.npz"
    if not fpath.exists():
        raise MissingFramesError(f"Episode {folder.name} has no frames file ({fpath})")
    if load_frames:
        arrs = _load_npz(fpath)
        frames, frame_steps = arrs.get("frames"), arrs.get("frame_steps")
        if frames is None or frame_steps is None or len(frames) == 0:
            raise MissingFramesError(f"Episode {folder.name} holds no frames ({fpath})")
        if len(frames) != len(frame_steps) or frame_steps.max() >= len(table["progress"]):
            raise DatasetError(f"Inconsistent frames file {fpath}: {len(frames)} frames, "
                               f"{len(frame_steps)} frame steps, {len(table['progress'])} table rows")
        try:
            check_tiled(frames.shape, episode_views(meta), "frames")
        except ConfigError as exc:
            raise DatasetError(f"{fpath} does not match the views of its meta.json: {exc}") from exc
    else:
        frames = np.zeros((0, 1, 1, 3), np.uint8)
        frame_steps = np.zeros((0,), np.int32)
    return Episode(folder.name, meta, frames, frame_steps.astype(np.int64), table)


def episode_views(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The camera names tiled in an episode's frames (``meta["views"]``; empty where an older dataset did not
    record them: one view)."""
    return tuple(meta.get("views") or ())


def views_layout(views: Sequence[str]) -> tuple[str, ...]:
    """What a critic must agree on: the names of a multi-view layout, ``()`` for one view (of any camera)."""
    return tuple(views) if len(views) >= 2 else ()


def _check_table(table: dict[str, np.ndarray], meta: Mapping[str, Any], path: Path) -> None:
    """Raise DatasetError naming ``steps.npz`` when its columns differ in length, or from the episode's
    ``n_steps`` + 1 rows (a table of the wrong length would otherwise surface as a bad frames file)."""
    lengths = {k: len(v) for k, v in table.items() if np.ndim(v) >= 1}
    rows = lengths["progress"]
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"Corrupt episode table {path}: expected columns of one length, actually: {lengths}")
    n_steps = meta.get("n_steps")
    if isinstance(n_steps, int) and rows != n_steps + 1:
        raise DatasetError(f"Corrupt episode table {path}: expected {n_steps + 1} rows (n_steps {n_steps} in "
                           f"meta.json, plus the reset), actually: {rows}")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise DatasetError(f"Missing episode file {path}") from exc
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DatasetError(f"Corrupt episode file {path}: {type(exc).__name__}: {exc}") from exc


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# ---------------------------------------------------------------------------------------------- dataset

def list_episode_ids(root: str | os.PathLike) -> list[str]:
    """Names of the complete episode folders (temporary folders of unfinished writes are ignored)."""
    d = episodes_dir(root)
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def clean_stale_tmp(root: str | os.PathLike) -> int:
    """Remove temporary folders left by killed writers (those whose process is gone). Returns the count.

    A writer counts as gone when its pid is free, belongs to a zombie (killed, not yet reaped: right after a
    ``kill -9`` of a whole run), or belongs to a process that started after the folder was last written to
    (the pid was reused).
    """
    n = 0
    d = episodes_dir(root)
    if not d.is_dir():
        return 0
    for p in d.iterdir():
        if not p.name.startswith(_TMP_PREFIX):
            continue
        try:
            pid = int(p.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            pid = -1
        try:
            written = p.stat().st_mtime
        except FileNotFoundError:  # its writer finished meanwhile
            continue
        if pid > 0 and pid != os.getpid() and _writer_alive(pid, written):
            continue
        shutil.rmtree(p, ignore_errors=True)
        n += 1
    return n


def _writer_alive(pid: int, written: float) -> bool:
    """Whether process ``pid`` may still be the writer of a folder last modified at ``written`` (epoch s)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # Linux: the process's state and start time (fields 3 and 22 of /proc/PID/stat)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # no procfs: the pid exists, so assume the writer is alive
    if fields[0] in ("Z", "X"):
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= written + 1.0  # btime has a resolution of 1 s


def write_index(root: str | os.PathLike) -> dict[str, Any]:
    """Rebuild ``index.json`` from the episode folders (atomically) and return it."""
    entries = []
    for eid in list_episode_ids(root):
        try:
            m = read_meta(episodes_dir(root) / eid)
        except DatasetError as exc:
            logger.warning("index: skipping %s (%s)", eid, exc)
            continue
        entries.append({k: m.get(k) for k in ("episode_id", "task", "robot", "seed", "failure", "outcome",
                                               "n_steps", "n_frames", "failure_step", "success")})
    index = {"format_version": FORMAT_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "n_episodes": len(entries), "episodes": entries}
    write_text_atomic(Path(root) / INDEX, json.dumps(index, indent=1))
    return index


class EpisodeDataset:
    """A dataset folder: episode ids and metas up front, episodes loaded on demand.

    Episodes whose frames are missing are skipped and counted in :attr:`skipped`; a corrupt file raises a
    :class:`DatasetError` naming it.

    Args:
        root: the dataset folder.
        tasks / robots: keep only episodes of these tasks / robots.

    Raises:
        DatasetError: the folder does not exist or holds no episodes.
    """

    def __init__(self, root: str | os.PathLike, tasks: Sequence[str] | None = None,
                 robots: Sequence[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"Dataset folder not found: {self.root}")
        ids = list_episode_ids(self.root)
        if not ids:
            raise DatasetError(f"Dataset folder {self.root} holds no episodes (expected {self.root / EPISODES}"
                               f"/<episode_id>/meta.json; collect with scripts/collect.py)")
        self.metas: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}
        for eid in ids:
            folder = episodes_dir(self.root) / eid
            meta = read_meta(folder)
            if tasks is not None and meta.get("task") not in tasks:
                continue
            if robots is not None and meta.get("robot") not in robots:
                continue
            if not (folder / "frames.npz").exists():
                self.skipped[eid] = "missing frames.npz"
                continue
            self.metas[eid] = meta
        if self.skipped:
            logger.warning("%s: skipped %d episode(s) with missing frames: %s", self.root, len(self.skipped),
                           ", ".join(sorted(self.skipped)[:5]) + (" ..." if len(self.skipped) > 5 else ""))
        if not self.metas:
            raise DatasetError(f"Dataset folder {self.root} holds no usable episodes "
                               f"({len(self.skipped)} skipped for missing frames)")
        layouts: dict[tuple[str, ...], str] = {}
        for eid, meta in self.metas.items():
            layouts.setdefault(views_layout(episode_views(meta)), eid)
        if len(layouts) > 1:
            raise DatasetError(f"Dataset folder {self.root} mixes frames of different views: " + "; ".join(
                f"{list(v) or 'one view'} (e.g. {eid})" for v, eid in layouts.items())
                + "; a critic reads one layout: collect each view set into its own --out")
        #: the multi-view layout of every episode's frames (camera names), or () for one view
        self.views: tuple[str, ...] = next(iter(layouts))

    @property
    def ids(self) -> list[str]:
        return list(self.metas)

    def __len__(self) -> int:
        return len(self.metas)

    def load(self, episode_id: str, load_frames: bool = True) -> Episode | None:
        """Load one episode; None (counted in :attr:`skipped`) when its frames turn out missing or empty."""
        try:
            return read_episode(episodes_dir(self.root) / episode_id, load_frames=load_frames)
        except MissingFramesError as exc:
            self.skipped[episode_id] = str(exc)
            logger.warning("skipping episode: %s", exc)
            return None

    def __iter__(self) -> Iterator[Episode]:
        for eid in self.ids:
            ep = self.load(eid)
            if ep is not None:
                yield ep


def dataset_stats(root: str | os.PathLike) -> dict[str, Any]:
    """Counts of what a dataset holds: episodes per task, robot, outcome and failure mode; steps and frames."""
    ids = list_episode_ids(root)
    if not ids:
        raise DatasetError(f"Dataset folder {root} holds no episodes")
    c: dict[str, Counter] = {k: Counter() for k in ("task", "robot", "outcome", "failure", "task/robot")}
    steps = frames = 0
    missing = 0
    sizes = set()
    for eid in ids:
        folder = episodes_dir(root) / eid
        m = read_meta(folder)
        if not (folder / "frames.npz").exists():
            missing += 1
        for k in ("task", "robot", "outcome"):
            c[k][str(m.get(k))] += 1
        c["failure"][str(m.get("failure") or "none")] += 1
        c["task/robot"][f"{m.get('task')}/{m.get('robot')}"] += 1
        steps += int(m.get("n_steps", 0))
        frames += int(m.get("n_frames", 0))
        sizes.add(m.get("image_size"))
    return {"episodes": len(ids), "steps": steps, "frames": frames, "missing_frames": missing,
            "image_size": sorted(s for s in sizes if s is not None),
            **{k: dict(sorted(v.items())) for k, v in c.items()}}
