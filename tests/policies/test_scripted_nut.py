"""The scripted NutAssemblySquare policy: built by ScriptedPolicy(env), the carry turn, missed grasps."""
from __future__ import annotations

import numpy as np
import pytest

import envs
from policies import make_policy
from policies.scripted import NutSquarePolicy, ScriptedPolicy
from policies.scripted.nut import carry_turn
from primo_loop.errors import UnsupportedError


def test_carry_turn_points_the_handle_back_or_sideways():
    for yaw in np.linspace(-np.pi, np.pi, 37):
        turn = carry_turn(yaw)
        after = np.arctan2(np.sin(yaw + turn), np.cos(yaw + turn))
        # the handle ends along -x, +y or -y (never +x, away from the robot), by the smallest such turn
        assert min(abs(after - g) for g in (np.pi / 2, -np.pi / 2)) < 1e-9 or abs(abs(after) - np.pi) < 1e-9
        assert abs(turn) <= 3 * np.pi / 4 + 1e-9
    assert carry_turn(0.0) == pytest.approx(np.pi / 2)  # pointing away: a quarter turn, not a half


@pytest.fixture(scope="module")
def nut():
    pytest.importorskip("robosuite")
    env = envs.make_env("NutAssemblySquare", "Panda")
    yield env
    env.close()


def test_nut_gets_its_own_policy(nut):
    assert type(ScriptedPolicy(nut)) is NutSquarePolicy and type(make_policy("scripted", nut)) is NutSquarePolicy
    with pytest.raises(UnsupportedError, match="push_away.*NutAssemblySquare"):
        ScriptedPolicy(nut, failure="push_away")


def _run(env, policy, seed, steps):
    env.reset(seed=seed)
    policy.reset(seed=seed)
    progress = []
    for _ in range(steps):
        _, _, _, _, info = env.step(policy.act())
        progress.append(info["oracle/progress"])
    return np.array(progress), info


def test_offset_grasp_misses_the_handle(nut):
    policy = ScriptedPolicy(nut, failure="offset_grasp", seed=0)
    progress, info = _run(nut, policy, seed=0, steps=90)
    p = nut.privileged()
    assert policy.failure_injected_at is not None and not info["is_success"]
    assert p["failure_event"] == "the grasp missed the square nut" and progress.max() < 0.3
    assert p["peg_dist"] > 0.25  # the nut never left its side of the table


def test_offset_grasp_closes_on_the_outer_side_of_the_handle(nut):
    """Towards the nut the offset fingers would close on the ring and often hold it (and then succeed)."""
    policy = ScriptedPolicy(nut, failure="offset_grasp", seed=0)
    rel = []
    for seed in range(12):
        nut.reset(seed=seed)
        policy.reset(seed=seed)
        off = policy._offset
        assert 0.04 <= np.linalg.norm(off[:2]) <= 0.05 and off[2] == 0.0
        a = np.arctan2(off[1], off[0]) - policy.plan.object_yaw()
        rel.append(np.degrees(np.arctan2(np.sin(a), np.cos(a))))
    assert max(abs(r) for r in rel) <= 70.0 + 1e-6 and np.ptp(rel) > 40.0  # outward, and still drawn per seed


@pytest.mark.slow
def test_close_early_misses_the_handle(nut):
    policy = ScriptedPolicy(nut, failure="close_early", seed=1)
    progress, info = _run(nut, policy, seed=1, steps=90)
    p = nut.privileged()
    assert policy.failure_injected_at is not None and not info["is_success"]
    assert p["failure_event"] == "the grasp missed the square nut" and progress.max() < 0.3
