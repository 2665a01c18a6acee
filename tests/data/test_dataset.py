"""Episodes and dataset folders: round trip, atomic writes, bad input."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from primo_loop.data.dataset import (
    EpisodeDataset,
    clean_stale_tmp,
    dataset_stats,
    episodes_dir,
    list_episode_ids,
    read_episode,
    write_episode,
    write_index,
)
from primo_loop.data.synthetic import make_dataset, make_episode
from primo_loop.data.media import resize_frames
from primo_loop.errors import DatasetError


def test_episode_roundtrip(tmp_path):
    ep = make_episode(3, failure="drop", n_steps=30, frame_every=3, image_size=24)
    folder = write_episode(tmp_path, ep)
    back = read_episode(folder)
    np.testing.assert_array_equal(back.frames, ep.frames)
    np.testing.assert_array_equal(back.frame_steps, ep.frame_steps)
    for k, v in ep.table.items():
        np.testing.assert_array_equal(back.table[k], v)
    assert back.meta["outcome"] == "failure" and back.meta["failure_step"] == int(np.flatnonzero(ep.table["failed"])[0])
    assert back.frame_steps[0] == 0 and back.frame_steps[-1] == 30  # reset and final frames kept
    assert back.n_steps == 30 and back.table["action"].shape == (31, 4)
    with pytest.raises(DatasetError, match="exists already"):
        write_episode(tmp_path, ep)


def test_dataset_index_and_stats(tmp_path):
    ids = make_dataset(tmp_path, n_episodes=5, failure_rate=0.5)
    ds = EpisodeDataset(tmp_path)
    assert sorted(ds.ids) == sorted(ids) and len(list(ds)) == 5
    index = write_index(tmp_path)
    assert index["n_episodes"] == 5
    st = dataset_stats(tmp_path)
    assert st["episodes"] == 5 and sum(st["outcome"].values()) == 5 and st["task"] == {"SynthLift": 5}


def test_tmp_folders_are_invisible_and_cleaned(tmp_path):
    make_dataset(tmp_path, n_episodes=2)
    stale = episodes_dir(tmp_path) / ".tmp-X.999999999.abcd"
    stale.mkdir()
    assert len(list_episode_ids(tmp_path)) == 2
    assert clean_stale_tmp(tmp_path) == 1 and not stale.exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs procfs")
def test_tmp_folders_of_zombies_and_reused_pids_are_stale_live_writers_kept(tmp_path):
    # A run killed with `kill -9` leaves its writers as zombies until they are reaped, and a pid can be reused:
    # neither may keep a dead writer's folder (a resumed collection would leave it behind).
    zombie = subprocess.Popen(["true"])  # exits, and stays a zombie until we wait() for it
    deadline = time.time() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.time() < deadline
        time.sleep(0.01)
    live = subprocess.Popen(["sleep", "60"])
    try:
        make_dataset(tmp_path, n_episodes=1)
        d = episodes_dir(tmp_path)
        of_zombie = d / f".tmp-A.{zombie.pid}.aaaa"
        reused = d / f".tmp-B.{live.pid}.bbbb"  # written an hour before `live` started: not its folder
        writing = d / f".tmp-C.{live.pid}.cccc"  # written now by a process that started before: a live writer
        for p in (of_zombie, reused, writing):
            p.mkdir()
        os.utime(reused, (time.time() - 3600, time.time() - 3600))
        assert clean_stale_tmp(tmp_path) == 2
        assert writing.exists() and not of_zombie.exists() and not reused.exists()
        assert len(list_episode_ids(tmp_path)) == 1
    finally:
        live.kill()
        live.wait()
        zombie.wait()


def test_empty_and_corrupt_datasets_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        EpisodeDataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="holds no episodes"):
        EpisodeDataset(tmp_path)
    ids = make_dataset(tmp_path, n_episodes=3)
    (episodes_dir(tmp_path) / ids[0] / "steps.npz").write_bytes(b"garbage")
    ds = EpisodeDataset(tmp_path)
    with pytest.raises(DatasetError, match=f"{ids[0]}/steps.npz"):
        ds.load(ids[0])
    (episodes_dir(tmp_path) / ids[1] / "meta.json").write_text("{oops")
    with pytest.raises(DatasetError, match=f"{ids[1]}/meta.json"):
        EpisodeDataset(tmp_path)


def test_missing_frames_are_skipped_and_counted(tmp_path):
    ids = make_dataset(tmp_path, n_episodes=3)
    (episodes_dir(tmp_path) / ids[2] / "frames.npz").unlink()
    ds = EpisodeDataset(tmp_path)
    assert len(ds) == 2 and list(ds.skipped) == [ids[2]]
    assert dataset_stats(tmp_path)["missing_frames"] == 1


def test_resize_frames():
    x = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    assert resize_frames(x, 4) is not None and resize_frames(x, 2).shape == (2, 2, 3)
    assert resize_frames(np.zeros((3, 128, 128, 3), np.uint8), 96).shape == (3, 96, 96, 3)


def test_a_steps_table_of_the_wrong_length_is_reported_as_a_bad_steps_file(tmp_path):
    ids = make_dataset(tmp_path, n_episodes=2, n_steps=20)
    steps = episodes_dir(tmp_path) / ids[0] / "steps.npz"
    table = dict(np.load(steps))
    np.savez_compressed(steps, **{k: v[:10] for k, v in table.items()})  # every column cut short
    with pytest.raises(DatasetError, match=rf"Corrupt episode table .*{ids[0]}/steps.npz: expected 21 rows .*"
                                           "actually: 10"):
        EpisodeDataset(tmp_path).load(ids[0])
    steps = episodes_dir(tmp_path) / ids[1] / "steps.npz"
    table = dict(np.load(steps))
    np.savez_compressed(steps, **{**table, "reward": table["reward"][:5]})  # one column cut short
    with pytest.raises(DatasetError, match=rf"{ids[1]}/steps.npz: expected columns of one length"):
        EpisodeDataset(tmp_path).load(ids[1])


_DIE_BEFORE_RENAME = """
import os, sys
import numpy as np
from primo_loop.data import dataset
from primo_loop.data.synthetic import make_episode

root = sys.argv[1]
for seed in (0, 1):
    dataset.write_episode(root, make_episode(seed, n_steps=20, image_size=16))
real = np.savez_compressed

def dying(path, **arrays):  # the process is killed once the episode's table is on disk, before any rename
    real(path, **arrays)
    if str(path).endswith("steps.npz"):
        os._exit(9)

dataset.np.savez_compressed = dying
dataset.write_episode(root, make_episode(2, n_steps=20, image_size=16))
"""


def test_a_writer_killed_between_write_and_rename_leaves_no_half_episode_and_the_dataset_resumes(tmp_path):
    import sys

    root = tmp_path / "ds"
    proc = subprocess.run([sys.executable, "-c", _DIE_BEFORE_RENAME, str(root)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert proc.returncode == 9, proc.stderr[-2000:]  # it died mid-episode, as planted
    whole = [make_episode(s, n_steps=20, image_size=16) for s in (0, 1, 2)]
    assert list_episode_ids(root) == sorted(e.episode_id for e in whole[:2])  # the half episode is not visible
    ds = EpisodeDataset(root)
    assert len(ds) == 2 and all(ep.n_steps == 20 for ep in ds)
    leftovers = [p for p in episodes_dir(root).iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "steps.npz").is_file()  # it did get that far
    # resume: the dead writer's folder is cleared and the episode is written again, whole
    assert clean_stale_tmp(root) == 1
    write_episode(root, whole[2])
    back = read_episode(episodes_dir(root) / whole[2].episode_id)
    np.testing.assert_array_equal(back.frames, whole[2].frames)
    assert len(EpisodeDataset(root)) == 3 and write_index(root)["n_episodes"] == 3
