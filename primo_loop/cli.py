"""Small helpers shared by the command-line scripts: option parsing, bad-input exits, output folders, help."""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError, PrimoError, UnknownNameError, UnsupportedError

BAD_INPUT = 2


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, booleans, null, lists), else the string.

    >>> parse_value("0.5"), parse_value("true"), parse_value("runs/x")
    (0.5, True, 'runs/x')
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, with values parsed by :func:`parse_value`."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"Expected an option as key=value, actually: {pair!r}")
        key = key.strip().replace("-", "_")
        if key in out:
            raise ConfigError(f"Option {key!r} given twice ({out[key]!r} and {parse_value(value)!r}); give it once")
        out[key] = parse_value(value)
    return out


def options_beside_flags(flags: Mapping[str, Any], pairs: Sequence[str] | None, channel: str) -> dict[str, Any]:
    """``flags`` (settings that have their own flag) plus the ``KEY=VALUE`` settings of ``channel``; a setting
    has one route, so a key that has its own flag is refused.

    >>> options_beside_flags({"critic_every": 10}, ["terminate=false"], "--tracker-option")
    {'critic_every': 10, 'terminate': False}
    >>> options_beside_flags({"critic_every": 10}, ["critic_every=5"], "--tracker-option")
    Traceback (most recent call last):
    ...
    primo_loop.errors.ConfigError: --tracker-option critic_every=5: that setting has its own flag, --critic-every; give it there
    """
    extra = parse_options(pairs)
    for pair in pairs or ():
        key = pair.partition("=")[0].strip().replace("-", "_")
        if key in flags:
            raise ConfigError(f"{channel} {pair.strip()}: that setting has its own flag, "
                              f"--{key.replace('_', '-')}; give it there")
    return {**flags, **extra}


# Square frame sizes a script accepts: below 32 px a scene is unreadable, above 1024 px a rollout's frames
# no longer fit in memory.
FRAME_SIZE_RANGE = (32, 1024)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the description's layout and shows every option's default."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and _shows_default(action):
            action = copy.copy(action)
            action.help = "default: %(default)s"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and _shows_default(action):
            text += " (default: %(default)s)"
        return text


def _shows_default(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.default not in (None, False, argparse.SUPPRESS, [])


def new_parser(doc: str | None, prog: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser whose description is the first line of ``doc`` and whose help shows the defaults."""
    description = doc.strip().splitlines()[0] if doc and doc.strip() else None
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def add_output_flags(parser: argparse.ArgumentParser, resume: bool = False) -> None:
    """``--overwrite`` (and ``--resume`` where a run can be continued) for a script that writes a run folder;
    the script then opens it with :func:`primo_loop.outputs.output_folder`."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty --out (the old one is deleted only once the run succeeds)")
    if resume:
        parser.add_argument("--resume", action="store_true", help="continue the run in a non-empty --out")


def check_frame_size(size: int, flag: str = "--size") -> int:
    """Raise ConfigError unless ``size`` is in :data:`FRAME_SIZE_RANGE`."""
    lo, hi = FRAME_SIZE_RANGE
    if not lo <= size <= hi:
        raise ConfigError(f"Expected {flag} between {lo} and {hi} pixels, actually: {size}")
    return size


def writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it (no guard against clobbering: a
    script that writes a run folder uses :func:`primo_loop.outputs.output_folder`)."""
    from primo_loop.outputs import writable_folder

    return writable_folder(path)


def named_folders(folders: Sequence[str], names: Sequence[str] | None) -> dict[str, str]:
    """``{name: folder}`` for a ``--compare`` option: ``--names`` gives one distinct name per folder, else each
    folder's own name is used.

    Raises:
        ConfigError: not one distinct name per folder.
    """
    names = list(names) if names else [Path(f).name for f in folders]
    if len(names) != len(folders) or len(set(names)) != len(names):
        raise ConfigError(f"Expected one distinct --names entry per --compare folder, actually: {names} for "
                          f"{len(folders)} folders")
    return dict(zip(names, folders))


def run(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; bad input (unknown names, impossible combinations, bad options) exits
    with status 2 and one line on stderr; Ctrl-C exits with 130 after whatever ``main`` saved."""
    logging.basicConfig(level=os.environ.get("PRIMO_LOG_LEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = main()
    except (UnknownNameError, UnsupportedError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except PrimoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
