#!/usr/bin/env python
"""Train a critic: `compact` (the small CPU critic), or fine-tune a VLM critic with `sft` or `grpo`.

    python scripts/train_critic.py compact --data data/lift --out ckpt/compact
    python scripts/train_critic.py sft --model PATH_OR_ID --data data/primo.jsonl --out ckpt/sft --lora
    python scripts/train_critic.py grpo --model ckpt/sft --data data/primo.jsonl --out ckpt/grpo --lora

Run `train_critic.py MODE --help` for each mode's options. Every mode refuses a non-empty --out unless
--resume (continue it) or --overwrite (replace it) is given; a run that fails removes what it created.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from primo_loop.cli import run  # noqa: E402
from primo_loop.errors import check_choice  # noqa: E402

MODES = {
    "compact": "primo_loop.training.compact:main",
    "sft": "primo_loop.training.sft:main",
    "grpo": "primo_loop.training.grpo:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    mode = check_choice("training mode", argv[0], MODES)
    module, _, attr = MODES[mode].partition(":")
    entry = getattr(importlib.import_module(module), attr)
    if mode == "compact":  # guards its own --out
        return entry(argv[1:]) or 0
    rest, out, resume, overwrite = split_output_flags(argv[1:])
    if out is None or any(a in ("-h", "--help") for a in rest):
        return entry(rest) or 0  # its own parser reports the missing --out, or prints its help
    from primo_loop.outputs import output_folder

    with output_folder(out, resume=resume, overwrite=overwrite, can_resume=True):
        return entry(rest) or 0


def split_output_flags(argv: list[str]) -> tuple[list[str], str | None, bool, bool]:
    """``(argv without --overwrite, --out, --resume given, --overwrite given)`` for a mode whose own parser
    knows --out and --resume but not --overwrite.

    >>> split_output_flags(["--data", "d.jsonl", "--out=ckpt", "--overwrite"])
    (['--data', 'd.jsonl', '--out=ckpt'], 'ckpt', False, True)
    """
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--out")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--overwrite", action="store_true")
    known, _ = pre.parse_known_args(argv)
    return [a for a in argv if a != "--overwrite"], known.out, known.resume, known.overwrite


if __name__ == "__main__":
    run(main)
