"""Sweeps of training runs (rewards x seeds): one after another here, or one Ray task each on a cluster.

    runs = [SweepRun(f"{r}_s{s}", AgentConfig(..., reward=r, seed=s, out=f"runs/{r}_s{s}", resume=True))
            for r in rewards for s in seeds]
    summary = run_sweep(runs, train, ray=RayOptions("auto", num_cpus=4), on_finished=lambda run, res: report())

The sweep holds no state of its own: every run trains in its own folder with ``resume=True``, so running the
same sweep again skips the finished runs and continues the unfinished ones from their newest checkpoint, and
a Ray task lost with its worker or node is resubmitted and resumes the same way (counted in ``retries``). The
report is rebuilt on the driver from what the run folders hold, after every run that finishes (``on_finished``)
and when the sweep is interrupted (``on_interrupt``): what has finished is never lost with the driver.

On Ray each run declares its resources (``RayOptions.num_cpus`` / ``num_gpus``: an SB3 run with
``workers=N`` simulation processes needs about N + 1 CPUs), and the run folders must be on a filesystem every
node sees at the same path (checked before anything is submitted).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primo_loop.errors import TrainingError
from primo_loop.executors import RayOptions, check_shared_folder, run_ray

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its name (``critic_s0``), the argument of the training function, its folder."""

    name: str
    config: Any
    out: str | None = None


def _train_one(train_fn: Callable[[Any], dict], run: SweepRun) -> dict:
    return train_fn(run.config)


def run_sweep(runs: Sequence[SweepRun], train_fn: Callable[[Any], dict], *, ray: RayOptions | None = None,
              on_finished: Callable[[SweepRun, dict], Any] | None = None,
              on_interrupt: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Train every run with ``train_fn(run.config)`` (which resumes from the run's folder); see the module doc.

    Returns:
        ``{"finished": [names], "failed": {name: error}, "retries": n, "executor": ...}``.

    Raises:
        TrainingError: on Ray, some runs failed (after the others finished and were reported).
        KeyboardInterrupt: re-raised after ``on_interrupt``.
    """
    finished: list[str] = []
    failed: dict[str, str] = {}

    def done(run: SweepRun, summary: dict) -> None:
        finished.append(run.name)
        logger.info("run %s finished: %s", run.name, summary)
        if on_finished is not None:
            on_finished(run, summary)

    retries = 0
    try:
        if ray is None:
            for run in runs:
                done(run, train_fn(run.config))
        else:
            for folder in sorted({str(Path(r.out).parent) for r in runs if r.out}):
                Path(folder).mkdir(parents=True, exist_ok=True)
                check_shared_folder(folder, ray)
            retries = run_ray(functools.partial(_train_one, train_fn), runs, ray, on_result=done, what="training",
                              on_error=lambda run, exc: failed.__setitem__(run.name, f"{type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        raise
    summary = {"finished": finished, "failed": failed, "retries": retries,
               "executor": "local" if ray is None else f"ray:{ray.address}"}
    if failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(failed.items()))
        raise TrainingError(f"{len(failed)} of {len(runs)} sweep runs failed: {names}; the others are reported; "
                            "run the same command again to resume the failed ones")
    return summary
