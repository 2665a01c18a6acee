"""benchmarks/slow_critic.py: its pure helpers (the delay summary, the delayed and frame-reading critics, the
target verdict of the report). The benchmark itself steps robosuite envs and is run by hand (docs/results)."""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

from primo_loop.critics.base import capabilities
from primo_loop.critics.oracle import OracleCritic
from primo_loop.types import CriticQuery


@pytest.fixture(scope="module")
def slow(load_script):
    return load_script("benchmarks/slow_critic.py")


def _query(current_value: int, privileged=None) -> CriticQuery:
    initial = np.zeros((4, 4, 3), np.uint8)
    current = np.full((4, 4, 3), current_value, np.uint8)
    return CriticQuery("lift the cube", initial, np.stack([initial, current]), current, 10, privileged)


def test_delay_summary_is_median_p90_max_and_null_when_empty(slow):
    assert slow.delay_summary([3, 0, 7, 1, 12, 2, 5, 9, 4, 6]) == {"n": 10, "median": 4.5, "p90": pytest.approx(9.3), "max": 12}
    assert slow.delay_summary([]) == {"n": 0, "median": None, "p90": None, "max": None}  # not zeros


def test_frame_change_critic_reads_frames_only(slow):
    critic = slow.FrameChangeCritic()
    verdicts = critic.assess([_query(0), _query(51), _query(255)])
    assert [v.progress for v in verdicts] == pytest.approx([0.0, 0.2, 1.0])
    assert all(v.failure_prob is None for v in verdicts)
    caps = capabilities(critic)
    assert caps.needs_frames and not caps.needs_privileged  # it can sit behind the remote wire


def test_delayed_critic_pays_the_delay_once_per_batch(slow):
    critic = slow.DelayedCritic(OracleCritic(), delay_s=0.1)
    assert capabilities(critic).needs_privileged  # the inner critic's capabilities are declared
    t0 = time.perf_counter()
    verdicts = critic.assess([_query(0, {"progress": 0.25})] * 9 + [_query(0)])
    took = time.perf_counter() - t0
    assert 0.1 <= took < 0.6  # once per batch (per query would be 1 s)
    assert [v.progress for v in verdicts[:9]] == [0.25] * 9 and verdicts[9].progress is None
    assert critic.queries == 10 and critic.no_progress == 1 and len(critic.batch_s) == 1
    assert critic.batch_s[0] >= 0.1


def _row(path, mode, delay, ratio):
    return {"variant": f"{path} {mode} {delay}", "path": path, "mode": mode, "delay_s": delay, "steps_per_s": 10.0,
            "ratio": ratio, "batches": None, "mean_batch_s": None, "queries": None, "no_progress": None,
            "delay_steps": None}


def test_report_judges_the_target_on_the_slowest_delay(slow):
    args = argparse.Namespace(envs=8, size=84, every=10, steps=160, chunk=40, note="", delays=[0.5, 2.0],
                              max_batch=64, batch_wait_ms=20.0)
    rows = [_row(None, None, None, 1.0),
            _row("in-process", "sync", 0.5, 0.6), _row("in-process", "async", 0.5, 0.5),
            _row("remote", "sync", 0.5, 0.5), _row("remote", "async", 0.5, 0.95),
            _row("in-process", "sync", 2.0, 0.31), _row("in-process", "async", 2.0, 0.92),
            _row("remote", "sync", 2.0, 0.27), _row("remote", "async", 2.0, 0.79)]
    text = slow.write_results(args, rows, "python benchmarks/slow_critic.py", 60.0)
    assert "- in-process: **asynchronous 0.92x (met)**, synchronous 0.31x" in text
    assert "- remote: **asynchronous 0.79x (missed)**, synchronous 0.27x" in text
    assert "shared with other engineers' jobs" in text
