"""PRIMO records: import of the fixture (JSON and JSONL, data roots) and export/import round trips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from primo_loop.data.dataset import EpisodeDataset
from primo_loop.data.primo_format import (
    export_primo,
    load_record_frames,
    load_records,
    normalize_media_path,
    solution_text,
)
from primo_loop.answers import solution_value
from primo_loop.data.synthetic import make_dataset
from primo_loop.errors import DatasetError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "primo"


@pytest.fixture(autouse=True)
def _no_data_root_vars(monkeypatch):
    for name in ("VIDEO_DATA_ROOT", "PRIMO_DATA_ROOT"):
        monkeypatch.delenv(name, raising=False)


def test_load_fixture_jsonl_resolves_against_file_folder():
    recs = load_records(FIXTURE / "records.jsonl")
    assert [r["progress"] for r in recs] == [50.0, 100.0, 20.0]
    assert recs[1]["media_path"] == str(FIXTURE / "videos" / "clip1.mp4")  # the `video` key works too
    initial, clip, current = load_record_frames(recs[0], nframes=4)
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(initial, clip[0])
    np.testing.assert_array_equal(current, clip[-1])


def test_load_fixture_json_list_and_data_roots(monkeypatch, tmp_path):
    recs = load_records(FIXTURE / "records.json", data_root=tmp_path)
    assert len(recs) == 2 and recs[0]["media_path"] == str(tmp_path / "videos" / "clip0.mp4")
    monkeypatch.setenv("PRIMO_DATA_ROOT", str(FIXTURE))
    recs = load_records(FIXTURE / "records.json")
    assert recs[0]["media_path"] == str(FIXTURE / "videos" / "clip0.mp4")
    # a raw record (no media_path) resolves through the environment variable
    raw = json.loads((FIXTURE / "records.jsonl").read_text().splitlines()[2])
    _, clip, _ = load_record_frames(raw, nframes=8, image_size=16)
    assert clip.shape == (8, 16, 16, 3)


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem_id": 1}\n{not json\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2"):
        load_records(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DatasetError, match="empty"):
        load_records(empty)
    rec = {"problem_id": "x", "path": str(tmp_path / "nope.mp4")}
    with pytest.raises(DatasetError, match="nope.mp4"):
        load_record_frames(rec)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match="corrupt.mp4"):
        load_record_frames({"path": str(corrupt)})


def test_solution_roundtrip():
    assert solution_value(solution_text(36.6)) == 37.0
    assert solution_value("<think>a 50 b</think> <answer> 12.5 </answer>") == 12.5
    assert solution_value("") is None


def test_video_data_root_dict_layout_and_path_normalisation(monkeypatch, tmp_path):
    root = tmp_path / "root"
    media = root / "primo-video" / "videos" / "clip0.mp4"  # the release's media folder
    media.parent.mkdir(parents=True)
    media.write_bytes((FIXTURE / "videos" / "clip0.mp4").read_bytes())
    (root / "videos").mkdir()
    (root / "videos" / "direct.mp4").write_bytes(b"")
    recs = [{"problem_id": "a", "path": "./videos/clip0.mp4", "solution": "<answer>30</answer>"},
            {"problem_id": "b", "video": "videos\\clip0.mp4", "solution": "<answer>1.0</answer>"},
            {"problem_id": "c", "video_path": "/videos/direct.mp4", "solution": "<answer>5</answer>"}]
    f = tmp_path / "bench.json"
    f.write_text(json.dumps({"results": recs, "final_acc": [{"mean_mra": 0.5}]}))
    monkeypatch.setenv("PRIMO_DATA_ROOT", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("VIDEO_DATA_ROOT", str(root))  # the release's variable wins
    got = load_records(f)
    assert [r["media_path"] for r in got] == [str(media), str(media), str(root / "videos" / "direct.mp4")]
    assert [r["progress"] for r in got] == [30.0, 1.0, 5.0]
    assert load_record_frames(got[0], nframes=4)[1].shape == (4, 32, 32, 3)
    one_list = tmp_path / "one.json"
    one_list.write_text(json.dumps({"whatever": recs[:1], "name": "x"}))
    assert len(load_records(one_list)) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": recs, "b": recs}))
    with pytest.raises(DatasetError, match="results"):
        load_records(bad)
    assert normalize_media_path("/images/a.jpg") == "images/a.jpg"
    assert normalize_media_path("/abs/a.mp4") == "/abs/a.mp4"


def test_export_import_roundtrip(tmp_path):
    data = tmp_path / "ds"
    make_dataset(data, n_episodes=3, image_size=32, failure_rate=0.5)
    out = tmp_path / "primo" / "records.jsonl"
    n = export_primo(data, out, per_episode=4)
    assert n == 12
    recs = load_records(out)
    assert len(recs) == 12
    ds = EpisodeDataset(data)
    for rec in recs:
        assert rec["problem_type"] == "numerical" and rec["data_type"] == "video" and rec["select"] is True
        assert not Path(rec["path"]).is_absolute() and rec["instruction"] in rec["problem"]
        ep = ds.load(rec["episode_id"])
        want = 100 * float(ep.table["progress"][rec["step"]])
        assert rec["progress"] == pytest.approx(want, abs=1e-3)
        assert solution_value(rec["solution"]) == round(want)
        # what the release's SFT and GRPO loaders require, so they would not skip our records
        for key in ("init_frame_path", "current_frame_path", "process", "planning", "observation", "reasoning"):
            assert rec[key], key
        assert rec["process"] == (f"<planning>{rec['planning']}</planning><observation>{rec['observation']}"
                                  f"</observation><reasoning>{rec['reasoning']}</reasoning>")
        assert set(rec["events"]) <= {e["event"] for e in ep.meta["events"]}
        k = int(np.searchsorted(ep.frame_steps, rec["step"]))
        frames = ep.frames[: k + 1]
        initial, clip, current = load_record_frames(rec, nframes=len(frames))
        # lossy video: close to the stored frames, not equal
        assert np.abs(clip.astype(int) - frames.astype(int)).mean() < 8
        assert np.abs(current.astype(int) - frames[-1].astype(int)).mean() < 8
        # the exported anchors are the clip's first and last frames, as JPEGs beside the video
        from PIL import Image

        for key, frame in (("init_frame_path", frames[0]), ("current_frame_path", frames[-1])):
            jpg = np.asarray(Image.open(out.parent / rec[key]).convert("RGB"))
            assert np.abs(jpg.astype(int) - frame.astype(int)).mean() < 8


def test_export_load_gives_the_same_queries(tmp_path):
    """export -> load -> the questions a critic gets are the ones written at export, wrapped once."""
    from primo_loop.prompting import DEFAULT_TEMPLATE, progress_question, query_question
    from primo_loop.types import CriticQuery

    data = tmp_path / "ds"
    make_dataset(data, n_episodes=2, image_size=32)
    out = tmp_path / "primo" / "records.jsonl"
    export_primo(data, out, per_episode=2, problem_type="regression")
    for rec in load_records(out):
        assert rec["problem_type"] == "regression"
        initial, clip, current = load_record_frames(rec, nframes=4)
        q = CriticQuery(instruction=rec["instruction"], initial=initial, clip=clip, current=current,
                        question=rec["problem"])
        assert query_question(q) == progress_question(rec["instruction"]) == rec["problem"]
        assert DEFAULT_TEMPLATE.render_question(query_question(q)).count(rec["problem"]) == 1
    with pytest.raises(Exception, match="problem_type"):
        export_primo(data, tmp_path / "x.jsonl", per_episode=1, problem_type="free-form")
