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
        progress_per_frame([0, 1], 4, 10, per="video" + "s")


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
    (src / "clip.json").write_text(json.dumps({"instruction": "lift the cup", "progress": [0, 100],
                                               "progress_per": "video"}))
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


class BarCritic:
    """Reads progress from the picture itself (the lit share of the bottom row), never from the labels."""

    name = "bar"

    def assess(self, queries):
        from primo_loop.types import CriticVerdict

        return [CriticVerdict(progress=float((q.current[-1, :, 0] > 100).mean()), latency_s=0.001) for q in queries]


def _bar_video(path, n=32):
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    for t in range(n):
        frames[t, :, :t] = 255  # progress t / 32, drawn
    write_video(path, frames, fps=8, quality=10)


def test_video_metrics_measure_the_critic_against_the_labels(tmp_path):
    """A critic that reads the frames, scored against labels 10 points above what the frames show: the report's
    MAE is 10 (the oracle, which reads the labels, would score 0 whatever went wrong), and per-second labels
    line up with the frames they describe."""
    src = tmp_path / "videos"
    src.mkdir()
    _bar_video(src / "a.mp4")
    shown = np.arange(32) / 32 * 100  # the 0-100 scale
    (src / "a.json").write_text(json.dumps({"instruction": "fill the bar", "progress": list(shown + 10)}))
    _bar_video(src / "b.mp4")  # 4 s at 8 fps: labels held over each second, the first one 10 points up
    (src / "b.json").write_text(json.dumps({"instruction": "fill the bar", "progress": [0.1, 0.25, 0.5, 0.75],
                                            "progress_per": "second"}))
    report = evaluate_videos(BarCritic(), [src], tmp_path / "out", EvalConfig(critic_every=8, clip_len=4),
                             image_size=32)
    a, b = report["videos"]
    assert a["steps"] == [0, 8, 16, 24] and a["pred"] == pytest.approx([0, 25, 50, 75], abs=1.5)
    assert np.subtract(a["target"], a["pred"]) == pytest.approx([10] * 4, abs=1.5)
    assert b["target"] == pytest.approx([10, 25, 50, 75]) and b["pred"] == pytest.approx(a["pred"])
    assert report["metrics"]["progress"]["mae"] == pytest.approx(50 / 8, abs=1.0)  # 5 errors of 10, 3 of 0
    assert "| a | fill the bar | 32 | 4 | 75 | 85 | 10.0 |" in (tmp_path / "out" / "videos.md").read_text()


def test_bad_videos_and_sidecars_are_reported_and_the_rest_scored(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = tmp_path / "videos"
    src.mkdir()
    make_video(src / "good.mp4", n=12)
    (src / "good.txt").write_text("open the drawer")
    (src / "broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (src / "broken.txt").write_text("open the drawer")
    make_video(src / "strings.mp4", n=12)
    (src / "strings.json").write_text(json.dumps({"instruction": "x", "progress": ["0", "50%", "100"],
                                                  "progress_per": "video"}))
    make_video(src / "short.mp4", n=12)
    (src / "short.json").write_text(json.dumps({"instruction": "x", "progress": [0, 50, 100]}))
    report = evaluate_videos(OracleCritic(), [src], tmp_path / "out", EvalConfig(critic_every=4), image_size=32)
    assert [v["name"] for v in report["videos"]] == ["good"]
    errors = {Path(s["path"]).name: s["error"] for s in report["skipped"]}
    assert "ffmpeg version" not in errors["broken.mp4"] and "\n" not in errors["broken.mp4"]
    assert "Could not decode media file" in errors["broken.mp4"]
    assert "strings.json: Expected \"progress\" to hold numbers" in errors["strings.mp4"]
    assert "short.json: Expected one progress label per frame (12), actually: 3" in errors["short.mp4"]
    assert "Not scored:" in (tmp_path / "out" / "videos.md").read_text()

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "scripts" / "eval_critic.py"), "--critic", "oracle", "--videos",
                        str(src), "--critic-every", "4", "--size", "32", "--out", str(tmp_path / "script")],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "videos: 1 scored" in r.stdout and "ffmpeg version" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "skipping" in ln]) == 3
    with pytest.raises(DatasetError, match="None of the 1 videos could be read"):
        evaluate_videos(OracleCritic(), [src / "broken.mp4"], tmp_path / "none", EvalConfig())


def test_label_lists_must_cover_the_video():
    with pytest.raises(DatasetError, match="one progress label per frame \\(4\\), actually: 2"):
        progress_per_frame([0.0, 1.0], 4, fps=30)
    with pytest.raises(DatasetError, match="Expected 3 or 4 per-second progress labels"):
        progress_per_frame([0, 100], 30, fps=10, per="second")
    with pytest.raises(DatasetError, match="list of numbers"):
        progress_per_frame("0, 50, 100", 3, fps=1)
    assert progress_per_frame([0, 40, 100, 100], 30, fps=10, per="second")[-1] == 1.0
