"""Critic registry: backends registered by name, built by :func:`make_critic` with a lazy import.

>>> sorted(available_critics())
['compact', 'oracle', 'primo', 'remote']
"""
from __future__ import annotations

import importlib
from typing import Any

from primo_loop.critics.base import Critic
from primo_loop.errors import check_choice

# name -> "module:factory"; the module is imported only when the critic is built.
_REGISTRY: dict[str, str] = {
    "oracle": "primo_loop.critics.oracle:OracleCritic",
    "compact": "primo_loop.critics.compact:CompactCritic",
    "primo": "primo_loop.critics.primo:VLMCritic",
    "remote": "primo_loop.critics.remote:RemoteCritic",
}

DEFAULT_CRITIC = "compact"
FALLBACK_CRITIC = "oracle"


def default_critic_name() -> str:
    """The embedded compact critic when its checkpoint ships in the package, else the oracle."""
    from importlib.resources import files

    return DEFAULT_CRITIC if (files("primo_loop") / "assets" / "compact" / "config.json").is_file() else FALLBACK_CRITIC


def register_critic(name: str, target: str) -> None:
    """Register a backend as ``"package.module:Factory"`` under a snake_case name."""
    _REGISTRY[name] = target


def available_critics() -> list[str]:
    return list(_REGISTRY)


def make_critic(name: str, **options: Any) -> Critic:
    """Build the critic registered as ``name`` with backend-specific ``options``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the names and the closest).
    """
    name = check_choice("critic", name, _REGISTRY)
    module, _, attr = _REGISTRY[name].partition(":")
    factory = getattr(importlib.import_module(module), attr)
    return factory(**options)


def resolve_critic(critic: Critic | str | None = None, **options: Any) -> Critic:
    """A critic instance from an instance, a registered name, or None (the default critic)."""
    if critic is None:
        critic = default_critic_name()
    if isinstance(critic, str):
        return make_critic(critic, **options)
    if options:
        raise TypeError("critic options are only used when the critic is given by name")
    if not callable(getattr(critic, "assess", None)):
        raise TypeError(f"Expected a critic with an `assess` method or a registered name, actually: {critic!r}")
    return critic


__all__ = ["resolve_critic", "default_critic_name", "DEFAULT_CRITIC", "Critic", "available_critics", "make_critic", "register_critic"]
