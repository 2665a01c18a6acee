"""Reading back the scalars a training run wrote to TensorBoard (reports, plots and tests).

A resumed run writes a new event folder under ``OUT/tb`` (``sac_critic_1``, ``sac_critic_2``, ...); reading a run
merges them in that order, so steps redone after a kill take the values of the run that went on.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def event_dirs(run: str | Path) -> list[Path]:
    """The event folders under ``run/tb``, oldest first (empty if there are none)."""
    tb = Path(run) / "tb"
    if not tb.is_dir():
        return []
    return sorted((p for p in tb.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))


def read_scalars(run: str | Path, tags: Iterable[str] | None = None,
                 dirs: Iterable[Path] | None = None) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of every scalar (or only ``tags``) in a run's event folders (or ``dirs``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    wanted = None if tags is None else set(tags)
    out: dict[str, dict[int, float]] = {}
    for d in (event_dirs(run) if dirs is None else dirs):
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0}).Reload()
        for tag in acc.Tags()["scalars"]:
            if wanted is None or tag in wanted:
                out.setdefault(tag, {}).update({int(e.step): float(e.value) for e in acc.Scalars(tag)})
    return out


def value_at(series: dict[int, float], step: int) -> float | None:
    """The last value logged at or before ``step`` (None if there is none)."""
    earlier = [s for s in series if s <= step]
    return series[max(earlier)] if earlier else None


def interval_means(series: dict[int, float], ends: Iterable[int]) -> list[float | None]:
    """Mean of the values logged in each interval ``(previous end, end]`` (the first starts at step 0, inclusive);
    None for an interval with no value.

    >>> interval_means({0: 1.0, 500: 3.0, 1000: 5.0, 1500: 10.0}, [1000, 2000, 3000])
    [3.0, 10.0, None]
    """
    out: list[float | None] = []
    start = -1
    for end in ends:
        vals = [v for s, v in series.items() if start < s <= end]
        out.append(sum(vals) / len(vals) if vals else None)
        start = end
    return out
