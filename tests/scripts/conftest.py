"""Fixtures for the tests of the scripts and benchmarks."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def shaping(load_script):
    return load_script("benchmarks/shaping.py")
