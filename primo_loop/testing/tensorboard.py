"""Reading back what a training run wrote to TensorBoard (tests check the scalars a run logs)."""
from __future__ import annotations

from pathlib import Path

from primo_loop.tblog import event_dirs, read_scalars


def tb_scalars(run: str | Path) -> dict[str, list[float]]:
    """Every scalar of the (single) TensorBoard run under ``run/tb``, by tag, in step order."""
    dirs = event_dirs(run)
    if len(dirs) != 1:
        raise ValueError(f"Expected one TensorBoard run in {Path(run) / 'tb'}, actually: {[p.name for p in dirs]}")
    return {tag: [v for _, v in sorted(series.items())] for tag, series in read_scalars(run, dirs=dirs).items()}
