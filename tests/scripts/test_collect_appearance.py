"""scripts/collect.py --appearance: the flag reaches the robosuite env through the collection factory, each
episode's meta records the appearance and its look, and a resume with another appearance is refused."""
from __future__ import annotations

import pytest

from primo_loop.data.dataset import episodes_dir, list_episode_ids, read_meta
from primo_loop.errors import DatasetError

pytest.importorskip("robosuite")


def test_collect_records_the_look_and_refuses_another_appearance(load_script, tmp_path):
    from envs.appearance import sample_look

    main = load_script("scripts/collect.py").main
    out = tmp_path / "ds"
    base = ["--env", "Lift", "--seed", "11", "--failure-rate", "0", "--horizon", "6", "--frame-every", "3",
            "--render-size", "32", "--image-size", "32", "--workers", "0", "--no-progress", "--out", str(out)]
    assert main([*base, "--episodes", "1", "--appearance", "train"]) == 0
    (eid,) = list_episode_ids(out)
    meta = read_meta(episodes_dir(out) / eid)
    assert meta["appearance"] == "train"
    assert meta["look"] == sample_look(11, "train").to_dict()  # the look of the episode's seed, as drawn
    with pytest.raises(DatasetError, match="appearance: on disk 'train', now 'heldout'"):
        main([*base, "--episodes", "2", "--appearance", "heldout"])
    with pytest.raises(DatasetError, match="appearance: on disk 'train', now 'nominal'"):
        main([*base, "--episodes", "2"])  # the default is nominal
    assert list_episode_ids(out) == [eid]
