"""Videos with instruction sidecars: reading, label alignment, scoring with progress curves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from primo_loop.critics.oracle import OracleCritic
from primo_loop.data.media import write_video
from primo_loop.data.video_folder import evaluate_videos, find_videos, load_video, progress_per_frame
from primo_loop.errors import DatasetError
from primo_loop.evaluate import EvalConfig


def make_video(path, n=30, h=48, w=64):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, :, : int(w * t / n)] = 200  # a bar that grows with time
    write_video(path, frames, fps=10)


def test_find_load_and_labels(tmp_path, caplog):
    make_video(tmp_path / "a.mp4")
    (tmp_path / "a.json").write_text(json.dumps({"instruction": "pick up the cup", "fps": 10,
                                                 "progress": [0, 40, 100], "progress_per": "second"}))
    make_video(tmp_path / "b.mp4")
    (tmp_path / "b.txt").write_text("open the drawer\n")
    make_video(tmp_path / "c.mp4")  # no sidecar: skipped with a warning
    assert [p.name for p in find_videos(tmp_path)] == ["a.mp4", "b.mp4"]
    assert "c.mp4" in caplog.text
    a = load_video(tmp_path / "a.mp4", image_size=32)
    assert a.frames.shape[1:] == (32, 32, 3) and a.instruction == "pick up the cup" and a.fps == 10
    assert a.progress[0] == 0 and a.progress[15] == pytest.approx(0.4) and a.progress[-1] == 1.0
    b = load_video(tmp_path / "b.mp4", image_size=32)
    assert b.progress is None and b.instruction == "open the drawer"
    with pytest.raises(DatasetError):
        find_videos(tmp_path / "missing")
    with pytest.raises(DatasetError, match="progress_per"):
        progress_per_frame([0, 1], 4, 10, per="minute")


def test_evaluate_videos_curves_and_metrics(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    make_video(src / "a.mp4")
    (src / "a.json").write_text(json.dumps({"instruction": "pick up the cup", "progress": list(np.linspace(0, 1, 30)),
                                            "outcome": "success"}))
    make_video(src / "b.mp4")
    (src / "b.txt").write_text("open the drawer")
    out = tmp_path / "out"
    report = evaluate_videos(OracleCritic(), [src], out, EvalConfig(critic_every=5, clip_len=4), image_size=32)
    a, b = report["videos"]
    assert a["steps"] == [0, 5, 10, 15, 20, 25] and a["time_s"][1] == pytest.approx(0.5)
    assert a["pred"] == pytest.approx(a["target"])  # the oracle reads the labels
    assert b["target"] is None and b["pred"] == [None] * 6  # unlabelled: a curve, no metrics
    assert report["labelled"] == 1 and report["metrics"]["progress"]["mae"] == pytest.approx(0.0, abs=1e-6)
    for name in ("videos.json", "videos.md", "a.png", "b.png"):
        assert (out / name).is_file()


def test_eval_critic_script_videos_flag(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "videos"
    src.mkdir()
    make_video(src / "clip.mp4", n=12)
    (src / "clip.json").write_text(json.dumps({"instruction": "lift the cup", "progress": [0, 100]}))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(root / "scripts" / "eval_critic.py"), "--critic", "oracle", "--videos",
                        str(src), "--critic-every", "4", "--size", "32", "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "videos" / "videos.json").read_text())
    assert report["videos"][0]["steps"] == [0, 4, 8] and (out / "videos" / "clip.png").is_file()
    r = subprocess.run([sys.executable, str(root / "scripts" / "eval_critic.py"), "--critic", "oracle", "--out",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--videos" in r.stderr
