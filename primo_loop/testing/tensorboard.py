"""Reading back what a training run wrote to TensorBoard (tests check the scalars a run logs)."""
from __future__ import annotations

from pathlib import Path


def tb_scalars(run: str | Path) -> dict[str, list[float]]:
    """Every scalar of the (single) TensorBoard run under ``run/tb``, by tag, in logging order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted((Path(run) / "tb").iterdir())
    if len(runs) != 1:
        raise ValueError(f"Expected one TensorBoard run in {Path(run) / 'tb'}, actually: {[p.name for p in runs]}")
    acc = EventAccumulator(str(runs[0])).Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
