"""Shared test setup: CPU rendering and single-threaded math (tiny models are 15x slower with 2 threads)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def load_script():
    """Import a script or benchmark (``"scripts/inspect_q.py"``) by its path from the repository root."""
    root = Path(__file__).resolve().parents[1]

    def load(relpath: str):
        path = root / relpath
        spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
