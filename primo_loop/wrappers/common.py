"""The pieces both critic wrappers share: calling the critic (and checking what it returns), reading the
privileged state from an env's info, merging tracker options, and finding where frames and the instruction
come from.

A leaf module: it imports neither wrapper (as Gymnasium's ``wrappers/utils.py`` serves its single and vector
wrappers), and nothing here imports gymnasium or SB3.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from primo_loop.critics.base import Critic, capabilities, critic_name, critic_views
from primo_loop.errors import ConfigError, CriticOutputError, CriticUnavailableError, check_choice
from primo_loop.tracker import TrackerConfig
from primo_loop.types import CriticQuery, CriticVerdict, Frame

log = logging.getLogger(__name__)

ON_ERROR = ("hold", "raise")
ON_ERROR_HELP = ("what a failed critic query does: hold (log, count it as failed and hold the shaping) or raise "
                 "(stop the run with the error)")


def privileged_from_info(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The privileged state the oracle critic reads, taken from an env's info dict (None when the env has none).

    >>> privileged_from_info({"oracle/progress": 0.25})
    {'progress': 0.25, 'failed': False}
    >>> privileged_from_info({}) is None
    True
    """
    if "oracle/progress" not in info:
        return None
    return {"progress": float(info["oracle/progress"]), "failed": bool(info.get("oracle/failed", False))}


def merge_tracker_config(config: TrackerConfig | None, options: Mapping[str, Any]) -> TrackerConfig:
    """A :class:`TrackerConfig` from either ``config`` or keyword tracker options (never both)."""
    if config is not None and options:
        raise ConfigError(f"Expected either `config` or tracker options, actually both (options: {sorted(options)}); "
                          "put the options into the TrackerConfig")
    return config if config is not None else TrackerConfig.from_options(**options)


def check_verdict(critic: Critic, verdict: Any) -> CriticVerdict:
    """``verdict`` if it is a :class:`CriticVerdict` on the 0-1 scale; a :class:`CriticOutputError` otherwise.

    A progress of None or NaN is an unreadable answer (allowed: the tracker holds its potential); a number
    outside [0, 1] is a critic on another scale (e.g. 0-100), which is refused rather than clamped.

    >>> class Mine:
    ...     name = "mine"
    >>> check_verdict(Mine(), CriticVerdict(progress=0.4)).progress
    0.4
    >>> check_verdict(Mine(), CriticVerdict(progress=40.0))
    Traceback (most recent call last):
    ...
    primo_loop.errors.CriticOutputError: Critic 'mine' answered progress=40.0; expected a value on the 0-1 scale (or None when unreadable): verdicts are on 0-1, so divide a 0-100 answer by 100 in the critic
    """
    name = critic_name(critic)
    if not isinstance(verdict, CriticVerdict):
        raise CriticOutputError(
            f"Critic {name!r} returned {type(verdict).__name__} {verdict!r:.80} from assess(); expected one "
            f"primo_loop.types.CriticVerdict per query, e.g. CriticVerdict(progress=0.4)")
    for field in ("progress", "failure_prob"):
        value = getattr(verdict, field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise CriticOutputError(f"Critic {name!r} answered {field}={value!r} ({type(value).__name__}); "
                                    f"expected a float on the 0-1 scale or None")
        if math.isfinite(value) and not 0.0 <= value <= 1.0:
            raise CriticOutputError(
                f"Critic {name!r} answered {field}={value!r}; expected a value on the 0-1 scale (or None when "
                f"unreadable): verdicts are on 0-1, so divide a 0-100 answer by 100 in the critic")
    return verdict


class CriticCaller:
    """Calls a critic on a batch of queries and checks what comes back.

    A critic that raises is either held (logged, counted, and ``None`` returned for each query so the tracker
    holds its shaping and counts a failed query) or re-raised. A verdict the critic marks as failed (``failed``
    true: the ``remote`` backend's request failed) is treated the same way, query by query: ``None`` (failed,
    never read as an unreadable answer) or a :class:`CriticUnavailableError`. What a critic returns is checked
    either way: a wrong number of verdicts, a value that is not a verdict, or a verdict off the 0-1 scale is a
    :class:`CriticOutputError` (a bug in the critic, not a transient failure). A critic that declares
    ``needs_privileged`` is refused a query without privileged state with a :class:`ConfigError` saying so.

    Args:
        critic: the critic.
        on_error: "hold" (log, count and return None for each query so shaping is held) or "raise".
    """

    def __init__(self, critic: Critic, on_error: str = "hold"):
        self.critic = critic
        self.on_error = check_choice("on_error policy", on_error, ON_ERROR)
        self.needs_privileged = capabilities(critic).needs_privileged
        self.errors = 0

    def __call__(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict | None]:
        if not queries:
            return []
        if self.needs_privileged and any(q.privileged is None for q in queries):
            raise ConfigError(
                f"Critic {critic_name(self.critic)!r} reads privileged simulator state, but the env's info has "
                f"no 'oracle/progress' (and 'oracle/failed'); expected an env that reports them (as envs.make_env "
                f"does), or use a critic that looks at the frames (e.g. 'compact')")
        try:
            verdicts = self.critic.assess(list(queries))
        except Exception as exc:  # noqa: BLE001 - a critic failure must not kill a long run
            if self.on_error == "raise":
                raise
            self.errors += 1
            log.warning("critic %s raised on a batch of %d queries (%d so far); shaping held: %r",
                        critic_name(self.critic), len(queries), self.errors, exc, exc_info=self.errors == 1)
            return [None] * len(queries)
        if not isinstance(verdicts, Sequence) or len(verdicts) != len(queries):
            got = f"{len(verdicts)} verdicts" if isinstance(verdicts, Sequence) else type(verdicts).__name__
            raise CriticOutputError(f"Critic {critic_name(self.critic)!r} returned {got} for {len(queries)} "
                                    f"queries; expected a list of one CriticVerdict per query, in order")
        checked = [check_verdict(self.critic, v) for v in verdicts]
        failed = [v for v in checked if getattr(v, "failed", False) is True]
        if failed and self.on_error == "raise":
            raise CriticUnavailableError(f"Critic {critic_name(self.critic)!r} failed {len(failed)} of "
                                         f"{len(checked)} queries ({failed[0].raw}); expected an answer to each "
                                         f"(on_error='raise'): fix the critic server, or hold with on_error='hold'")
        return [None if getattr(v, "failed", False) is True else v for v in checked]


def resolve_instruction(instruction: str | None, lookup: Callable[[], Any], what: str = "env") -> str:
    """The task instruction: ``instruction`` if given, else the env's ``instruction`` attribute (``lookup``)."""
    if instruction is not None:
        if not isinstance(instruction, str) or not instruction.strip():
            raise ConfigError(f"Expected `instruction` to be a non-empty string, actually: {instruction!r}")
        return instruction
    try:
        found = lookup()
    except AttributeError:
        found = None
    if not isinstance(found, str) or not found.strip():
        raise ConfigError(f"The critic needs the task in words, and the {what} has no `instruction` attribute; "
                          f"pass instruction=\"...\" (e.g. instruction=\"push the puck to the goal\")")
    return found


def resolve_views(views: Sequence[str] | None, env_cameras: Sequence[Any] = ()) -> tuple[str, ...]:
    """The camera names tiled in each frame: ``views`` if given, else the env's ``cameras`` (``env_cameras``: one
    entry per (sub-)env that has the attribute; they must agree), else one unnamed view (``()``)."""
    from primo_loop.views import normalize_views

    if views is not None:
        return normalize_views(views)
    found = {normalize_views(c, "cameras") for c in env_cameras}
    if len(found) > 1:
        raise ConfigError(f"Expected every sub-env to render the same cameras, actually: {sorted(found)}; pass "
                          f"views=(...) or build the sub-envs alike")
    return found.pop() if found else ()


_SAID_ONE_VIEW = False


def critic_for_frames(critic: Any, chosen: bool, views: Sequence[str] | None, frame_views: tuple[str, ...],
                      can_render: bool) -> tuple[Any, tuple[str, ...]]:
    """The critic a wrapper uses and the cameras the wrapper draws for it itself (``()``: the env's frames serve).

    A critic reading cameras (:func:`critic_views`) that the env's frames (``frame_views``) lack, where the caller
    named no ``views``, gets them drawn with ``render_frame(camera=...)`` if the env can (``can_render``). If it
    cannot (any Gymnasium env with only ``render()``) and the critic is the embedded default the wrapper built
    itself (``chosen``: False when the caller gave an instance or a checkpoint), the default's one-camera twin
    (shipped checkpoint ``"one_view"``) replaces it, said once per process.

    Raises:
        ConfigError: the critic needs cameras the env's frames lack and the env cannot draw them.
    """
    global _SAID_ONE_VIEW
    need = critic_views(critic)
    if views is not None or not need or tuple(frame_views) == need:
        return critic, ()
    if can_render:
        return critic, need
    if not chosen:
        from primo_loop.critics.compact import DEFAULT_CHECKPOINT, SHIPPED

        twin = SHIPPED.get("one_view")
        if getattr(critic, "checkpoint", None) == DEFAULT_CHECKPOINT and twin is not None and twin.is_dir():
            from primo_loop.critics import make_critic

            if not _SAID_ONE_VIEW:
                log.warning("The default critic reads the cameras %s and this env gives one frame of its own: using "
                            "the default's one-view twin (compact checkpoint 'one_view') instead", list(need))
                _SAID_ONE_VIEW = True
            return make_critic("compact", checkpoint="one_view"), ()
    raise ConfigError(
        f"The critic {critic_name(critic)!r} reads the cameras {list(need)} tiled in each frame; the env's "
        f"frames hold {list(frame_views) or 'one unnamed view'} and it has no render_frame(camera=...) to draw "
        f"others. Build the env with those cameras (envs.make_env(..., cameras={need!r})), or pass render_fn= "
        f"returning the tiled frame together with views={list(need)!r}")


def as_frame(frame: Any, source: str) -> Frame:
    """A rendered frame as an owned uint8 [H, W, 3] array (renderers may reuse their buffer)."""
    if frame is None:
        raise ConfigError(f"{source} returned None; expected a uint8 [H, W, 3] frame: make the env with "
                          f"render_mode=\"rgb_array\" or pass render_fn=")
    return np.array(frame, copy=True)


def blank_frame(size: int = 8) -> Frame:
    """A black frame, for callers that skip rendering for a critic that declares ``needs_frames=False``."""
    return np.zeros((size, size, 3), dtype=np.uint8)


class AsyncQueries:
    """The part both wrappers share for asynchronous queries: ``self._async`` is their
    :class:`~primo_loop.asynchronous.AsyncCritic`, or None in synchronous mode."""

    _async: Any = None

    def drain(self) -> list:
        """Wait for every query on its way and return the corrections not yet reported (asynchronous mode;
        synchronous: none). A termination they decide is reported by the next step."""
        return self._async.drain() if self._async is not None else []

    def close(self) -> None:
        """Stop the asynchronous queries, close the critic where the wrapper owns it (``owns_critic``: it was built
        from a name; a critic object passed in is its caller's to close), then the env."""
        if self._async is not None:
            self._async.close()
        if getattr(self, "owns_critic", False) and callable(getattr(self.critic, "close", None)):
            self.critic.close()  # e.g. a cascade's teacher thread, a remote critic's connection pool
        super().close()  # the wrapper base class (gymnasium.Wrapper or SB3's VecEnvWrapper)
