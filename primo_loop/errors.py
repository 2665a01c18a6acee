"""Typed errors. Every message says what was expected, what came, and how to fix it."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class PrimoError(Exception):
    """Base class of every error primo_loop raises on purpose."""


class UnknownNameError(PrimoError, ValueError):
    """A name (env, robot, critic, failure mode, ...) is not one of the valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name = kind, name
        self.choices = sorted(choices)
        close = closest(name, self.choices)
        hint = f" Did you mean {close!r}?" if close else ""
        super().__init__(f"Unknown {kind} {name!r}; valid: {', '.join(self.choices)}.{hint}")


class UnsupportedError(PrimoError, ValueError):
    """A combination of valid choices that cannot work (e.g. a task/robot pair)."""


class ConfigError(PrimoError, ValueError):
    """An option has a value outside its allowed range or type."""


class CriticOutputError(PrimoError):
    """A critic's raw answer could not be read (only raised when a caller asks for strictness)."""


class CriticUnavailableError(PrimoError):
    """A critic backend cannot be reached or loaded (missing model, server down after retries)."""


class CheckpointError(PrimoError):
    """A checkpoint is missing, corrupt, or its config does not match what is expected."""


class DatasetError(PrimoError):
    """A dataset (folder of episodes or PRIMO JSONL) is empty, corrupt or inconsistent."""


class MissingDependencyError(PrimoError, ImportError):
    """An optional heavy dependency is not installed."""

    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the package {package!r}; install it with `pip install {package}` "
                         f"(or `make .venv` for the full pinned stack).")


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the valid choice nearest to ``name`` (case-insensitive), or None.

    >>> closest("lfit", ["Lift", "Stack"])
    'Lift'
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.4)
    return lowered[match[0]] if match else None


def check_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """Return ``name`` if valid (exact, then case-insensitive match); raise UnknownNameError otherwise."""
    choices = list(choices)
    if name in choices:
        return name
    for c in choices:
        if c.lower() == name.lower():
            return c
    raise UnknownNameError(kind, name, choices)


def check_counts(obj: object, names: Iterable[str], kind: str = "") -> None:
    """Raise ConfigError unless each attribute ``names`` of ``obj`` is an integer >= 1 (``kind``: "refresh option")."""
    import numbers

    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            label = f"{kind} `{name}`" if kind else f"`{name}`"
            raise ConfigError(f"Expected {label} to be an integer >= 1, actually: {value!r}")


def from_options(cls: type, kind: str, options: dict) -> object:
    """Build dataclass ``cls`` from keyword options, naming an unknown one with the closest valid field."""
    for key in options:
        check_choice(kind, key, cls.__dataclass_fields__)
    return cls(**options)
