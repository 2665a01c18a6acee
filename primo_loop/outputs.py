"""Outputs that are never clobbered: atomic file writes and the guard every script puts on its run folder.

* :func:`atomic_path` / :func:`write_text_atomic`: a file appears under its final name whole or not at all.
* :func:`output_folder`: a run folder is new, or continued on ``--resume``, or replaced on ``--overwrite``;
  a run that fails removes what it created (an ``--out`` it made is gone again, an ``--overwrite``-n folder
  comes back as it was).
* :func:`removed_on_failure`: the same clean-up for outputs that are not one folder (a JSONL with media beside it).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from primo_loop.errors import ConfigError

logger = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A reader never sees a half-written file: the rename is atomic on POSIX file systems.

    Args:
        path: the final path.
        suffix: suffix of the temporary file (defaults to ``path``'s, so writers that pick a format
            from the extension still work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and next(path.iterdir(), None) is None


def _check_replaceable(path: Path) -> None:
    """Refuse to replace a folder whose loss could not be meant: the root, home, the working folder or above."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or cwd.is_relative_to(resolved):
        raise ConfigError(f"Expected --out to be a run folder, actually: {str(path)!r} is the root, home or "
                          "working folder (or above it); --overwrite will not replace it: pass a new --out")


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                  can_resume: bool = False) -> Iterator[Path]:
    """Guard a run's output folder for the ``with`` block that fills it.

    The folder must be new or empty; an existing non-empty folder is refused unless ``resume`` (continue it;
    only where the script can resume, ``can_resume``) or ``overwrite`` (replace it: the old folder is set
    aside and deleted only once the run succeeds). If the block raises (Ctrl-C excepted: an interrupted run
    keeps what it saved, so it can be resumed or looked at), what the run created is removed: a folder it made
    (and the parents it made) is gone, a folder it replaced is restored, an empty folder is emptied again.

    Args:
        path: the ``--out`` folder.
        resume: ``--resume`` was given.
        overwrite: ``--overwrite`` was given.
        can_resume: the script knows how to continue a run folder.

    Raises:
        ConfigError: the folder is not empty and neither flag allows it, both flags are given, the path is a
            file, or it cannot be written.
    """
    path = Path(path)
    if resume and overwrite:
        raise ConfigError("Expected at most one of --resume and --overwrite, actually: both")
    if resume and not can_resume:
        raise ConfigError("--resume has no meaning for this script; pass --overwrite to replace the folder, or a "
                          "new --out")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"Expected --out to be a folder, actually: {str(path)!r} is a file")
    nonempty = path.is_dir() and not _is_empty_dir(path)
    if nonempty and not (resume or overwrite):
        how = "--resume to continue it, --overwrite to replace it" if can_resume else "--overwrite to replace it"
        raise ConfigError(f"Output folder {str(path)!r} exists and is not empty; pass {how}, or a new --out")
    made = _missing_ancestors(path)
    aside = None
    if overwrite and nonempty:
        _check_replaceable(path)
        aside = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.rename(path, aside)
    try:
        writable_folder(path)
    except BaseException:
        _undo(path, made, aside, emptied=not nonempty and path.is_dir())
        raise
    existed_empty = not made and aside is None and not (resume and nonempty)
    try:
        yield path
    except KeyboardInterrupt:
        if aside is not None:
            logger.warning("interrupted: the replaced folder is kept at %s", aside)
        raise
    except BaseException:
        if not (resume and nonempty):
            _undo(path, made, aside, emptied=existed_empty)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost last."""
    out, p = [], path
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def writable_folder(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Raises:
        ConfigError: it cannot be made or written (the message names it and why).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {str(path)!r}: {exc.strerror or exc}") from exc
    return path


def _undo(path: Path, made: list[Path], aside: Path | None, emptied: bool) -> None:
    if made:
        shutil.rmtree(made[-1], ignore_errors=True)
    elif aside is not None:
        shutil.rmtree(path, ignore_errors=True)
        os.rename(aside, path)
    elif emptied and path.is_dir():
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    logger.info("failed run: removed what it created under %s", path)


@contextlib.contextmanager
def removed_on_failure(paths: Iterable[str | os.PathLike], replace: Iterable[str | os.PathLike] = ()
                       ) -> Iterator[None]:
    """Outputs that are not one folder (a JSONL with media beside it), made safe for the ``with`` block.

    Those of ``paths`` and ``replace`` that do not exist yet are removed if the block raises (Ctrl-C included:
    these outputs cannot be resumed). Those of ``replace`` that exist (the caller was told ``--overwrite``) are
    set aside first: deleted once the block succeeds, put back if it raises, so a replaced output never mixes
    old and new files.
    """
    replace = [Path(p) for p in replace]
    fresh = [Path(p) for p in [*paths, *replace] if not Path(p).exists()]
    aside = {}
    for p in replace:
        if p.exists():
            aside[p] = p.with_name(f".{p.name}.replaced-{uuid.uuid4().hex[:8]}")
            os.rename(p, aside[p])
    try:
        yield
    except BaseException:
        for p in [*aside, *reversed(fresh)]:
            _remove(p)
        for p, old in aside.items():
            os.rename(old, p)
        raise
    for old in aside.values():
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
