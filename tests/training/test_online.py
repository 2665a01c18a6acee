"""Online critic refresh: the relabelled buffer pays what the refreshed critic would have paid, refreshing fits
the agent's states, and a run with refresh resumes where it was killed."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policies.sb3 import AgentConfig, list_checkpoints, read_eval, train  # noqa: E402
from primo_loop.critics.compact import CompactCritic  # noqa: E402
from primo_loop.errors import ConfigError, UnknownNameError  # noqa: E402
from primo_loop.tracker import TrackerConfig  # noqa: E402
from primo_loop.training.online import CriticRefresher, RefreshConfig  # noqa: E402

FAKE = "primo_loop.testing.fakes:ProgressEnv"
TRACKER = dict(critic_every=5, clip_len=4, critic_weight=2.0, gamma=0.9, terminate=False)


def drive(critic, actions: np.ndarray, refresher_cfg: RefreshConfig | None = None, horizon: int = 12,
          shaping: str = "delta"):
    """Run 2 fake envs under the critic for ``len(actions)`` steps, storing transitions in a replay-buffer-like
    reward array as SB3 does (after the refresher has seen the step). Returns (rewards, env rewards, refresher)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from primo_loop.testing.fakes import ProgressEnv
    from primo_loop.wrappers import VecCriticInTheLoop

    venv = DummyVecEnv([lambda: ProgressEnv(horizon=horizon, size=16)] * 2)
    venv.seed(3)
    wrapper = VecCriticInTheLoop(venv, critic, **TRACKER, shaping=shaping)
    n = len(actions)
    rewards = np.zeros((n, 2), np.float32)
    env_rewards = np.zeros((n, 2), np.float32)
    refresher = None
    if refresher_cfg is not None:
        refresher = CriticRefresher(critic, wrapper.trackers[0].config, refresher_cfg, buffer_size=n, n_envs=2)
        wrapper.episode_sink = refresher.add_episode
    wrapper.reset()
    for t in range(n):
        _, r, _, infos = wrapper.step(actions[t])
        if refresher is not None:
            refresher.on_step(t + 1, t, list(infos), rewards, running=list(wrapper.episode_ids))
        rewards[t] = r
        env_rewards[t] = [info["env/reward"] for info in infos]
    wrapper.close()
    return rewards, env_rewards, refresher


def actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 1.0, size=(n, 2, 1)).astype(np.float32)


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_relabelling_pays_what_the_new_critic_would_have_paid(tiny_ckpt, shaping):
    """The buffer relabelled after a critic change equals the rewards that critic gives online on the same
    episodes, for potential-based shaping and for progress as a level reward; with the critic unchanged,
    relabelling changes nothing (the loop's schedule is rebuilt exactly)."""
    acts = actions(60)
    critic = CompactCritic(tiny_ckpt)
    never = RefreshConfig(every=10**9)
    rewards, _, refresher = drive(critic, acts, never, shaping=shaping)
    before = rewards.copy()
    finished = list(refresher.episodes)
    assert len(finished) == 10  # each of the 2 envs ends an episode every 12 steps
    assert refresher.relabel(finished, rewards) > 0
    np.testing.assert_allclose(rewards, before, atol=1e-5)

    # change the critic's weights, relabel, and compare with a fresh run under the changed critic
    changed = CompactCritic(tiny_ckpt)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in changed.model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    changed.weights_changed()
    critic.model.load_state_dict(changed.model.state_dict())
    critic.weights_changed()
    refresher.relabel(finished, rewards)
    online, _, _ = drive(changed, acts, shaping=shaping)
    done = np.isin(refresher.slot_episode, finished)
    assert done.sum() == 120  # every transition belongs to a finished episode
    assert np.abs(online - before)[done].max() > 1e-2  # the change matters
    np.testing.assert_allclose(rewards[done], online[done], atol=1e-4)


def test_refresh_fits_the_agents_states_and_relabels_the_buffer(tiny_ckpt):
    critic = CompactCritic(tiny_ckpt)
    # no augmentation: the fake env draws its state in one pixel, which a shift would move
    # refreshes at steps 50 and 100, both in mid-episode (episodes end every 12 steps)
    cfg = RefreshConfig(every=50, grad_steps=100, lr=3e-3, min_episodes=4, batch_episodes=4, augment=False)
    rewards, env_rewards, refresher = drive(critic, actions(126, seed=1), cfg)
    assert refresher.refreshes == 2
    # the first refresh: error on never-seen episodes, then on the same episodes after training on them
    first = refresher.history[0]
    assert first["fit_mae"] < 0.5 * first["fresh_mae"], first
    assert refresher.history[1]["fresh_mae"] < first["fresh_mae"]  # the next agent episodes are read better
    # every transition of a finished episode carries the current critic's shaping, also those of the episodes
    # that were running during the last refresh (relabelled when they ended)
    ids = list(refresher.episodes)
    assert not refresher._pending
    phis = refresher.potentials(ids)
    rows, cols = np.nonzero(np.isin(refresher.slot_episode, ids))
    for r, c in zip(rows, cols):
        phi, t = phis[int(refresher.slot_episode[r, c])], int(refresher.slot_step[r, c])
        expect = env_rewards[r, c] + 2.0 * (0.9 * phi[t] - phi[t - 1])
        assert rewards[r, c] == pytest.approx(expect, abs=1e-4)


def test_refresh_refuses_what_it_cannot_train_or_label(tiny_ckpt):
    from primo_loop.testing.fakes import ScriptedCritic

    with pytest.raises(ConfigError, match="compact"):
        CriticRefresher(ScriptedCritic(), TrackerConfig(), RefreshConfig(), 10, 1)
    with pytest.raises(ConfigError, match="shaping"):
        CriticRefresher(CompactCritic(tiny_ckpt), TrackerConfig(shaping="none"), RefreshConfig(), 10, 1)
    with pytest.raises(UnknownNameError, match="grad_steps"):
        RefreshConfig.from_options(grad_step=3)
    with pytest.raises(ConfigError, match="--reward critic"):
        AgentConfig(reward="sparse", refresh=RefreshConfig(every=100))


def tiny(tmp_path, **kw) -> AgentConfig:
    base = dict(env=FAKE, algo="sac", reward="critic", steps=400, workers=1, horizon=30, eval_every=0,
                checkpoint_every=100, out=str(tmp_path / "run"), progress_bar=False,
                refresh=RefreshConfig(every=150, grad_steps=10, min_episodes=2),
                algo_kwargs={"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}})
    base.update(kw)
    return AgentConfig(**base)


def test_training_with_refresh_logs_it_and_resumes_where_it_was_killed(tiny_ckpt, tmp_path):
    from primo_loop.testing.tensorboard import tb_scalars

    train(tiny(tmp_path, steps=300), critic=CompactCritic(tiny_ckpt))
    out = tmp_path / "run"
    rows = read_eval(out / "refresh.csv")
    assert [r["timesteps"] for r in rows] == [150, 300] and [r["refreshes"] for r in rows] == [1, 2]
    assert all(r["relabelled"] > 0 and r["fresh_episodes"] > 0 for r in rows)
    assert {"refresh/fresh_mae", "refresh/fit_mae", "refresh/relabelled"} <= set(tb_scalars(out))
    # the refreshed critic is exported as a checkpoint that loads by path, with its provenance
    exported = CompactCritic(out / "critic")
    assert exported.config.train_info["online_refresh"]["refreshes"] == 2
    assert any(not torch.equal(v, CompactCritic(tiny_ckpt).model.state_dict()[k])
               for k, v in exported.model.state_dict().items())

    # the saved state holds the refreshed critic: loading it gives those weights, not the checkpoint's
    state_200 = out / "checkpoints" / "refresh_state_200_steps.pt"
    saved = torch.load(state_200, weights_only=False)
    fresh = CompactCritic(tiny_ckpt)
    CriticRefresher(fresh, TrackerConfig(**TRACKER), RefreshConfig(), 300, 1).load(state_200)
    for k, v in fresh.model.state_dict().items():
        assert torch.equal(v, saved["critic"][k]), k
    assert any(not torch.equal(v, CompactCritic(tiny_ckpt).model.state_dict()[k]) for k, v in saved["critic"].items())

    # killed after the 200-step checkpoint: resume restores the refresher and goes on counting
    (out / "checkpoints" / "model_300_steps.zip").unlink()
    (out / "done.json").unlink()
    summary = train(tiny(tmp_path, steps=450, resume=True), critic=CompactCritic(tiny_ckpt))
    assert summary["resumed_from"] == 200 and summary["timesteps"] == 450
    rows = read_eval(out / "refresh.csv")
    assert [r["timesteps"] for r in rows] == [150, 300, 450] and [r["refreshes"] for r in rows] == [1, 2, 3]
    final = torch.load(out / "checkpoints" / "refresh_state_400_steps.pt", weights_only=False)
    old, new = set(saved["episodes"]), set(final["episodes"]) - set(saved["episodes"])
    assert old <= set(final["episodes"]) and new and min(new) > max(old)  # new episodes numbered after the old


def test_a_refresh_run_without_its_state_resumes_from_an_older_checkpoint(tiny_ckpt, tmp_path):
    train(tiny(tmp_path, steps=300), critic=CompactCritic(tiny_ckpt))
    out = tmp_path / "run"
    (out / "checkpoints" / "refresh_state_300_steps.pt").unlink()
    (out / "done.json").unlink()
    summary = train(tiny(tmp_path, steps=400, resume=True), critic=CompactCritic(tiny_ckpt))
    assert summary["resumed_from"] == 200


def test_a_truncated_refresh_state_on_resume_is_one_line_naming_it(tiny_ckpt, tmp_path):
    train(tiny(tmp_path, steps=200), critic=CompactCritic(tiny_ckpt))
    out = tmp_path / "run"
    state = out / "checkpoints" / "refresh_state_200_steps.pt"
    state.write_bytes(state.read_bytes()[:100])  # killed while writing it
    (out / "done.json").unlink()
    with pytest.raises(ConfigError, match=r"--resume: .*refresh_state_200_steps.pt does not load"):
        train(tiny(tmp_path, steps=300, resume=True), critic=CompactCritic(tiny_ckpt))


def test_refresh_cannot_be_switched_on_when_resuming_a_run_without_it(tiny_ckpt, tmp_path):
    """A run trained without refresh has no refresh states: resuming it with refresh is refused, not silently
    restarted from scratch."""
    train(tiny(tmp_path, steps=100, refresh=RefreshConfig(every=0)), critic=CompactCritic(tiny_ckpt))
    with pytest.raises(ConfigError, match="refresh.every"):
        train(tiny(tmp_path, steps=200, resume=True), critic=CompactCritic(tiny_ckpt))


@pytest.mark.slow
def test_refresh_on_real_lift_labels_from_sim_state(tmp_path):
    """Robosuite Lift with the embedded critic: the episodes carry privileged progress, refresh runs, the buffer
    is relabelled, and the exported critic loads."""
    cfg = AgentConfig(env="Lift", algo="sac", reward="critic", action="position", steps=120, workers=1, horizon=20,
                      eval_every=0, checkpoint_every=60, out=str(tmp_path / "run"), progress_bar=False,
                      refresh=RefreshConfig(every=60, grad_steps=5, min_episodes=2),
                      algo_kwargs={"learning_starts": 30, "batch_size": 8, "policy_kwargs": {"net_arch": [8]}})
    train(cfg)
    rows = read_eval(tmp_path / "run" / "refresh.csv")
    assert [r["timesteps"] for r in rows] == [60, 120]
    assert all(r["relabelled"] >= r["timesteps"] - 20 and np.isfinite(r["fresh_mae"]) for r in rows)
    assert CompactCritic(tmp_path / "run" / "critic").config.train_info["online_refresh"]["refreshes"] == 2


def test_a_labelling_budget_trains_on_the_drawn_episodes_only(tiny_ckpt, monkeypatch):
    """With ``label_fraction`` 0.5 about half of the episodes are labelled; the critic's training batches come
    from those alone, while every episode is still relabelled in the buffer."""
    import primo_loop.training.compact as compact

    seen: list[set[str]] = []
    original = compact.Batcher.__init__

    def spy(self, cfg, episodes):
        seen.append({e.episode_id for e in episodes})
        original(self, cfg, episodes)

    monkeypatch.setattr(compact.Batcher, "__init__", spy)
    cfg = RefreshConfig(every=50, grad_steps=5, min_episodes=2, batch_episodes=4, label_fraction=0.5)
    rewards, _, refresher = drive(CompactCritic(tiny_ckpt), actions(126, seed=2), cfg)
    labelled = {str(e) for e, ep in refresher.episodes.items() if ep.labelled}
    assert 0 < len(labelled) < len(refresher.episodes) == 20
    assert refresher.history[-1]["labelled_episodes"] == len([s for s in seen[-1]])
    assert seen and all(s <= labelled for s in seen)
    assert refresher.history[-1]["relabelled"] >= 100  # unlabelled episodes are relabelled too
    with pytest.raises(ConfigError, match="label_fraction"):
        RefreshConfig(label_fraction=0.0)


def test_a_refresh_log_gains_columns_without_losing_its_rows(tmp_path):
    from policies.sb3 import append_eval_row

    path = tmp_path / "refresh.csv"
    append_eval_row(path, {"timesteps": 10, "fresh_mae": 0.1}, fields=None)
    append_eval_row(path, {"timesteps": 20, "fresh_mae": 0.2, "labelled_episodes": 7}, fields=None)
    assert read_eval(path) == [{"timesteps": 10.0, "fresh_mae": 0.1},
                               {"timesteps": 20.0, "fresh_mae": 0.2, "labelled_episodes": 7.0}]


@pytest.fixture(scope="module")
def earlier_data(tmp_path_factory):
    """A small labelled dataset of another scene (synthetic rollouts), standing in for the critic's first data."""
    from primo_loop.data.collect import CollectConfig, collect, plan_episodes

    root = tmp_path_factory.mktemp("earlier")
    plan = plan_episodes(["SynthLift"], ["SynthBot"], 6, seed=0, failure_rate=0.0)
    collect(plan, root, CollectConfig(synthetic=True, horizon=40, frame_every=5), workers=0)
    return root


def critic_error_on(critic, episodes) -> float:
    """The critic's mean absolute progress error on every query of ``episodes`` (in-loop cadence 5)."""
    from primo_loop.training.compact import Batcher, TrainConfig, evaluate_batches

    tc = TrainConfig(data=["<test>"], frame_every=5, stride_jitter=False, model=critic.config)
    return evaluate_batches(critic.model, Batcher(tc, episodes), list(range(len(episodes))), tc)["val_mae"] / 100


def test_rehearsal_mixes_the_earlier_data_into_every_batch_and_keeps_it_read(tiny_ckpt, earlier_data, monkeypatch):
    """With rehearsal, each refresh batch holds ``rehearsal_fraction`` of episodes from the earlier data (and the
    fresh share of the agent's), and the refreshed critic reads that data better than one refreshed on the agent's
    episodes alone."""
    import primo_loop.training.compact as compact
    from primo_loop.training.compact import load_episodes

    picks: list[tuple[int, list[int]]] = []  # (agent episodes in the batcher, the episodes of one batch)
    init, build = compact.Batcher.__init__, compact.Batcher.build

    def spy_init(self, cfg, episodes):
        init(self, cfg, episodes)
        self.n_earlier = sum(e.episode_id.startswith("SynthLift") for e in episodes)

    def spy_build(self, ep_indices, rng, train):
        if train:
            picks.append((len(self.episodes) - self.n_earlier, list(ep_indices)))
        return build(self, ep_indices, rng, train)

    monkeypatch.setattr(compact.Batcher, "__init__", spy_init)
    monkeypatch.setattr(compact.Batcher, "build", spy_build)
    base = dict(every=50, grad_steps=60, lr=3e-3, min_episodes=4, batch_episodes=4, augment=False)
    with_old = RefreshConfig(**base, fresh_fraction=0.25, rehearsal_data=str(earlier_data), rehearsal_fraction=0.5)
    assert with_old.rehearsal_data == [str(earlier_data)]
    critic = CompactCritic(tiny_ckpt)
    _, _, refresher = drive(critic, actions(126, seed=1), with_old)
    assert refresher.refreshes == 2 and refresher.history[-1]["rehearsal_episodes"] == 6
    assert len(picks) == 120
    for n_agent, batch in picks:  # 2 of 4 from the earlier data, the other 2 from the agent's
        assert sum(i >= n_agent for i in batch) == 2 and max(batch) < n_agent + 6
    earlier, _ = load_episodes([earlier_data], critic.config.image_size)
    alone = CompactCritic(tiny_ckpt)
    drive(alone, actions(126, seed=1), RefreshConfig(**base, fresh_fraction=0.25))
    assert critic_error_on(critic, earlier) < 0.7 * critic_error_on(alone, earlier)


def test_rehearsal_refuses_missing_data_and_a_batch_it_cannot_fill(tiny_ckpt, tmp_path):
    from primo_loop.errors import DatasetError

    with pytest.raises(DatasetError, match="not found"):
        CriticRefresher(CompactCritic(tiny_ckpt), TrackerConfig(), RefreshConfig(rehearsal_data=str(tmp_path / "x")),
                        10, 1)
    with pytest.raises(ConfigError, match="rehearsal_fraction"):
        RefreshConfig(rehearsal_data="a,b", fresh_fraction=0.5, rehearsal_fraction=0.75)
    assert RefreshConfig(rehearsal_data=" a, b ").rehearsal_data == ["a", "b"]


def test_the_fresh_error_is_also_reported_where_the_task_is_at_least_half_done(tiny_ckpt):
    """A critic that answers 0.2 everywhere: over all fresh queries its bias mixes early states it overrates with
    late ones it underrates; ``fresh_bias_late`` keeps only the queries where the oracle says 0.5 or more, so it is
    at most 0.2 - 0.5, and it counts them."""
    critic = CompactCritic(tiny_ckpt)
    with torch.no_grad():
        critic.model.progress_head.weight.zero_()
        critic.model.progress_head.bias.fill_(float(np.log(0.2 / 0.8)))
    critic.weights_changed()
    cfg = RefreshConfig(every=50, grad_steps=1, lr=1e-9, min_episodes=4, batch_episodes=4, augment=False)
    _, _, refresher = drive(critic, actions(60, seed=1), cfg)
    first = refresher.history[0]
    labels = refresher.labels(list(refresher.episodes)[:first["fresh_episodes"]])
    assert 0 < first["fresh_late_queries"] == int((labels >= 0.5).sum()) < len(labels)
    assert first["fresh_bias_late"] <= 0.2 - 0.5 + 1e-6 < first["fresh_bias"]
