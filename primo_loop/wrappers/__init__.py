"""The critic in the loop: :class:`CriticInTheLoop` (one Gymnasium env) and :class:`VecCriticInTheLoop` (an SB3
VecEnv), in parallel modules (:mod:`~primo_loop.wrappers.single`, :mod:`~primo_loop.wrappers.vector`) over the
shared pieces of :mod:`~primo_loop.wrappers.common`; both are thin shells over
:class:`primo_loop.tracker.EpisodeTracker`.

The wrappers are imported on first use, so ``import primo_loop.wrappers`` loads neither gymnasium's wrapper
machinery nor SB3 (and torch).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from primo_loop.wrappers.common import CriticCaller, check_verdict, merge_tracker_config, privileged_from_info

if TYPE_CHECKING:
    from primo_loop.wrappers.single import CriticInTheLoop
    from primo_loop.wrappers.vector import VecCriticInTheLoop

_LAZY = {"CriticInTheLoop": "primo_loop.wrappers.single", "VecCriticInTheLoop": "primo_loop.wrappers.vector"}

__all__ = ["CriticCaller", "CriticInTheLoop", "VecCriticInTheLoop", "check_verdict", "merge_tracker_config",
           "privileged_from_info"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
