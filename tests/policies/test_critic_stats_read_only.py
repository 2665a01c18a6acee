"""The SB3 critic scalars (progress mean, oracle MAE and bias) are over read queries only: through an unreadable
or failed query, ``critic/progress`` in info is the held value, which must not count as an answer."""
from __future__ import annotations

import pytest

from policies.sb3.callbacks import CriticStatsCallback


def test_held_progress_of_unreadable_and_failed_queries_is_left_out():
    cb = CriticStatsCallback()
    cb.wrapper = object()
    cb.record = lambda: None  # no SB3 logger here: the windows are what this test reads
    cb.locals = {"infos": [
        {"critic/queried": True, "critic/verdict": "read", "critic/progress": 0.6, "critic/oracle_at_query": 0.5},
        {"critic/queried": True, "critic/verdict": "unreadable", "critic/progress": 0.6, "critic/oracle_at_query": 0.9},
        {"critic/queried": True, "critic/verdict": "failed", "critic/progress": 0.6, "critic/oracle_at_query": 0.95},
        {"critic/queried": False, "critic/verdict": None, "critic/progress": 0.6, "critic/oracle_at_query": 0.95},
    ]}
    cb._on_step()
    assert list(cb.progress) == [0.6]
    assert list(cb.gap) == [pytest.approx(0.1)]
    assert len(cb.latency) == 3  # every query's latency still counts
