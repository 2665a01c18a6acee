"""Critic registry: backends registered by name, built by :func:`make_critic` with a lazy import.

>>> sorted(available_critics())
['cascade', 'compact', 'oracle', 'primo', 'remote']
"""
from __future__ import annotations

import importlib
from typing import Any

from primo_loop.critics.base import Critic
from primo_loop.errors import ConfigError, check_choice, check_types, closest

# name -> "module:factory"; the module is imported only when the critic is built.
_REGISTRY: dict[str, str] = {
    "oracle": "primo_loop.critics.oracle:OracleCritic",
    "compact": "primo_loop.critics.compact:CompactCritic",
    "primo": "primo_loop.critics.primo:VLMCritic",
    "remote": "primo_loop.critics.remote:RemoteCritic",
    "cascade": "primo_loop.critics.cascade:CascadeCritic",
}

DEFAULT_CRITIC = "compact"
FALLBACK_CRITIC = "oracle"


def default_critic_name() -> str:
    """The embedded compact critic when its checkpoint ships in the package, else the oracle."""
    from importlib.resources import files

    return DEFAULT_CRITIC if (files("primo_loop") / "assets" / "compact" / "config.json").is_file() else FALLBACK_CRITIC


def register_critic(name: str, target: str) -> None:
    """Register a backend under a snake_case ``name`` as ``"package.module:Factory"``.

    The module is imported only when the critic is built, so registering costs nothing. ``Factory`` is a
    class or function whose keyword arguments are the backend's options; it returns an object with
    ``assess(queries) -> list[CriticVerdict]`` (progress on the 0-1 scale). Once registered, the name works
    wherever a critic name does: ``make_critic``, the wrappers, and every script's ``--critic``.

    Example (``mypkg/critics.py`` defines ``class MyCritic``, built as ``MyCritic(threshold=0.3)``)::

        from primo_loop.critics import make_critic, register_critic

        register_critic("mine", "mypkg.critics:MyCritic")
        critic = make_critic("mine", threshold=0.3)

    Without registering, scripts take the import path itself: ``--critic mypkg.critics:MyCritic
    --critic-option threshold=0.3``.

    Raises:
        ConfigError: ``target`` is not of the form ``"package.module:Factory"``.
    """
    _split_target(target, f"register_critic({name!r}, ...)")
    _REGISTRY[name] = target


def available_critics() -> list[str]:
    """The registered critic names."""
    return list(_REGISTRY)


def _split_target(spec: str, what: str) -> tuple[str, str]:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise ConfigError(f"Expected {what} to be \"package.module:Factory\", actually: {spec!r}")
    return module, attr


def critic_factory(spec: str) -> Any:
    """The callable that builds critic ``spec``: a registered name or ``"package.module:Factory"``.

    Imports the backend's module (a registered name imports its module only here).

    Raises:
        UnknownNameError: ``spec`` is a plain name that is not registered (lists the names and the closest).
        ConfigError: the module of ``"package.module:Factory"`` does not import, or has no such callable.
    """
    if ":" not in spec:
        spec = check_choice("critic", spec, _REGISTRY)
        target = _REGISTRY[spec]
    else:
        target = spec
    module, attr = _split_target(target, "a critic given by import path")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        if module.split(".")[0] != "primo_loop" and getattr(exc, "name", None) and \
                module.startswith(str(exc.name)):
            raise ConfigError(f"Critic {spec!r}: cannot import module {module!r} ({exc}); expected an importable "
                              "package.module:Factory (is its folder on PYTHONPATH, or the package installed?)"
                              ) from exc
        raise  # the module exists but a dependency of it is missing: keep the real error
    factory = getattr(mod, attr, None)
    if not callable(factory):
        names = [n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n))]
        close = closest(attr, names)
        raise ConfigError(f"Critic {spec!r}: module {module!r} has no callable {attr!r}"
                          + (f"; did you mean {module}:{close}?" if close else
                             f"; its callables: {', '.join(sorted(names)[:12]) or 'none'}"))
    return factory


def check_critic(spec: str) -> str:
    """Validate critic ``spec`` without building it (scripts call it before paying for a simulator); returns
    the canonical registered name, or ``spec`` itself for an import path."""
    critic_factory(spec)
    return spec if ":" in spec else check_choice("critic", spec, _REGISTRY)


def make_critic(name: str, **options: Any) -> Critic:
    """Build a critic: ``name`` is a registered name (:func:`available_critics`) or ``"package.module:Factory"``
    for a critic of your own; ``options`` go to its factory as keyword arguments, checked against the
    factory's annotations.

    Raises:
        UnknownNameError: ``name`` is not registered, or an option is not one the backend takes (the message
            lists the valid ones and the closest).
        ConfigError: an import path that does not lead to a callable, or an option of the wrong type.
    """
    factory = critic_factory(name)
    _check_option_names(factory, name, options)
    return factory(**check_types(factory, "critic option", options))


def _check_option_names(factory: Any, name: str, options: dict[str, Any]) -> None:
    """An option the factory does not take is an UnknownNameError listing those it takes (unless it takes
    ``**kwargs``, or its signature cannot be read)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        check_choice(f"option of critic {name!r}", key, valid)


def resolve_critic(critic: Critic | str | None = None, **options: Any) -> Critic:
    """A critic instance from an instance, a name (registered or ``"package.module:Factory"``), or None (the
    default critic)."""
    if critic is None:
        critic = default_critic_name()
    if isinstance(critic, str):
        return make_critic(critic, **options)
    if options:
        raise TypeError("critic options are only used when the critic is given by name")
    if not callable(getattr(critic, "assess", None)):
        raise TypeError(f"Expected a critic with an `assess` method or a registered name, actually: {critic!r}")
    return critic


__all__ = ["resolve_critic", "default_critic_name", "DEFAULT_CRITIC", "Critic", "available_critics", "make_critic",
           "register_critic", "check_critic", "critic_factory"]
