"""The `remote` client against the loopback critic server: success, 5xx retries, time-outs, unreachable servers."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from primo_loop.critics import make_critic
from primo_loop.critics.remote import RemoteCritic, decode_data_url, query_messages
from primo_loop.critics.serving import CriticServer, Faults
from primo_loop.errors import CriticUnavailableError
from primo_loop.prompting import DEFAULT_TEMPLATE
from primo_loop.types import CriticQuery, CriticVerdict

ROOT = Path(__file__).resolve().parents[2]


class BrightnessCritic:
    """Progress = brightness of the current frame; the reasoning echoes what the server decoded."""

    name = "brightness"

    def __init__(self):
        self.batches: list[int] = []

    def assess(self, queries):
        self.batches.append(len(queries))
        return [CriticVerdict(progress=float(q.current.mean()) / 255.0,
                              reasoning=f"{q.instruction}|{len(q.clip)}|{q.initial.mean():.0f}") for q in queries]


def _query(level: int, instruction: str = "lift the cube") -> CriticQuery:
    return CriticQuery(instruction=instruction, initial=np.full((64, 64, 3), 10, np.uint8),
                       clip=np.full((8, 64, 64, 3), 100, np.uint8), current=np.full((64, 64, 3), level, np.uint8))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_success_decodes_frames_and_keeps_order():
    backend = BrightnessCritic()
    with CriticServer(backend, batch_wait_s=0.05) as server:
        critic = make_critic("remote", base_url=server.url.removesuffix("/v1"), max_concurrency=4)
        assert critic.model == "primo-critic"  # discovered at /v1/models
        levels = [0, 51, 102, 153, 204, 255]
        verdicts = critic.assess([_query(x, instruction=f"task {i}") for i, x in enumerate(levels)])
    for i, (x, v) in enumerate(zip(levels, verdicts)):
        assert v.progress == pytest.approx(x / 255.0, abs=0.02)  # JPEG round trip
        assert v.reasoning == f"task {i}|8|10"  # instruction, clip length and initial frame made it across
        assert v.raw.endswith("</answer>") and v.output_tokens is not None and v.latency_s > 0
    assert critic.stats["failed"] == 0 and critic.stats["queries"] == 6
    assert max(backend.batches) > 1  # concurrent requests were batched into one assess call


def test_5xx_then_retry_succeeds():
    with CriticServer(BrightnessCritic(), faults=Faults(fail_first=2, fail_status=503)) as server:
        critic = RemoteCritic(server.url, backoff_s=0.01, max_retries=3, max_concurrency=1)
        (v,) = critic.assess([_query(128)])
        assert v.progress == pytest.approx(128 / 255, abs=0.02)
        assert critic.stats["retries"] == 2 and critic.stats["failed"] == 0
        assert server.counts["injected_failures"] == 2


def test_timeout_becomes_counted_none_verdicts_or_raises():
    with CriticServer(BrightnessCritic(), faults=Faults(delay_s=1.0)) as server:
        critic = RemoteCritic(server.url, timeout_s=0.2, max_retries=1, backoff_s=0.01)
        verdicts = critic.assess([_query(10), _query(20)])
        assert [v.progress for v in verdicts] == [None, None]
        assert critic.stats["failed"] == 2 and critic.stats["unreadable"] == 0  # failed, not unreadable
        assert "failed after 2 attempts" in verdicts[0].raw
        strict = RemoteCritic(server.url, timeout_s=0.2, max_retries=0, on_error="raise", check_server=False)
        with pytest.raises(CriticUnavailableError, match="failed after 1 attempts"):
            strict.assess([_query(10)])


def test_timeout_then_success():
    with CriticServer(BrightnessCritic(), faults=Faults(delay_s=1.0, delay_first=1)) as server:
        critic = RemoteCritic(server.url, timeout_s=0.5, max_retries=2, backoff_s=0.01, check_server=False)
        (v,) = critic.assess([_query(200)])
        assert v.progress == pytest.approx(200 / 255, abs=0.02) and critic.stats["retries"] == 1


def test_unreachable_server():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.perf_counter()
    with pytest.raises(CriticUnavailableError, match="Cannot reach the critic server.*serve"):
        make_critic("remote", base_url=url, backoff_s=0.01)
    assert time.perf_counter() - t0 < 5
    lenient = RemoteCritic(url, check_server=False, max_retries=1, backoff_s=0.01)
    (v,) = lenient.assess([_query(1)])
    assert v.progress is None and lenient.stats["failed"] == 1
    strict = RemoteCritic(url, check_server=False, max_retries=1, backoff_s=0.01, on_error="raise")
    with pytest.raises(CriticUnavailableError):
        strict.assess([_query(1)])


def test_api_key_from_named_env_var(monkeypatch):
    with CriticServer(BrightnessCritic(), api_key="s3cret") as server:
        monkeypatch.delenv("MY_CRITIC_KEY", raising=False)
        with pytest.raises(CriticUnavailableError, match="MY_CRITIC_KEY"):
            RemoteCritic(server.url, api_key_env="MY_CRITIC_KEY")
        monkeypatch.setenv("MY_CRITIC_KEY", "s3cret")
        (v,) = RemoteCritic(server.url, api_key_env="MY_CRITIC_KEY").assess([_query(255)])
        assert v.progress == pytest.approx(1.0, abs=0.02)


def test_request_layout_is_vllm_video_form():
    msgs = query_messages(_query(50), DEFAULT_TEMPLATE)
    parts = msgs[-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "video_url", "image_url", "text"]
    assert parts[1]["video_url"]["url"].startswith("data:video/jpeg;base64,")
    assert len(decode_data_url(parts[1]["video_url"]["url"])) == 8
    as_images = query_messages(_query(50), DEFAULT_TEMPLATE, video_as="images")[-1]["content"]
    assert [p["type"] for p in as_images] == ["image_url"] * 10 + ["text"]
    with CriticServer(BrightnessCritic()) as server:  # the server understands the images form too
        (v,) = RemoteCritic(server.url, video_as="images").assess([_query(77)])
        assert v.progress == pytest.approx(77 / 255, abs=0.02) and v.reasoning.endswith("|8|10")


def test_serve_critic_script_with_tiny_vlm(tiny_vlm):
    """scripts/serve_critic.py serving the primo backend in a subprocess, queried by the remote backend."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve_critic.py"), "--critic", "primo",
                             "--critic-option", f"model={tiny_vlm}", "--critic-option", "max_new_tokens=8",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+/v1)", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        critic = make_critic("remote", base_url=match.group(1), max_tokens=8)
        verdicts = critic.assess([_query(10), _query(200)])
        assert len(verdicts) == 2 and critic.stats["failed"] == 0
        assert all(v.output_tokens and 1 <= v.output_tokens <= 8 and v.raw is not None for v in verdicts)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class DropCritic:
    """Reads the frames only: progress from the red level of the current frame, a drop from the green level."""

    name = "drop"

    def assess(self, queries):
        return [CriticVerdict(progress=round(float(q.current[..., 0].mean()) / 255.0, 2),
                              failure_prob=1.0 if q.current[..., 1].mean() > 128 else 0.0) for q in queries]


def _drop_env():
    """A fake env whose object is dropped at step 30: the scene shows it (green), progress does not fall."""
    from primo_loop.testing.fakes import ProgressEnv

    env = ProgressEnv(horizon=80)

    def render() -> np.ndarray:
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[..., 0] = int(np.clip(env.x, 0, 1) * 200)
        frame[..., 1] = 255 if env.t >= 30 else 0
        return frame

    return env, render


def _run_until_end(critic) -> tuple[str | None, list[float | None]]:
    from primo_loop.wrappers import CriticInTheLoop

    env, render = _drop_env()
    w = CriticInTheLoop(env, critic=critic, critic_every=5, failure_patience=2, render_fn=render)
    w.reset(seed=0)
    fps = []
    for _ in range(80):
        _, _, term, trunc, info = w.step(np.array([0.2], np.float32))
        if info["critic/queried"]:
            fps.append(info["critic/failure_prob"])
        if term or trunc:
            return (info.get("critic/terminated_reason") if term else "truncated"), fps
    return None, fps


def test_failure_prob_crosses_the_wire():
    with CriticServer(DropCritic()) as server:
        critic = RemoteCritic(server.url, check_server=False)
        dropped = np.zeros((64, 64, 3), np.uint8)
        dropped[..., 1] = 255
        q = CriticQuery(instruction="lift", initial=dropped, clip=dropped[None], current=dropped)
        (v,) = critic.assess([q])
        assert v.failure_prob == 1.0
        (v,) = critic.assess([_query(128)])
        assert v.failure_prob == 0.0
    with CriticServer(BrightnessCritic()) as server:  # a critic that gives only progress: empty by design
        (v,) = RemoteCritic(server.url, check_server=False).assess([_query(128)])
        assert v.failure_prob is None and v.progress is not None


def test_drop_ends_the_episode_for_the_same_reason_in_process_and_remote():
    local_reason, local_fps = _run_until_end(DropCritic())
    with CriticServer(DropCritic()) as server:
        remote_reason, remote_fps = _run_until_end(RemoteCritic(server.url, check_server=False))
    assert local_reason == "failure"
    assert remote_reason == local_reason and remote_fps == local_fps
    assert 1.0 in remote_fps and None not in remote_fps


def test_bad_failure_prob_from_a_server_is_dropped(caplog):
    from primo_loop.critics.remote import failure_prob_of as _failure_prob

    assert _failure_prob({"primo_loop": {"failure_prob": 0.25}}) == 0.25
    assert _failure_prob({"choices": []}) is None and _failure_prob({"primo_loop": {"failure_prob": None}}) is None
    with caplog.at_level("WARNING"):
        assert _failure_prob({"primo_loop": {"failure_prob": 7}}) is None
    assert "outside [0, 1]" in caplog.text


def test_serve_critic_on_a_port_in_use_says_so_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "serve_critic.py"), "--critic", "oracle",
                               "--host", "127.0.0.1", "--port", str(port)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]


def test_payload_follows_the_release_settings_and_profiles():
    critic = RemoteCritic("http://127.0.0.1:9/v1", check_server=False)
    body = critic.payload(_query(10))
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (4096, 0.1, 0.001)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    rl = RemoteCritic("http://127.0.0.1:9/v1", check_server=False, prompt_profile="primo-rl",
                      answer_parsing="official")
    msgs = rl.payload(_query(10))["messages"]
    assert [m["role"] for m in msgs] == ["user"] and msgs[0]["content"][-1]["text"].startswith("With the first")
    big = CriticQuery(instruction="lift", initial=np.zeros((1000, 1000, 3), np.uint8),
                      clip=np.zeros((2, 64, 64, 3), np.uint8), current=np.zeros((64, 64, 3), np.uint8))
    anchor = decode_data_url(query_messages(big, DEFAULT_TEMPLATE)[-1]["content"][0]["image_url"]["url"])[0]
    assert anchor.shape[0] * anchor.shape[1] <= 401408 and anchor.shape[0] == anchor.shape[1]
