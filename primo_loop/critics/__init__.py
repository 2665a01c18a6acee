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
    "primo": "primo_loop.critics.vlm:VLMCritic",
    "remote": "primo_loop.critics.remote:RemoteCritic",
}

DEFAULT_CRITIC = "compact"


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


__all__ = ["DEFAULT_CRITIC", "Critic", "available_critics", "make_critic", "register_critic"]
