"""Typed errors. Every message says what was expected, what came, and how to fix it."""
from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from typing import Any


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

    def __reduce__(self):  # rebuilt from its arguments: it crosses process boundaries (collection workers, Ray)
        return type(self), (self.kind, self.name, self.choices)


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


class TrainingError(PrimoError):
    """A training run cannot go on (e.g. its loss became non-finite); nothing of the bad step is saved."""


class DatasetError(PrimoError):
    """A dataset (folder of episodes or PRIMO JSONL) is empty, corrupt or inconsistent."""


class MissingDependencyError(PrimoError, ImportError):
    """An optional heavy dependency is not installed."""

    def __init__(self, package: str, purpose: str):
        self.package, self.purpose = package, purpose
        super().__init__(f"{purpose} needs the package {package!r}; install it with `pip install {package}` "
                         f"(or `make .venv` for the full pinned stack).")

    def __reduce__(self):
        return type(self), (self.package, self.purpose)


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
    """Build dataclass ``cls`` from keyword options, naming an unknown one with the closest valid field and a
    value of the wrong type with the type its field expects."""
    for key in options:
        check_choice(kind, key, cls.__dataclass_fields__)
    return cls(**check_types(cls, kind, options))


def check_types(target: Any, kind: str, options: dict) -> dict:
    """Check ``options`` against the annotations of ``target`` (a dataclass, class or function); returns them
    with scalars given for a ``str`` field turned into strings (``model=123`` is a name, not a number).

    Options without an annotation pass unchecked (a factory need not annotate).

    Raises:
        ConfigError: one line naming the option, the value and the expected type.

    >>> check_types(lambda noise_std=0.0: None, "critic option", {"noise_std": 0.5})
    {'noise_std': 0.5}
    >>> def f(noise_std: float = 0.0): ...
    >>> try:
    ...     check_types(f, "critic option", {"noise_std": "abc"})
    ... except ConfigError as exc:
    ...     print(exc)
    Expected critic option `noise_std` to be a number (float), actually: 'abc' (str)
    >>> def g(folders: list[str] = ()): ...
    >>> check_types(g, "refresh option", {"folders": "data/lift"})
    {'folders': ['data/lift']}
    """
    hints = _type_hints(target)
    out = dict(options)
    for key, value in options.items():
        hint = hints.get(key)
        if hint is None or _matches(value, hint):
            continue
        if isinstance(value, str) and _is_string_list(hint):  # one path where a list of paths is expected
            out[key] = [value]
            continue
        if isinstance(value, (int, float, bool)) and _matches("x", hint):
            out[key] = json.dumps(value) if isinstance(value, bool) else str(value)
            continue
        raise ConfigError(f"Expected {kind} `{key}` to be {_describe(hint)}, actually: {value!r} "
                          f"({type(value).__name__})")
    return out


def _type_hints(target: Any) -> dict[str, Any]:
    import typing

    fn = target.__init__ if isinstance(target, type) and not hasattr(target, "__dataclass_fields__") else target
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check against
        return {}


def _matches(value: Any, hint: Any) -> bool:
    import numbers
    import types
    import typing

    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:  # numbers.Real: numpy scalars too
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is str:  # a path object where a path string is annotated is fine
        return isinstance(value, (str, os.PathLike))
    base = origin or hint
    if base in (list, tuple, set, frozenset) or base is typing.Sequence or getattr(base, "__name__", "") == "Sequence":
        return isinstance(value, (list, tuple))
    if base is dict or getattr(base, "__name__", "") == "Mapping":
        return isinstance(value, dict)
    if isinstance(base, type) and base.__module__ in ("os", "pathlib"):  # os.PathLike, Path: or a path string
        return isinstance(value, (str, os.PathLike))
    return True  # a type we do not check (a config object, a callable)


def _is_string_list(hint: Any) -> bool:
    import typing

    base = typing.get_origin(hint)
    return (base in (list, tuple) or getattr(base, "__name__", "") == "Sequence") and \
        [a for a in typing.get_args(hint) if a is not Ellipsis] == [str]


def _describe(hint: Any) -> str:
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    names = {bool: "true or false", float: "a number (float)", int: "an integer", str: "a string",
             type(None): "null"}
    if hint in names:
        return names[hint]
    base = origin or hint
    if base in (list, tuple) or getattr(base, "__name__", "") == "Sequence":
        return "a list (JSON, e.g. [1, 2])"
    if base is dict:
        return "an object (JSON, e.g. {\"k\": 1})"
    return getattr(hint, "__name__", str(hint))
