"""The compact critic: loading (embedded default, other checkpoints, mismatches) and scoring."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from primo_loop.critics import make_critic  # noqa: E402
from primo_loop.critics.compact import (  # noqa: E402
    DEFAULT_CHECKPOINT,
    hash_tokens,
    sequence_layout,
    text_batch,
)
from primo_loop.errors import CheckpointError, ConfigError  # noqa: E402
from primo_loop.tracker import sample_clip_indices  # noqa: E402
from primo_loop.types import CriticQuery  # noqa: E402


def _queries(n: int, size: int = 48, seed: int = 0, views: tuple[str, ...] = ()) -> list[CriticQuery]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (20, size, size * max(1, len(views)), 3), dtype=np.uint8)
    out = []
    for i in range(n):
        kept = frames[: 5 + i]
        out.append(CriticQuery(instruction="pick up the cube and lift it", initial=kept[0],
                               clip=kept[sample_clip_indices(len(kept), 8)], current=kept[-1], step=10 * i,
                               views=views))
    return out


def test_scores_in_range_and_batch_independent(tiny_ckpt):
    critic = make_critic("compact", checkpoint=tiny_ckpt)
    qs = _queries(5)
    batch = critic.assess(qs)
    assert len(batch) == 5
    for v in batch:
        assert 0.0 <= v.progress <= 1.0 and 0.0 <= v.failure_prob <= 1.0 and v.latency_s > 0
    single = [critic.assess([q])[0].progress for q in qs]
    np.testing.assert_allclose([v.progress for v in batch], single, atol=1e-5)
    assert critic.assess([]) == []


def test_dedup_matches_full_sequence(tiny_ckpt):
    """Encoding each distinct frame once gives what the plain forward over all frames gives."""
    critic = make_critic("compact", checkpoint=tiny_ckpt)
    qs = _queries(3)
    from primo_loop.data.media import resize_frames

    frames = np.stack([resize_frames(np.concatenate([q.initial[None], q.clip, q.current[None]]), 32) for q in qs])
    roles, times = sequence_layout(8)
    ids, offsets = text_batch([q.instruction for q in qs], 64)
    with torch.inference_mode():
        p, _ = critic.model(torch.from_numpy(frames), torch.from_numpy(roles).expand(3, -1),
                            torch.from_numpy(times).expand(3, -1), ids, offsets)
    np.testing.assert_allclose(torch.sigmoid(p).numpy(), [v.progress for v in critic.assess(qs)], atol=1e-5)


def test_mismatched_config_says_what_differs(tiny_ckpt, tmp_path):
    with pytest.raises(CheckpointError, match=r"image_size: requested 64, checkpoint 32"):
        make_critic("compact", checkpoint=tiny_ckpt, image_size=64)
    with pytest.raises(ConfigError, match="Unknown compact-critic options"):
        make_critic("compact", checkpoint=tiny_ckpt, imagesize=64)
    # weights that do not fit their config
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weights.pt").write_bytes((tiny_ckpt / "weights.pt").read_bytes())
    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    cfg["dim"] = 64
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        make_critic("compact", checkpoint=bad)
    with pytest.raises(CheckpointError, match="missing"):
        make_critic("compact", checkpoint=tmp_path / "nowhere")
    (bad / "weights.pt").write_bytes(b"not a torch file")
    cfg["dim"] = 32
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="Corrupt"):
        make_critic("compact", checkpoint=bad)


def test_default_checkpoint_loads_and_scores():
    assert (DEFAULT_CHECKPOINT / "config.json").is_file(), "the embedded default checkpoint is missing"
    critic = make_critic("compact")
    assert critic.checkpoint == DEFAULT_CHECKPOINT and critic.report_path.is_file()
    (v,) = critic.assess(_queries(1, size=128, views=critic.views))
    assert 0.0 <= v.progress <= 1.0 and 0.0 <= v.failure_prob <= 1.0
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size < 10 * 2 ** 20  # "a few MB"


def test_shipped_checkpoints_load_by_name(tmp_path, monkeypatch):
    """``checkpoint="hardened"`` is the shipped fine-tune (its own weights and report), ``"default"`` the
    embedded default; a folder of the same name is reached as ``./hardened``."""
    from primo_loop.critics.compact import SHIPPED

    hardened, default = make_critic("compact", checkpoint="hardened"), make_critic("compact", checkpoint="default")
    assert hardened.checkpoint == SHIPPED["hardened"] and default.checkpoint == DEFAULT_CHECKPOINT
    assert hardened.report_path.is_file() and default.report_path.is_file()
    assert (SHIPPED["hardened"] / "weights.pt").read_bytes() != (DEFAULT_CHECKPOINT / "weights.pt").read_bytes()
    q = _queries(1, size=128, views=default.views)  # both read these (a one-view one reads the first camera)
    assert hardened.assess(q)[0].progress != default.assess(q)[0].progress
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="hardened"):
        make_critic("compact", checkpoint="./hardened")


def test_hashing_is_stable_across_processes():
    code = "from primo_loop.critics.compact import hash_tokens; print(hash_tokens('pick up the cube', 2048))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == hash_tokens("pick up the cube", 2048)


def test_importing_the_core_does_not_import_torch():
    code = ("import sys, primo_loop, primo_loop.critics, primo_loop.metrics, primo_loop.evaluate, "
            "primo_loop.data.dataset, primo_loop.data.primo_format, primo_loop.data.collect; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_default_checkpoint_tracks_oracle_progress_in_the_simulator():
    """The embedded critic in the loop on a scripted Lift that succeeds and one whose cube is dropped: its
    answers follow the oracle's progress up and back down (a constant or frame-blind model fails this)."""
    envs = pytest.importorskip("envs")
    from policies import make_policy
    from primo_loop.rollout import run_episode
    from primo_loop.tracker import TrackerConfig
    from primo_loop.wrappers import CriticInTheLoop

    env = envs.make_env("Lift", "Panda", image_size=96, horizon=140)
    wrapped = CriticInTheLoop(env, critic=make_critic("compact"), config=TrackerConfig(critic_every=10,
                                                                                      terminate=False))
    critic, oracle = [], []
    try:
        for seed, failure in ((0, None), (1, "drop")):
            rec = run_episode(wrapped, make_policy("scripted", env, failure=failure, seed=seed), seed=seed,
                              stop_after_success=10)
            rows = [r for r in rec.rows if r["queried"] and r["critic_progress"] is not None]
            critic += [r["critic_progress"] for r in rows]
            oracle += [r["oracle_progress"] for r in rows]
    finally:
        env.close()
    critic, oracle = np.array(critic), np.array(oracle)
    assert len(critic) >= 12 and oracle.max() - oracle.min() > 0.5  # the episodes climb (and fall)
    assert np.corrcoef(critic, oracle)[0, 1] > 0.8, (critic.round(2), oracle.round(2))
    assert np.abs(critic - oracle).mean() < 0.2
