"""Fixtures for the critic tests: the tiny random Qwen2.5-VL, built once per session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """Path of a tiny random Qwen2.5-VL checkpoint (deterministic, offline, ~1 s to build)."""
    from primo_loop.testing.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm") / "model")
