"""Remote faults, bounded and logged truthfully (issue 32, item 4), on a stub server on 127.0.0.1.

A failed or unreadable query is null in the per-step log and left out of the MAE, counted apart; a circuit
breaker stops paying the retry budget; a batch's time is bounded; malformed answers warn once per kind;
connections are reused; a verdict cache answers repeats.
"""
from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from primo_loop.critics.remote import RemoteCritic
from primo_loop.critics.remote_http import FailedVerdict
from primo_loop.critics.serving import CriticServer, Faults
from primo_loop.errors import CriticUnavailableError
from primo_loop.rollout import run_episode
from primo_loop.testing.fakes import ProgressEnv
from primo_loop.types import CriticQuery, CriticVerdict
from primo_loop.wrappers import CriticInTheLoop


class GreenCritic:
    """Progress = the green level of the current frame (uniform frames survive JPEG)."""

    name = "green"

    def __init__(self):
        self.seen = 0

    def assess(self, queries):
        self.seen += len(queries)
        return [CriticVerdict(progress=round(float(q.current[..., 1].mean()) / 255.0, 2)) for q in queries]


class Forward:
    def reset(self):
        pass

    def act(self, obs):
        return np.array([0.3], np.float32)


def _chat(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


def _wrapped(critic, **kw) -> CriticInTheLoop:
    env = ProgressEnv(horizon=30)

    def render() -> np.ndarray:
        return np.full((32, 32, 3), (0, int(np.clip(env.x, 0, 1) * 255), 0), np.uint8)

    return CriticInTheLoop(env, critic=critic, critic_every=5, render_fn=render, terminate=False, **kw)


def _query(level: int, instruction: str = "lift the cube") -> CriticQuery:
    return CriticQuery(instruction=instruction, initial=np.zeros((16, 16, 3), np.uint8),
                       clip=np.zeros((2, 16, 16, 3), np.uint8), current=np.full((16, 16, 3), level, np.uint8))


def test_server_that_answers_twice_then_unreadable_text_is_logged_null_and_left_out_of_the_mae():
    faults = Faults(reply=lambda n: None if n < 2 else (200, _chat("I cannot tell from these frames."),
                                                         "application/json"))
    with CriticServer(GreenCritic(), faults=faults) as server:
        critic = RemoteCritic(server.url, check_server=False, max_retries=0)
        rec = run_episode(_wrapped(critic), Forward(), seed=0, stop_after_success=None)
    queried = [r for r in rec.rows if r["queried"]]
    assert [r["step"] for r in queried] == [0, 5, 10, 15, 20, 25]
    assert [r["critic_verdict"] for r in queried] == ["read"] * 2 + ["unreadable"] * 4
    assert all(r["critic_progress"] is not None for r in queried[:2])
    assert [r["critic_progress"] for r in queried[2:]] == [None] * 4  # never the last good value
    s = rec.summary
    assert (s["critic_queries"], s["critic_read"], s["critic_unreadable"], s["critic_failed"]) == (6, 2, 4, 0)
    mae = np.mean([abs(r["critic_progress"] - r["oracle_progress"]) * 100 for r in queried[:2]])
    assert s["critic_vs_oracle_mae"] == pytest.approx(mae)
    assert critic.stats["unreadable"] == 4 and critic.stats["failed"] == 0


def test_server_killed_mid_episode_is_failed_not_held_in_the_log_and_the_breaker_stops_retrying():
    server = CriticServer(GreenCritic()).start()
    critic = RemoteCritic(server.url, check_server=False, max_retries=2, backoff_s=0.01, timeout_s=1.0,
                          breaker_failures=2, breaker_cooldown_s=60.0)
    try:
        t0 = time.perf_counter()
        rec = run_episode(_wrapped(critic), Forward(), seed=0, stop_after_success=None,
                          on_step=lambda step: server.stop() if step == 12 else None)
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    queried = [r for r in rec.rows if r["queried"]]
    assert [r["critic_verdict"] for r in queried] == ["read"] * 3 + ["failed"] * 3
    assert [r["critic_progress"] for r in queried[3:]] == [None] * 3 and queried[3]["failure_prob"] is None
    s = rec.summary
    assert (s["critic_read"], s["critic_unreadable"], s["critic_failed"]) == (3, 0, 3)
    mae = np.mean([abs(r["critic_progress"] - r["oracle_progress"]) * 100 for r in queried[:3]])
    assert s["critic_vs_oracle_mae"] == pytest.approx(mae)
    # two batches paid their retries (3 attempts each), then the breaker refused the third at once
    assert critic.stats["failed"] == 3 and critic.stats["short_circuited"] == 1 and critic.stats["breaker_trips"] == 1
    assert critic.stats["retries"] == 4 and wall < 10


def test_on_critic_error_raise_stops_at_the_first_failed_query():
    server = CriticServer(GreenCritic()).start()
    critic = RemoteCritic(server.url, check_server=False, max_retries=0)
    try:
        with pytest.raises(CriticUnavailableError, match="failed 1 of 1 queries.*on_error='hold'"):
            run_episode(_wrapped(critic, on_critic_error="raise"), Forward(), seed=0, stop_after_success=None,
                        on_step=lambda step: server.stop() if step == 7 else None)
    finally:
        server.stop()


def test_hanging_server_costs_at_most_the_time_bound_and_the_breaker_probes_after_its_cooldown():
    faults = Faults(delay_s=3.0)
    with CriticServer(GreenCritic(), faults=faults) as server:
        critic = RemoteCritic(server.url, check_server=False, timeout_s=0.2, max_retries=2, backoff_s=0.05,
                              max_backoff_s=0.1, max_concurrency=4, breaker_failures=2, breaker_cooldown_s=0.5)
        bound = critic.batch_budget_s(4)
        assert bound == pytest.approx(3 * 0.2 + (0.05 + 0.1) * 1.25)
        batch = [_query(i * 40) for i in range(4)]
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            verdicts = critic.assess(batch)
            times.append(time.perf_counter() - t0)
            assert all(isinstance(v, FailedVerdict) and v.progress is None for v in verdicts)
        assert all(0.55 <= t <= bound + 0.5 for t in times[:2])  # retries paid, within the bound
        assert all(t < 0.1 for t in times[2:]) and critic.stats["short_circuited"] == 8  # refused at once
        requests = critic.stats["requests"]
        time.sleep(0.55)
        t0 = time.perf_counter()
        critic.assess(batch)  # the probe: one attempt, no retries; still hanging, so open again
        assert time.perf_counter() - t0 < 0.2 + 0.3 and critic.stats["requests"] == requests + 4
        assert critic.breaker.state == "open"
        faults.delay_s = 0.0  # the server recovers
        time.sleep(0.55)
        verdicts = critic.assess(batch)
        assert [v.progress for v in verdicts] == pytest.approx([0.0, 40 / 255, 80 / 255, 120 / 255], abs=0.02)
        assert critic.breaker.state == "closed"
    critic.close()


def test_malformed_answers_are_unreadable_with_one_warning_line_per_kind(caplog):
    kinds = [(200, json.dumps({"choices": []}), "application/json"),
             (200, json.dumps([1, 2]), "application/json"),
             (200, _chat("<think>worse than before</think><answer>-250</answer>"), "application/json"),
             (200, "<html><body>Bad gateway</body></html>", "text/html")]
    faults = Faults(reply=lambda n: kinds[n % len(kinds)])
    with CriticServer(GreenCritic(), faults=faults) as server:
        critic = RemoteCritic(server.url, check_server=False, max_concurrency=1)
        with caplog.at_level(logging.WARNING, logger="primo_loop"):
            verdicts = [critic.assess([_query(100)])[0] for _ in range(2 * len(kinds))]
    assert [v.progress for v in verdicts] == [None] * 8
    assert not any(isinstance(v, FailedVerdict) for v in verdicts)  # the server answered: unreadable, not failed
    assert critic.stats["unreadable"] == 8 and critic.stats["failed"] == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 4 and not any(r.exc_info for r in warnings), [r.getMessage() for r in warnings]
    text = "\n".join(r.getMessage() for r in warnings)
    for said in ("no choices", "a JSON list", "'-250', outside 0-100", "invalid JSON"):
        assert said in text


@pytest.mark.parametrize("reply", [(200, json.dumps([{"id": "m"}]), "application/json"),
                                   (200, "<!doctype html><html>login</html>", "text/html")])
def test_models_listing_that_is_not_a_model_list_says_the_server_answered(reply, caplog):
    with CriticServer(GreenCritic(), faults=Faults(models_reply=reply)) as server:
        with caplog.at_level(logging.WARNING, logger="primo_loop"):
            critic = RemoteCritic(server.url, model="primo-critic")
        assert critic.model == "primo-critic"
        assert "answered /v1/models with" in caplog.text and "Traceback" not in caplog.text
        with pytest.raises(CriticUnavailableError, match="answered /v1/models with .* pass `model=`") as err:
            RemoteCritic(server.url)
        assert "Cannot reach" not in str(err.value)


def test_connections_are_kept_alive_and_reused():
    with CriticServer(GreenCritic()) as server:
        critic = RemoteCritic(server.url, max_concurrency=2)
        for _ in range(10):
            assert all(v.progress is not None for v in critic.assess([_query(10), _query(20)]))
        assert server.counts["chat"] == 20
        assert server.counts["connections"] <= 2 and critic.stats["connections_opened"] <= 2
        critic.close()


def test_verdict_cache_answers_repeated_queries_and_logs_its_hit_rate():
    backend = GreenCritic()
    with CriticServer(backend) as server:
        off = RemoteCritic(server.url, check_server=False)
        off.assess([_query(50)])
        off.assess([_query(50)])
        assert backend.seen == 2 and off.stats["cache_hit_rate"] is None  # off by default
        cached = RemoteCritic(server.url, check_server=False, cache="true", temperature=0.0)
        first = cached.assess([_query(50), _query(60)])
        again = cached.assess([_query(50), _query(60, instruction="open the door")])
        assert backend.seen == 2 + 2 + 1  # only the query with a new instruction went out again
        assert again[0].progress == first[0].progress
        assert cached.stats["cache_hits"] == 1 and cached.stats["cache_hit_rate"] == pytest.approx(0.25)


def test_failed_requests_are_not_cached():
    faults = Faults(fail_first=1, fail_status=503)
    with CriticServer(GreenCritic(), faults=faults) as server:
        critic = RemoteCritic(server.url, check_server=False, cache=True, max_retries=0)
        assert isinstance(critic.assess([_query(50)])[0], FailedVerdict)
        assert critic.assess([_query(50)])[0].progress == pytest.approx(50 / 255, abs=0.02)
