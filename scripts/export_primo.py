#!/usr/bin/env python
"""Export a dataset folder as PRIMO benchmark records (clip videos + progress questions, JSONL).

    python scripts/export_primo.py data/eval_lift_panda --out data/primo/lift_panda.jsonl --per-episode 8

Videos go beside the JSONL under media/<episode_id>/; records name them relative to the JSONL's folder. An
existing JSONL, or media of the same episodes, is refused unless --overwrite; a failed export leaves nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import new_parser, run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(__doc__)
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--out", required=True, help="output records file (.jsonl)")
    p.add_argument("--per-episode", type=int, default=8, help="records per episode (uniform over its frames)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the clip videos")
    p.add_argument("--include-start", action="store_true", help="also export the reset frame (progress 0)")
    p.add_argument("--problem-type", choices=("numerical", "regression"), default="numerical",
                   help="the records' problem_type, which picks the release's accuracy reward: numerical "
                        "(1 - |p - t| / 100) or regression (1 - |p - t| / |t|)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file and the media of the same episodes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def planned_outputs(dataset: str, out: Path, overwrite: bool) -> tuple[list[Path], list[Path]]:
    """The paths an export writes, checked before any encoding: ``(folders it may create, outputs it
    replaces)``, the latter being the JSONL and ``media/<episode_id>`` of each episode.

    Raises:
        ConfigError: ``out`` is a folder or not a .jsonl/.json file, or it (or media of the same episodes)
            exists and ``overwrite`` is not given.
    """
    from primo_loop.data.dataset import EpisodeDataset
    from primo_loop.errors import ConfigError

    if out.is_dir():
        raise ConfigError(f"Expected --out to be a records file, actually: {str(out)!r} is a folder; pass a file "
                          f"in it, e.g. --out {out / 'records.jsonl'}")
    if out.suffix.lower() not in (".jsonl", ".json"):
        raise ConfigError(f"Expected --out to end in .jsonl, actually: {str(out)!r}")
    media = out.parent / "media"
    episodes = [media / eid for eid in EpisodeDataset(dataset).ids]
    taken = [p for p in [out, *episodes] if p.exists()]
    if taken and not overwrite:
        shown = ", ".join(str(p) for p in taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise ConfigError(f"Export outputs exist already ({shown}); pass --overwrite to replace them, or another "
                          "--out folder")
    top = out.parent
    while not top.parent.exists() and top.parent != top:  # the outermost folder the export would create
        top = top.parent
    return [top, media], [out, *episodes]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from primo_loop.data.primo_format import export_primo
    from primo_loop.errors import ConfigError
    from primo_loop.outputs import removed_on_failure

    if args.per_episode < 1:
        raise ConfigError(f"Expected --per-episode >= 1, actually: {args.per_episode}")
    out = Path(args.out)
    created, replaced = planned_outputs(args.dataset, out, args.overwrite)
    with removed_on_failure(created, replace=replaced):
        n = export_primo(args.dataset, out, per_episode=args.per_episode, fps=args.fps,
                         include_start=args.include_start, progress_bar=not args.no_progress,
                         problem_type=args.problem_type)
    print(f"wrote {n} records to {out}")
    return 0


if __name__ == "__main__":
    run(main)
