"""What an episode records about how it was made: its appearance and look (checked against the env that showed
it), refused on resume when the appearance changes; the synthetic scene has only the nominal look."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from primo_loop.data.collect import CollectConfig, collect, plan_episodes
from primo_loop.data.dataset import episodes_dir, list_episode_ids, read_meta
from primo_loop.data.provenance import APPEARANCES, appearance_meta, check_appearance
from primo_loop.data.synthetic import SyntheticEnv, synthetic_policy
from primo_loop.errors import ConfigError, DatasetError, UnknownNameError


@dataclass(frozen=True)
class FakeLook:
    seed: int
    split: str

    def to_dict(self):
        return {"seed": self.seed, "split": self.split}


class LookingEnv(SyntheticEnv):
    """The synthetic scene pretending to show a look per episode, as envs.adapter.RobosuiteEnv does."""

    def __init__(self, appearance: str, **kwargs):
        self.appearance, self.look = appearance, None
        super().__init__(**kwargs)

    def reset(self, seed=None):
        self.look = None if self.appearance == "nominal" else FakeLook(seed, self.appearance)
        return super().reset(seed=seed)


def looking_env(task, robot, cfg):  # module level: an env factory as collection wants it
    return LookingEnv(cfg.appearance, task=task, robot=robot, image_size=cfg.render_size)


def ignoring_env(task, robot, cfg):  # a factory that forgets the appearance
    return LookingEnv("nominal", task=task, robot=robot, image_size=cfg.render_size)


def _collect(out, appearance, episodes=2, make_env=looking_env):
    plan = plan_episodes(["SynthLift"], ["SynthBot"], episodes, seed=4, failure_rate=0.0)
    cfg = CollectConfig(appearance=appearance, horizon=30, render_size=32, image_size=32)
    return collect(plan, out, cfg, workers=0, make_env=make_env, make_policy=synthetic_policy)


def test_names_are_checked():
    assert APPEARANCES == ("nominal", "train", "heldout")
    assert check_appearance(None) == "nominal" and check_appearance("heldout") == "heldout"
    with pytest.raises(UnknownNameError, match="Did you mean 'heldout'"):
        check_appearance("held_out")
    with pytest.raises(UnknownNameError, match="Did you mean 'heldout'"):
        CollectConfig(appearance="heldot")
    with pytest.raises(ConfigError, match="synthetic scene"):
        CollectConfig(synthetic=True, appearance="train")


def test_each_episode_records_its_appearance_and_look(tmp_path):
    assert _collect(tmp_path / "ds", "train")["written"] == 2
    metas = [read_meta(episodes_dir(tmp_path / "ds") / eid) for eid in list_episode_ids(tmp_path / "ds")]
    assert [(m["appearance"], m["look"]) for m in metas] == [
        ("train", {"seed": 4, "split": "train"}), ("train", {"seed": 5, "split": "train"})]
    _collect(tmp_path / "nominal", "nominal", episodes=1)
    m = read_meta(episodes_dir(tmp_path / "nominal") / list_episode_ids(tmp_path / "nominal")[0])
    assert m["appearance"] == "nominal" and m["look"] is None


def test_a_resume_with_another_appearance_is_refused_naming_it(tmp_path):
    out = tmp_path / "ds"
    _collect(out, "train")
    with pytest.raises(DatasetError, match="appearance: on disk 'train', now 'heldout'"):
        _collect(out, "heldout", episodes=3)
    assert len(list_episode_ids(out)) == 2
    assert _collect(out, "train", episodes=3)["written"] == 1


def test_an_env_that_ignored_the_appearance_is_caught():
    env = LookingEnv("nominal")
    assert appearance_meta(env, "nominal") == {"appearance": "nominal", "look": None}
    with pytest.raises(ConfigError, match="Expected the env to show appearance 'train', actually: 'nominal'"):
        appearance_meta(env, "train")


def test_a_factory_that_ignores_the_appearance_fails_its_episodes(tmp_path):
    summary = _collect(tmp_path / "ds", "heldout", episodes=1, make_env=ignoring_env)
    assert summary["written"] == 0 and "appearance" in next(iter(summary["errors"].values()))
