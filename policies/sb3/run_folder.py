"""A training run's folder: ``config.json``, ``eval.csv`` (and ``refresh.csv``), ``checkpoints/`` (policies, the
newest replay buffers, online-refresh states), ``final_model.zip``, ``done.json``.

Reading and writing it lives here: the CSV logs, listing, pruning and loading checkpoints (a half-written one is
skipped on resume; a corrupt one asked for by name is one line naming the file), and the guard of the output
folder (an existing run is refused unless resumed or overwritten).
"""
from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError
from primo_loop.training.refresh_config import STATE_PREFIX

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "model"
_CKPT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)_steps\.zip$")
EVAL_FIELDS = ("timesteps", "success_rate", "mean_reward", "episodes", "wall_s")
#: settings a resumed run must share with the run it continues (a checkpoint keeps the hyperparameters it was
#: saved with, so a changed ``algo_kwargs`` would be recorded in config.json yet not trained with)
RESUME_KEYS = ("env", "robot", "algo", "reward", "critic", "workers", "horizon", "seed", "action", "algo_kwargs")


# ---------------------------------------------------------------------------------------------------------
# The output folder
# ---------------------------------------------------------------------------------------------------------
def prepare_out(out: str | Path, *, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """The run folder, checked: an existing non-empty one is refused unless ``resume`` or ``overwrite`` (which
    empties it first, and only if it is a run folder: one with a ``config.json``). Returns the folder and whether
    this call created it (a failed start removes it)."""
    from primo_loop.cli import writable_dir

    out = Path(out)
    existed = out.exists()
    if existed and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a folder: pass a folder")
    if existed and any(out.iterdir()):
        if overwrite:
            if not (out / "config.json").is_file():  # never delete a folder that is not a run
                raise ConfigError(f"--overwrite replaces a run folder, and {str(out)!r} holds no config.json of "
                                  "one: empty it yourself or pass a new --out")
            shutil.rmtree(out)
            existed = False
        elif not resume:
            raise ConfigError(f"--out {str(out)!r} is not empty: pass --resume to continue the run in it, "
                              "--overwrite to replace it, or a new --out")
    return writable_dir(out), not existed


def remove_failed_start(out: Path) -> None:
    """Remove a run folder this run created and that holds no checkpoint (what a failed start left)."""
    if out.is_dir() and not list_checkpoints(out / "checkpoints") and not (out / "final_model.zip").exists():
        shutil.rmtree(out, ignore_errors=True)


def check_resume_config(out: Path, cfg: Any) -> None:
    """Refuse a ``--resume`` whose settings differ from those of the run in ``out``."""
    saved_path = out / "config.json"
    if not saved_path.exists():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{saved_path} is not readable JSON ({exc}): use a new --out, or --overwrite") from exc
    if "tracker" not in saved:
        raise ConfigError(f"{saved_path} was written by an earlier train_agent.py (flat tracker options): its "
                          "policies load with TrainedPolicy, but it cannot be resumed; start a new --out")
    mine = cfg.as_dict()
    keys = [*RESUME_KEYS, "refresh.every"]
    for key in keys:
        part, _, sub = key.partition(".")
        theirs = saved.get(part, {}).get(sub, 0) if sub else saved.get(part, mine[part])
        asked = mine[part][sub] if sub else mine[part]
        if theirs != asked:
            raise ConfigError(f"--resume with a different `{key}`: the run in {str(out)!r} used {theirs!r}, "
                              f"this command asks for {asked!r}; use a new --out or the same options.")


# ---------------------------------------------------------------------------------------------------------
# CSV logs
# ---------------------------------------------------------------------------------------------------------
def append_eval_row(path: Path, row: Mapping[str, Any], fields: Sequence[str] | None = EVAL_FIELDS) -> None:
    """Append a row to an eval CSV (header written on creation).

    ``fields=None``: the columns are the file's own plus any new key of ``row`` (the file is rewritten with the
    wider header then, so a run resumed by a newer version that logs more keeps one readable table)."""
    if fields is None:
        old: list[dict[str, str]] = []
        header: list[str] = []
        if path.exists():
            with path.open() as f:
                reader = csv.DictReader(f)
                header, old = list(reader.fieldnames or []), list(reader)
        fields = header + [k for k in row if k not in header]
        if header and fields != header:
            path.unlink()
            for r in old:
                append_eval_row(path, r, fields)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k) for k in fields})


def read_eval(path: str | Path) -> list[dict[str, float]]:
    """Rows of an eval CSV as floats (empty if it does not exist; an empty cell is left out of its row)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


def truncate_eval(path: Path, timesteps: int) -> None:
    """Drop rows of an eval (or refresh) CSV after ``timesteps`` (they came from steps lost to a kill and will
    be redone). Values are rewritten as read (float text)."""
    if not path.exists():
        return
    with path.open() as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or EVAL_FIELDS)
        rows = [r for r in reader if float(r["timesteps"]) <= timesteps]
    path.unlink()
    for r in rows:
        append_eval_row(path, r, fields)


# ---------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------
def buffer_path(ckpt: Path) -> Path:
    """The replay buffer saved with a checkpoint."""
    steps = _CKPT_RE.match(ckpt.name).group(1)
    return ckpt.with_name(f"{CHECKPOINT_PREFIX}_replay_buffer_{steps}_steps.pkl")


def refresh_state_path(folder: Path, steps: int) -> Path:
    """Where the online-refresh state saved with the checkpoint of ``steps`` env steps lives."""
    return Path(folder) / f"{STATE_PREFIX}_{int(steps)}_steps.pt"


def _refresh_path(ckpt: Path) -> Path:
    return refresh_state_path(ckpt.parent, int(_CKPT_RE.match(ckpt.name).group(1)))


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(timesteps, path)`` of the checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete the replay buffers of all but the newest ``keep`` checkpoints. The policies stay (a few MB each
    against ~70 MB for a buffer): a run's earlier agents remain there to watch or to collect episodes from."""
    for _, path in list_checkpoints(folder)[keep:]:
        buffer_path(path).unlink(missing_ok=True)
        _refresh_path(path).unlink(missing_ok=True)


def load_model(cls: Any, path: str | Path, **kwargs: Any) -> Any:
    """``cls.load(path, **kwargs)`` without SB3's false warning about n-step SAC models; a file that does not
    load (truncated, not a model) is a :class:`ConfigError` naming it.

    SB3 (2.9 here) warns on every load of an n-step SAC that its ``n_steps`` "is ignored" next to the replay buffer
    class it chose itself; the saved buffer kwargs (and a saved buffer loaded after) keep the n-step returns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom")
        try:
            return cls.load(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a truncated zip/pickle raises many kinds
            raise ConfigError(f"{path} does not load as a saved {cls.__name__} model ({type(exc).__name__}: "
                              f"{exc}); it is truncated or not a model: use another checkpoint") from exc


def load_latest(cfg: Any, env: Any, algo_cls: Any):
    """The newest checkpoint that loads (with its replay buffer for SAC), or None if there is none.

    A checkpoint half-written when the run was killed fails to load and the previous one is used; when none
    loads, a :class:`ConfigError` names the newest (a run is never silently restarted over its checkpoints).
    """
    found = list_checkpoints(Path(cfg.out) / "checkpoints")
    for steps, path in found:
        buffer = buffer_path(path)
        if cfg.algo == "sac" and not buffer.exists():
            log.warning("checkpoint %s has no replay buffer; trying an older one", path.name)
            continue
        if cfg.refresh.every and not _refresh_path(path).exists():
            log.warning("checkpoint %s has no critic-refresh state; trying an older one", path.name)
            continue
        try:
            model = load_model(algo_cls, path, env=env, device=cfg.device)
            if cfg.algo == "sac":
                model.load_replay_buffer(buffer)
                grow_replay_buffer(model, int(cfg.hyperparameters()["buffer_size"]))
        except Exception as exc:  # noqa: BLE001 - a truncated zip/pickle raises many kinds
            log.warning("cannot load checkpoint %s (%r); trying an older one", path.name, exc)
            continue
        log.info("resuming from %s (%d env steps)", path.name, model.num_timesteps)
        return model
    if found:
        raise ConfigError(f"--resume: no checkpoint in {found[0][1].parent} loads (the newest, {found[0][1]}, is "
                          "truncated or lacks its replay buffer): use --overwrite to start anew")
    return None


def grow_replay_buffer(model: Any, size: int) -> None:
    """Give a resumed SAC the buffer its (longer) run needs, oldest transitions first.

    The buffer is sized to the run's steps; a run resumed with more ``steps`` would otherwise overwrite its
    oldest transitions (the demonstrations among them) once it passes the old size.
    """
    rb = model.replay_buffer
    if rb.buffer_size >= size:
        return
    new = type(rb)(size, rb.observation_space, rb.action_space, device=rb.device, n_envs=rb.n_envs,
                   optimize_memory_usage=rb.optimize_memory_usage,
                   handle_timeout_termination=rb.handle_timeout_termination)
    n = rb.buffer_size if rb.full else rb.pos
    order = (np.arange(rb.pos, rb.pos + n) % rb.buffer_size) if rb.full else np.arange(n)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        getattr(new, name)[:n] = getattr(rb, name)[order]
    new.pos, new.full = n, False
    for name in ("demos", "demo_fraction", "_pending", "n_steps", "gamma"):  # DemoReplayBuffer, SB3 NStepReplayBuffer
        if hasattr(rb, name):
            setattr(new, name, getattr(rb, name))
    model.replay_buffer = new
    model.buffer_size = size


def run_files(run_dir: str | Path, steps: int | None = None) -> tuple[Path, Path]:
    """A training run's model zip and replay buffer: the final ones, or the checkpoint at ``steps``.

    Raises:
        ConfigError: no such checkpoint (naming the ones there are), or no finished run in ``run_dir``.
    """
    run_dir = Path(run_dir)
    if steps is None:
        model, buffer = run_dir / "final_model.zip", run_dir / "final_replay_buffer.pkl"
    else:
        found = dict(list_checkpoints(run_dir / "checkpoints"))
        if steps not in found:
            raise ConfigError(f"no checkpoint at {steps} steps in {run_dir}; there are: {sorted(found) or 'none'}")
        model, buffer = found[steps], buffer_path(found[steps])
    if not model.exists():
        raise ConfigError(f"{model} not found: is {run_dir} a finished run of scripts/train_agent.py?")
    return model, buffer
