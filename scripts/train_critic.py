#!/usr/bin/env python
"""Train a critic: `compact` (the small CPU critic), or fine-tune a VLM critic with `sft` or `grpo`.

    python scripts/train_critic.py compact --data data/lift --out ckpt/compact
    python scripts/train_critic.py sft --model PATH_OR_ID --data data/primo.jsonl --out ckpt/sft --lora
    python scripts/train_critic.py grpo --model ckpt/sft --data data/primo.jsonl --out ckpt/grpo --lora

Run `train_critic.py MODE --help` for each mode's options.
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
    return getattr(importlib.import_module(module), attr)(argv[1:]) or 0


if __name__ == "__main__":
    run(main)
