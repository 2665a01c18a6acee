"""The critic protocol: one method, batched, same order, never raising for one bad answer.

What a caller may rely on beyond ``assess`` is declared by the backend as class attributes, never guessed
from its name; :func:`capabilities` reads them with the defaults a critic without them gets:

- ``needs_frames`` [True]: the critic looks at the frames (the oracle does not: it reads privileged state).
- ``needs_privileged`` [False]: the critic reads ``CriticQuery.privileged`` and cannot answer without it.
- ``refreshable`` [False]: the critic can be fine-tuned in place while an agent trains (online refresh).

A critic that reads several cameras declares them as ``views`` (a tuple of camera names, tiled left to right in
each frame in that order; :func:`critic_views`); the wrappers then render those cameras for it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from primo_loop.types import CriticQuery, CriticVerdict


@runtime_checkable
class Critic(Protocol):
    """A progress critic.

    ``assess`` returns one verdict per query in the same order. An answer that cannot be read is a
    verdict with ``progress=None``; misconfiguration (missing checkpoint, unreachable server after
    retries) raises a :class:`primo_loop.errors.PrimoError` subclass. Progress and failure probability
    are on the 0-1 scale.
    """

    name: str

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]: ...


@dataclass(frozen=True)
class Capabilities:
    """What a critic declares about itself (see the module docstring)."""

    needs_frames: bool = True
    needs_privileged: bool = False
    refreshable: bool = False


def capabilities(critic: object) -> Capabilities:
    """The capabilities ``critic`` (an instance or a class) declares, defaults for those it does not.

    >>> class Plain:
    ...     def assess(self, queries): return []
    >>> capabilities(Plain())
    Capabilities(needs_frames=True, needs_privileged=False, refreshable=False)
    >>> class Labeller(Plain):
    ...     needs_frames, needs_privileged = False, True
    >>> capabilities(Labeller).needs_privileged
    True
    """
    defaults = Capabilities()
    return Capabilities(**{name: bool(getattr(critic, name, getattr(defaults, name)))
                           for name in Capabilities.__dataclass_fields__})


def critic_views(critic: object) -> tuple[str, ...]:
    """The cameras ``critic`` reads, in the order its frames tile them (its ``views`` attribute); ``()`` for a
    critic that reads any one view (or no frames).

    >>> class TwoCams:
    ...     views = ("agentview", "robot0_eye_in_hand")
    >>> critic_views(TwoCams()), critic_views(object())
    (('agentview', 'robot0_eye_in_hand'), ())
    """
    return tuple(getattr(critic, "views", None) or ())


def critic_name(critic: object) -> str:
    """The name a critic goes by in messages: its ``name`` attribute, else its class name."""
    return str(getattr(critic, "name", None) or type(critic).__name__)


def clamp01(x: float) -> float:
    """Clamp to [0, 1] (for a backend's own arithmetic, e.g. noise added to a label; never for a verdict).

    >>> clamp01(1.7), clamp01(-0.2), clamp01(0.4)
    (1.0, 0.0, 0.4)
    """
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)
