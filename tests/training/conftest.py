"""Fixtures for the VLM training tests: the tiny Qwen2.5-VL and a small PRIMO export of synthetic episodes."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """Path of a tiny random Qwen2.5-VL checkpoint (deterministic, offline, ~1 s to build)."""
    from primo_loop.testing.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm") / "model")


@pytest.fixture(scope="session")
def primo_records(tmp_path_factory):
    """A PRIMO-format JSONL (6 records, 64 px mp4 clips) exported from 2 synthetic episodes."""
    from primo_loop.data.primo_format import export_primo
    from primo_loop.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("primo_data")
    make_dataset(root / "episodes", n_episodes=2, image_size=64, n_steps=20)
    out = root / "primo" / "records.jsonl"
    export_primo(root / "episodes", out, per_episode=3)
    return out
