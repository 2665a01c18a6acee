"""benchmarks/grasp_vs_hover.py: grasp/hover classes from hand-made privileged states, the signed error per
class and critic, the rollout's kept states; end to end on a tiny SAC run (slow)."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is imported from the repository root


@pytest.fixture(scope="module")
def gh():
    return importlib.import_module("benchmarks.grasp_vs_hover")


def _state(holding=False, grasped=False, dist=0.1, height=0.0, progress=0.3):
    return {"holding": holding, "grasped": grasped, "reach_dist": dist, "object_height": height, "progress": progress}


@pytest.mark.parametrize("state, expected", [
    (_state(holding=True, grasped=True, dist=0.0), ["grasp", "grasp_on_table"]),  # closed on the cube, on the table
    (_state(grasped=True, dist=0.01), ["grasp", "grasp_on_table"]),  # pads touch it, the hold not yet counted
    (_state(holding=True, dist=0.0, height=0.03), ["grasp", "grasp_lifted"]),  # lifted, held (pads may slip a step)
    (_state(dist=0.02), ["hover"]),  # at the cube, open or closed on nothing
    (_state(dist=0.04), ["hover"]),  # the boundary is inclusive
    (_state(dist=0.041), ["other"]),  # reaching
    (_state(dist=0.02, height=0.03), ["other"]),  # near but the cube is off the table and not held: falling
    (_state(dist=0.3, height=-0.2), ["other"]),  # dropped off the table
])
def test_classes_from_privileged_state(gh, state, expected):
    assert gh.classes_of(state) == expected


class _ConstCritic:
    """Answers one progress for every query (None: unreadable)."""

    def __init__(self, value):
        self.value = value

    def assess(self, queries):
        from primo_loop.types import CriticVerdict

        return [CriticVerdict(progress=self.value, failure_prob=0.0, reasoning=None, raw=None, latency_s=0.0)
                for _ in queries]


def _rollout(gh, states):
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(len(states))]
    return gh.Rollout("pick up the cube and lift it", frames, [10 * i for i in range(len(states))], states)


def test_signed_error_per_class_and_critic(gh):
    states = [_state(dist=0.3, progress=0.1), _state(dist=0.02, progress=0.3), _state(dist=0.01, progress=0.3),
              _state(holding=True, grasped=True, dist=0.0, progress=0.5),
              _state(holding=True, grasped=True, dist=0.0, height=0.05, progress=0.9)]
    res = gh.score({"blind": _ConstCritic(0.3), "sees": _ConstCritic(0.5), "mute": _ConstCritic(None)},
                   [_rollout(gh, states)])
    assert res["queries"] == 5
    assert res["class_counts"] == {"grasp": 2, "grasp_on_table": 1, "grasp_lifted": 1, "hover": 2, "other": 1}
    blind, sees = res["critics"]["blind"], res["critics"]["sees"]
    assert blind["hover"]["signed_error"] == pytest.approx(0.0) and blind["hover"]["n"] == 2
    assert blind["grasp_on_table"]["signed_error"] == pytest.approx(-20.0)  # a grasp read as hovering
    assert blind["grasp"]["signed_error"] == pytest.approx(((30 - 50) + (30 - 90)) / 2)
    assert blind["grasp"]["oracle"] == pytest.approx(70.0) and blind["grasp"]["critic"] == pytest.approx(30.0)
    assert sees["grasp_on_table"]["signed_error"] == pytest.approx(0.0)
    assert sees["hover"]["signed_error"] == pytest.approx(20.0)
    mute = res["critics"]["mute"]  # unreadable answers are counted, never averaged as a number
    assert mute["unreadable"] == 5 and mute["grasp"]["n"] == 0 and mute["grasp"]["signed_error"] is None


def test_queries_follow_the_tracker(gh):
    rec = _rollout(gh, [_state() for _ in range(12)])
    qs = gh.queries_of(rec, clip_len=8)
    assert len(qs) == 12 and qs[5].step == 50
    assert qs[5].current[0, 0, 0] == 5 and qs[5].initial[0, 0, 0] == 0
    assert qs[11].clip[:, 0, 0, 0].tolist() == [0, 2, 3, 5, 6, 8, 9, 11]  # uniform over frames kept so far


class _Env:
    """Counts steps; ends (terminated) at step ``end``."""

    def __init__(self, end):
        self.end, self.t = end, 0
        self.unwrapped = self
        self.instruction = "pick up the cube and lift it"

    def reset(self, seed=None):
        self.t, self.seed = 0, seed
        return np.zeros(3), {}

    def step(self, action):
        self.t += 1
        return np.zeros(3), 0.0, self.t >= self.end, False, {}


class _Policy:
    def __init__(self):
        self.seeds = []

    def reset(self, seed=None):
        self.seeds.append(seed)

    def act(self, obs):
        return np.zeros(4)


def test_roll_out_keeps_states_at_the_query_cadence(gh):
    env, policy = _Env(end=25), _Policy()
    rec = gh.roll_out(env, policy, seed=7, every=10, horizon=80, frame=lambda: np.full((4, 4, 3), env.t, np.uint8),
                      privileged=lambda: {"t": env.t})
    assert rec.steps == [0, 10, 20] and [p["t"] for p in rec.privileged] == [0, 10, 20]
    assert [f[0, 0, 0] for f in rec.frames] == [0, 10, 20]
    assert env.seed == 7 and policy.seeds == [7]
    rec = gh.roll_out(_Env(end=1000), _Policy(), seed=0, every=10, horizon=30, frame=lambda: np.zeros((4, 4, 3)),
                      privileged=dict)
    assert rec.steps == [0, 10, 20, 30]  # the horizon ends it


@pytest.mark.slow
def test_end_to_end_on_a_tiny_sac_run(gh, lift_agent, tmp_path):
    out = tmp_path / "gh"
    assert gh.main(["--run", str(lift_agent), "--critic", "default", "hardened", "--episodes", "1", "--horizon", "20",
                    "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["queries"] == 3 and set(rep["critics"]) == {"default", "hardened"}
    assert sum(rep["class_counts"][c] for c in ("grasp", "hover", "other")) == 3
    assert "| default | hover |" in (out / "report.md").read_text()


def test_a_two_view_critic_scores_rollouts_of_tiled_frames(gh, tmp_path):
    torch = pytest.importorskip("torch")
    from primo_loop.critics import make_critic
    from primo_loop.critics.compact import CompactConfig, build_model, save_checkpoint

    two = ("agentview", "robot0_eye_in_hand")
    cfg = CompactConfig(image_size=16, channels=(8, 16), dim=16, layers=1, heads=2, vocab_buckets=32, views=two)
    torch.manual_seed(0)
    critic = make_critic("compact", checkpoint=str(save_checkpoint(tmp_path / "c", cfg, build_model(cfg).state_dict())))
    rec = gh.Rollout(instruction="lift the cube", views=two)
    for k, priv in enumerate([_state(dist=0.3), _state(dist=0.02), _state(holding=True, grasped=True, dist=0.0)]):
        rec.frames.append(np.full((16, 32, 3), 40 * k, np.uint8))
        rec.steps.append(10 * k)
        rec.privileged.append(priv)
    assert [q.views for q in gh.queries_of(rec)] == [two] * 3
    res = gh.score({"two": critic}, [rec])  # refused without the views: a two-view critic needs its cameras
    assert res["queries"] == 3 and res["critics"]["two"]["unreadable"] == 0


def test_scripted_episodes_take_the_failure_modes_in_turn(gh, tmp_path):
    out = tmp_path / "gh"
    assert gh.main(["--policy", "scripted", "--inject-failure", "none", "close_early", "--critic", "default",
                    "--episodes", "3", "--horizon", "20", "--image-size", "32", "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["failures"] == ["none", "close_early", "none"] and rep["task"] == "Lift" and rep["robot"] == "Panda"
    assert rep["queries"] == 9 and rep["critics"]["default"]["unreadable"] == 0
    assert "injected failures in turn: close_early, none" in (out / "report.md").read_text()


def test_failures_are_refused_for_a_trained_agent(gh, tmp_path):
    from primo_loop.errors import ConfigError

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": "Lift", "robot": "Panda"}))
    with pytest.raises(ConfigError, match="--inject-failure needs --policy scripted"):
        gh.main(["--policy", str(run), "--inject-failure", "drop", "--out", str(tmp_path / "o")])
