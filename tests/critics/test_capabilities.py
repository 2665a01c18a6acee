"""Capabilities are declared by each backend (class attributes), read through one helper with defaults."""
from __future__ import annotations

import importlib

import pytest

from primo_loop.critics import _REGISTRY
from primo_loop.critics.base import Capabilities, capabilities
from primo_loop.critics.oracle import OracleCritic


def backend_class(name: str):
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def test_a_critic_without_declarations_gets_the_defaults():
    class Mine:
        def assess(self, queries):
            return []

    assert capabilities(Mine()) == Capabilities(needs_frames=True, needs_privileged=False, refreshable=False)


@pytest.mark.parametrize("name, expected", [
    ("oracle", Capabilities(needs_frames=False, needs_privileged=True, refreshable=False)),
    ("compact", Capabilities(needs_frames=True, needs_privileged=False, refreshable=True)),
    ("primo", Capabilities()),
    ("remote", Capabilities()),
])
def test_each_backend_declares_its_own(name, expected):
    pytest.importorskip("torch")
    assert capabilities(backend_class(name)) == expected


def test_declared_not_inferred_from_the_name():
    class Renamed(OracleCritic):
        name = "my_labeller"

    class CalledOracle:
        name = "oracle"

        def assess(self, queries):
            return []

    assert capabilities(Renamed()).needs_privileged and not capabilities(Renamed()).needs_frames
    assert capabilities(CalledOracle()) == Capabilities()
