"""scripts/train_critic.py: the VLM modes (sft, grpo) get the same --out guard as compact, through the script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train_critic.py"), *args], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_vlm_modes_refuse_a_used_out_and_a_failed_run_leaves_none(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "adapter_model.safetensors").write_text("old")
    r = _run("grpo", "--model", "x", "--data", str(tmp_path / "d.jsonl"), "--out", str(used))
    assert r.returncode == 2 and "exists and is not empty; pass --resume to continue it, --overwrite" in r.stderr
    assert (used / "adapter_model.safetensors").read_text() == "old"
    r = _run("sft", "--model", "x", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "new" / "o"))
    assert r.returncode != 0 and "missing.jsonl does not exist" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "new").exists()


def test_split_output_flags():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from train_critic import split_output_flags
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert split_output_flags(["--out", "o", "--resume", "--lora"]) == (["--out", "o", "--resume", "--lora"], "o",
                                                                        True, False)
    assert split_output_flags(["--overwrite", "--out=o"]) == (["--out=o"], "o", False, True)
