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
    parse_solution,
    solution_text,
)
from primo_loop.data.synthetic import make_dataset
from primo_loop.errors import DatasetError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "primo"


def test_load_fixture_jsonl_resolves_against_file_folder(monkeypatch):
    monkeypatch.delenv("PRIMO_DATA_ROOT", raising=False)
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
    assert parse_solution(solution_text(36.6)) == 37.0
    assert parse_solution("<think>a 50 b</think> <answer> 12.5 </answer>") == 12.5
    assert parse_solution("") is None


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
        assert rec["problem_type"] == "numerical" and rec["data_type"] == "video"
        assert not Path(rec["path"]).is_absolute() and rec["instruction"] in rec["problem"]
        ep = ds.load(rec["episode_id"])
        want = 100 * float(ep.table["progress"][rec["step"]])
        assert rec["progress"] == pytest.approx(want, abs=1e-3)
        assert parse_solution(rec["solution"]) == round(want)
        assert set(rec["events"]) <= {e["event"] for e in ep.meta["events"]}
        k = int(np.searchsorted(ep.frame_steps, rec["step"]))
        frames = ep.frames[: k + 1]
        initial, clip, current = load_record_frames(rec, nframes=len(frames))
        # lossy video: close to the stored frames, not equal
        assert np.abs(clip.astype(int) - frames.astype(int)).mean() < 8
        assert np.abs(current.astype(int) - frames[-1].astype(int)).mean() < 8
