"""Two-view datasets: collected tiled, recorded in meta, checked on load and resume; a compact critic trains on
them and the evaluator scores them."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from primo_loop.data.collect import CollectConfig, collect, plan_episodes
from primo_loop.data.dataset import EpisodeDataset, episodes_dir, read_episode
from primo_loop.errors import ConfigError, DatasetError

TWO = ("front", "side")


def _plan(n=6):
    return plan_episodes(["SynthLift"], ["SynthBot"], episodes=n, seed=0, failure_rate=0.5,
                         modes_for_task=lambda t: ["drop"])


def _cfg(cameras=TWO, **kw):
    return CollectConfig(image_size=16, render_size=32, frame_every=5, horizon=40, synthetic=True,
                         cameras=cameras, **kw)


@pytest.fixture(scope="module")
def two_view(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_view")
    collect(_plan(), root, _cfg(), workers=0)
    return root


def test_collected_frames_tile_the_cameras_and_meta_names_them(two_view):
    ds = EpisodeDataset(two_view)
    assert ds.views == TWO
    ep = ds.load(ds.ids[0])
    assert ep.meta["views"] == list(TWO) and ep.meta["camera"] == "front"
    assert ep.frames.shape[1:] == (16, 32, 3)
    # the synthetic side view is the front view mirrored and darker: each view was resized on its own
    left, right = ep.frames[..., :16, :].astype(int), ep.frames[..., 16:, :].astype(int)
    assert np.abs(right - left[:, :, ::-1] // 2).max() <= 1


def test_resuming_with_other_cameras_is_refused_naming_the_setting(two_view, tmp_path):
    with pytest.raises(DatasetError, match=r"views: on disk \['front', 'side'\], now \['front'\]"):
        collect(_plan(), two_view, _cfg(cameras=("front",)), workers=0)
    one = tmp_path / "one"
    collect(_plan(2), one, _cfg(cameras=()), workers=0)
    meta = json.loads((episodes_dir(one) / "SynthLift-SynthBot-s000000" / "meta.json").read_text())
    assert meta["views"] == ["agentview"]
    del meta["views"]  # an older dataset: one view, of its camera
    (episodes_dir(one) / "SynthLift-SynthBot-s000000" / "meta.json").write_text(json.dumps(meta))
    collect(_plan(2), one, _cfg(cameras=()), workers=0)  # unchanged
    with pytest.raises(DatasetError, match=r"views: on disk \['agentview'\], now \['front', 'side'\]"):
        collect(_plan(2), one, _cfg(), workers=0)


def test_loading_checks_views_against_frames_and_across_episodes(two_view, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(two_view, root)
    eid = sorted(EpisodeDataset(root).ids)[0]
    folder = episodes_dir(root) / eid
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "views": ["front", "side", "top"]}))
    with pytest.raises(DatasetError, match="does not match the views of its meta.json"):
        read_episode(folder)
    with pytest.raises(DatasetError, match=r"mixes frames of different views: \['front', 'side', 'top'\] \(e.g. "
                                           rf"{eid}\); \['front', 'side'\]"):
        EpisodeDataset(root)




def test_a_two_view_critic_trains_on_the_data_and_the_evaluator_scores_it(two_view, tmp_path):
    pytest.importorskip("torch")
    from primo_loop.critics.compact import CompactConfig, CompactCritic
    from primo_loop.evaluate import EvalConfig, evaluate
    from primo_loop.training.compact import TrainConfig, train

    model = CompactConfig(image_size=16, channels=(8, 16), dim=16, layers=1, heads=2, vocab_buckets=32,
                          dropout=0.0)
    cfg = TrainConfig(data=[str(two_view)], out=str(tmp_path / "ckpt"), epochs=2, seed=0, batch_episodes=3,
                      val_fraction=0.2, frame_every=5, model=model)
    summary = train(cfg, progress_bar=False)
    assert summary["epochs_run"] == 2
    critic = CompactCritic(tmp_path / "ckpt")
    assert critic.config.views == TWO  # read from the data's meta
    report = evaluate(critic, [str(two_view)], tmp_path / "eval",
                      EvalConfig(critic_every=5, clip_len=model.clip_len, batch_size=8))
    (split,) = report["splits"].values()
    assert split["episodes"] == 6 and np.isfinite(split["progress"]["mae"])
    assert (tmp_path / "eval" / "report.json").is_file()
    # the model set to other views than the data's is one error naming both
    bad = TrainConfig(data=[str(two_view)], out=str(tmp_path / "bad"), epochs=1, model=CompactConfig(
        views=("front", "top"), **{k: v for k, v in model.to_dict().items() if k not in ("views", "train_info")}))
    with pytest.raises(ConfigError, match=r"set to read the views \['front', 'top'\].*frames of \['front', 'side'\]"):
        train(bad, progress_bar=False)


def test_training_refuses_folders_of_different_views(two_view, tmp_path):
    pytest.importorskip("torch")
    from primo_loop.training.compact import load_episodes

    one = tmp_path / "one"
    collect(_plan(2), one, _cfg(cameras=()), workers=0)
    with pytest.raises(DatasetError, match=r"same views.*\['front', 'side'\] in .*one view in"):
        load_episodes([str(two_view), str(one)], 16)


def test_training_on_some_of_the_views_and_reading_them_back(two_view, tmp_path):
    pytest.importorskip("torch")
    from primo_loop.critics.compact import CompactConfig, CompactCritic
    from primo_loop.training.compact import TrainConfig, load_episodes, train
    from primo_loop.types import CriticQuery

    (full, *_), _ = load_episodes([str(two_view)], 16)
    (side, *_), _ = load_episodes([str(two_view)], 16, views=["side"])
    (swap, *_), _ = load_episodes([str(two_view)], 16, views=["side", "front"])
    assert side.views == ("side",) and np.array_equal(side.frames, full.frames[..., 16:, :])
    assert swap.views == ("side", "front") and np.array_equal(swap.frames[..., :16, :], side.frames)
    with pytest.raises(DatasetError, match=r"views among the data's \['front', 'side'\].*asked for \['top'\]"):
        load_episodes([str(two_view)], 16, views=["top"])

    model = CompactConfig(image_size=16, channels=(8, 16), dim=16, layers=1, heads=2, vocab_buckets=32,
                          dropout=0.0)
    train(TrainConfig(data=[str(two_view)], out=str(tmp_path / "side"), epochs=1, seed=0, batch_episodes=3,
                      val_fraction=0.2, frame_every=5, model=model, views=["side"]), progress_bar=False)
    critic = CompactCritic(tmp_path / "side")
    assert critic.config.views == () and critic.config.train_info["camera"] == "side"
    f = full.frames

    def ask(frames, views):
        (v,) = critic.assess([CriticQuery("lift", frames[0], frames[:6], frames[5], step=25, views=views)])
        return v.progress

    # given tiled frames it reads the camera it was trained on, not the first one
    assert ask(f, TWO) == pytest.approx(ask(np.ascontiguousarray(f[..., 16:, :]), ()), abs=1e-6)
    assert ask(f, TWO) != pytest.approx(ask(np.ascontiguousarray(f[..., :16, :]), ()), abs=1e-6)


def test_collect_script_takes_cameras(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "cli"
    cmd = [sys.executable, str(root / "scripts" / "collect.py"), "--synthetic", "--env", "SynthLift", "--robot",
           "SynthBot", "--episodes", "2", "--workers", "0", "--out", str(out), "--no-progress", "--horizon", "20",
           "--image-size", "16", "--render-size", "32", "--cameras", "front", "side"]
    res = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ds = EpisodeDataset(out)
    assert ds.views == TWO and ds.load(ds.ids[0]).frames.shape[1:] == (16, 32, 3)


def test_online_refresh_rehearses_the_views_the_critic_reads(two_view, tmp_path):
    pytest.importorskip("torch")
    from primo_loop.critics.compact import CompactConfig, CompactCritic
    from primo_loop.tracker import TrackerConfig
    from primo_loop.training.compact import TrainConfig, train
    from primo_loop.training.online import CriticRefresher, RefreshConfig

    model = CompactConfig(image_size=16, channels=(8, 16), dim=16, layers=1, heads=2, vocab_buckets=32)
    train(TrainConfig(data=[str(two_view)], out=str(tmp_path / "side"), epochs=1, seed=0, batch_episodes=3,
                      val_fraction=0.2, frame_every=5, model=model, views=["side"]), progress_bar=False)
    refresher = CriticRefresher(CompactCritic(tmp_path / "side"), TrackerConfig(),
                                RefreshConfig(rehearsal_data=str(two_view)), 10, 1)
    assert {e.views for e in refresher.rehearsal} == {("side",)}  # not both views tiled
    assert refresher.rehearsal[0].frames.shape[-2] == 16
