#!/usr/bin/env python
"""Export a dataset folder as PRIMO benchmark records (clip videos + progress questions, JSONL).

    python scripts/export_primo.py data/eval_lift_panda --out data/primo/lift_panda.jsonl --per-episode 8

Videos go beside the JSONL under media/<episode_id>/; records name them relative to the JSONL's folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--out", required=True, help="output .jsonl")
    p.add_argument("--per-episode", type=int, default=8, help="records per episode (uniform over its frames)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--include-start", action="store_true", help="also export the reset frame (progress 0)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    from primo_loop.data.primo_format import export_primo

    n = export_primo(args.dataset, args.out, per_episode=args.per_episode, fps=args.fps,
                     include_start=args.include_start, progress_bar=not args.no_progress)
    print(f"wrote {n} records to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
