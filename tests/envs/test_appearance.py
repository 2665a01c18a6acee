"""Appearance randomisation: looks drawn from the seed, disjoint train/held-out splits, seeded pixel noise,
frames reproducible from the reset seed, and a look that leaves physics and the oracle alone."""
from __future__ import annotations

import numpy as np
import pytest

from envs.appearance import (
    BAND_DEG,
    MARGIN_DEG,
    N_OBJECT_COLOURS,
    RANGES,
    SPLITS,
    add_noise,
    hue_split,
    noise_rng,
    sample_look,
)
from primo_loop.errors import UnknownNameError

SEEDS = range(1500)


# ----- the sampler (no simulator) ------------------------------------------------------------------------------
def test_a_look_is_a_function_of_its_seed_and_split():
    assert sample_look(7, "train") == sample_look(7, "train")
    assert sample_look(7, "train").to_dict() == sample_look(7, "train").to_dict()
    looks = [sample_look(s, "train") for s in range(50)]
    assert len({lk.hues for lk in looks}) == 50  # different seeds, different looks
    assert len({lk.cam_shift_m for lk in looks}) == 50
    assert sample_look(7, "train").hues != sample_look(7, "heldout").hues
    with pytest.raises(UnknownNameError, match="heldout"):
        sample_look(0, "held_out")


def test_train_and_heldout_never_overlap_on_the_stated_axes():
    drawn = {split: [sample_look(s, split) for s in SEEDS] for split in SPLITS}
    for split, looks in drawn.items():
        r = RANGES[split]
        hues = np.array([lk.hues for lk in looks])
        assert hues.shape == (len(SEEDS), 1 + N_OBJECT_COLOURS)
        assert {hue_split(h) for h in hues.ravel()} == {split}  # every colour of every look in its own bands
        bands = set((hues.ravel() // BAND_DEG).astype(int).tolist())
        assert len(bands) == 6  # and all six of the split's bands are used
        shift_mm = np.array([np.linalg.norm(lk.cam_shift_m) * 1000 for lk in looks])
        for name, values in (("cam_shift_mm", shift_mm), ("cam_turn_deg", [lk.cam_turn_deg for lk in looks]),
                             ("light_tilt_deg", [lk.light_tilt_deg for lk in looks]),
                             ("noise_std", [lk.noise_std for lk in looks])):
            lo, hi = r[name]
            assert lo - 1e-9 <= np.min(values) and np.max(values) <= hi + 1e-9, name
    for name in RANGES["train"]:  # the ranges themselves are apart
        assert RANGES["train"][name][1] < RANGES["heldout"][name][0], name
    train_hues = np.array([lk.hues for lk in drawn["train"]]).ravel()
    held_hues = np.array([lk.hues for lk in drawn["heldout"]]).ravel()
    gap = np.abs((train_hues[:2000, None] - held_hues[None, :2000] + 180.0) % 360.0 - 180.0).min()
    assert gap >= 2 * MARGIN_DEG - 1e-6  # the closest train and held-out hues are a margin pair apart


def test_hue_bands():
    assert [hue_split(h) for h in (0.0, 2.9, 3.1, 26.9, 27.1, 33.1, 56.9, 358.0, 363.5)] == [
        None, None, "train", "train", None, "heldout", "heldout", None, "train"]


def test_pixel_noise_is_seeded_per_episode():
    frame = np.full((16, 16, 3), 128, np.uint8)
    a = add_noise(frame, 4.0, noise_rng(3))
    assert np.array_equal(a, add_noise(frame, 4.0, noise_rng(3)))
    assert not np.array_equal(a, add_noise(frame, 4.0, noise_rng(4)))
    assert 3.0 < float(np.std(a.astype(float))) < 5.0 and a.dtype == np.uint8
    rng = noise_rng(3)
    first, second = add_noise(frame, 4.0, rng), add_noise(frame, 4.0, rng)
    assert not np.array_equal(first, second)  # each frame gets fresh noise
    assert add_noise(frame, 0.0, rng) is frame
    assert add_noise(np.full((4, 4, 3), 255, np.uint8), 50.0, rng).max() == 255  # clipped, not wrapped


# ----- in the simulator ------------------------------------------------------------------------------------------
pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def lift_train():
    import envs

    env = envs.make_env("Lift", "Panda", image_size=32, horizon=40, appearance="train")
    yield env
    env.close()


def test_same_seed_same_frames_different_seed_different_frames(lift_train):
    env = lift_train
    env.reset(seed=3)
    first = [env.render_frame(), env.render_frame()]
    look = env.look
    env.reset(seed=8)
    other = env.render_frame()
    env.reset(seed=3)  # after another look: nothing of it carries over
    again = [env.render_frame(), env.render_frame()]
    assert env.look == look == sample_look(3, "train")
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])  # byte-identical
    assert not np.array_equal(first[0], first[1])  # the noise is fresh per frame
    assert np.abs(first[0].astype(int) - other.astype(int)).mean() > 5  # another look, not just other noise


def test_the_look_changes_the_picture_not_the_physics(lift_train):
    import envs
    from policies.scripted import ScriptedPolicy

    nominal = envs.make_env("Lift", "Panda", image_size=32, horizon=40)
    assert nominal.appearance == "nominal" and lift_train.appearance == "train"
    runs = []
    for env in (nominal, lift_train):
        obs, info = env.reset(seed=5)
        frame = env.render_frame()
        policy = ScriptedPolicy(env, seed=5)
        trace = [(obs, info["oracle/progress"])]
        for _ in range(40):
            obs, _, _, _, info = env.step(policy.act())
            trace.append((obs, env.privileged()["progress"]))
        runs.append((frame, trace))
    nominal.close()
    assert nominal.look is None
    (f_nom, t_nom), (f_look, t_look) = runs
    assert np.abs(f_nom.astype(int) - f_look.astype(int)).mean() > 5
    assert max(p for _, p in t_nom) > 0  # the episode made progress: the comparison is not of two idle arms
    for (o1, p1), (o2, p2) in zip(t_nom, t_look):
        assert p1 == p2 and np.array_equal(o1, o2)


@pytest.mark.slow
def test_hard_reset_rebinds_and_keeps_looks_seeded():
    import envs

    env = envs.make_env("Lift", "Panda", image_size=32, horizon=10, hard_reset=True, appearance="heldout")
    try:
        env.reset(seed=2)
        a = env.render_frame()
        env.reset(seed=2)  # a rebuilt model gets the same look
        assert np.array_equal(a, env.render_frame()) and env.look == sample_look(2, "heldout")
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["Stack", "PickPlaceCan", "Door"])
def test_every_task_shows_a_look(task):
    """The table (the bins of PickPlaceCan, whose geoms are unnamed) and every object take the look's colours:
    a large share of the picture changes, and the state does not."""
    import envs

    frames, states = [], []
    for appearance in (None, "train"):
        env = envs.make_env(task, "Panda", image_size=48, appearance=appearance)
        try:
            env.reset(seed=2)
            frames.append(env.render_frame().astype(int))
            states.append(env.rs_env.sim.get_state().flatten())
            if appearance:
                assert env._scene_look.table_geoms and all(env._scene_look.object_geoms)
        finally:
            env.close()
    changed = float((np.abs(frames[0] - frames[1]).max(axis=2) > 20).mean())
    assert changed > 0.3, changed
    assert np.array_equal(states[0], states[1])
