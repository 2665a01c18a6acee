"""Teacher-labelled refresh (primo_loop.training.teacher_refresh): the teacher's labels, and only those, reach the
student; a student refreshed from a teacher moves toward it; the replay buffer is relabelled with the refreshed
student; and a training run with a cascade critic logs the teacher statistics."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policies.sb3 import AgentConfig, read_eval, train  # noqa: E402
from primo_loop.critics.cascade import CascadeCritic  # noqa: E402
from primo_loop.critics.compact import CompactCritic  # noqa: E402
from primo_loop.errors import ConfigError  # noqa: E402
from primo_loop.testing.fakes import ProgressEnv, ScriptedCritic  # noqa: E402
from primo_loop.testing.slow import PolledRunner  # noqa: E402
from primo_loop.tracker import TrackerConfig  # noqa: E402
from primo_loop.training.refresh_config import RefreshConfig  # noqa: E402
from primo_loop.training.teacher_refresh import TeacherRefresher, student_errors  # noqa: E402
from primo_loop.types import CriticVerdict  # noqa: E402

FAKE = "primo_loop.testing.fakes:ProgressEnv"
TRACKER = dict(critic_every=5, clip_len=4, critic_weight=2.0, gamma=0.9, terminate=False)


def teacher(level: float = 0.9) -> ScriptedCritic:
    """A fake teacher whose answers are its own (never the privileged progress): ``level`` minus a step term."""
    return ScriptedCritic(lambda q: CriticVerdict(progress=level - q.step / 1000, failure_prob=0.0))


def drive(cascade: CascadeCritic, n: int, config: RefreshConfig, seed: int = 1):
    """Two fake envs under the cascade for ``n`` steps with a teacher refresher, storing transitions in a
    replay-buffer-like reward array after the refresher has seen the step (as SB3 does)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from primo_loop.wrappers import VecCriticInTheLoop

    venv = DummyVecEnv([lambda: ProgressEnv(horizon=12, size=16)] * 2)
    venv.seed(3)
    wrapper = VecCriticInTheLoop(venv, cascade, **TRACKER)
    rewards = np.zeros((n, 2), np.float32)
    env_rewards = np.zeros((n, 2), np.float32)
    refresher = TeacherRefresher(cascade, wrapper.trackers[0].config, config, buffer_size=n, n_envs=2)
    wrapper.episode_sink = refresher.add_episode
    acts = np.random.default_rng(seed).uniform(-0.2, 1.0, size=(n, 2, 1)).astype(np.float32)
    wrapper.reset()
    for t in range(n):
        _, r, _, infos = wrapper.step(acts[t])
        refresher.on_step(t + 1, t, list(infos), rewards, running=list(wrapper.episode_ids))
        rewards[t] = r
        env_rewards[t] = [info["env/reward"] for info in infos]
    wrapper.close()
    return rewards, env_rewards, refresher


def test_the_teachers_labels_and_only_those_reach_the_student(tiny_ckpt, monkeypatch):
    fake_teacher = teacher()
    cascade = CascadeCritic(student=CompactCritic(tiny_ckpt), teacher=fake_teacher, every=3, progress_jump=None,
                            failure_margin=None, runner=PolledRunner([1, 4, 2]))
    trained: list[list[float]] = []

    def fit(self, fresh):  # in place of the fine-tune: what the student would be trained on
        trained.append([s.progress for s in self.samples])
        return 0.0

    monkeypatch.setattr(TeacherRefresher, "fit", fit)
    before = {k: v.clone() for k, v in cascade.student.model.state_dict().items()}
    _, _, refresher = drive(cascade, 90, RefreshConfig(every=40, grad_steps=2, min_episodes=3, augment=False))
    assert refresher.refreshes == 2
    taught = [q for call in fake_teacher.calls for q in call]
    answered = [0.9 - q.step / 1000 for q in taught]
    # everything the student is trained on is a teacher answer, in the order the teacher gave them; none is
    # left out but those still on their way at the refresh (at most one batch)
    assert trained[-1] == pytest.approx(answered[:len(trained[-1])])
    assert len(answered) - 3 <= len(trained[-1]) < len(answered)
    assert not np.allclose(answered, [q.privileged["progress"] for q in taught])
    # and nothing else trained it (no privileged refresh behind the teacher's back)
    assert all(torch.equal(v, before[k]) for k, v in cascade.student.model.state_dict().items())
    assert cascade.stats.share == pytest.approx(1 / 3, abs=0.02)


def test_a_student_refreshed_from_a_teacher_moves_toward_it_and_the_buffer_follows(tiny_ckpt):
    cascade = CascadeCritic(student=CompactCritic(tiny_ckpt), teacher=teacher(0.9), every=2,
                            runner=PolledRunner([1, 3]))
    config = RefreshConfig(every=60, grad_steps=60, lr=3e-3, min_episodes=8, batch_episodes=2, augment=False)
    rewards, env_rewards, refresher = drive(cascade, 145, config)
    assert refresher.refreshes == 2
    first, second = refresher.history
    assert first["fresh_labels"] > 0 and first["teacher_mae_after"] < 0.5 * first["teacher_mae_before"], first
    assert second["teacher_mae_before"] < first["teacher_mae_before"]  # new states are read closer to the teacher
    # measured against the privileged progress the env reports (never trained on): present, finite
    assert np.isfinite(first["fresh_mae"]) and first["labels"] < second["labels"] == len(refresher.samples)
    # the frozen student is the one the run started from, scored on the same states: equal before any refresh,
    # apart once the student has been refreshed
    assert first["frozen_mae"] == pytest.approx(first["fresh_mae"])
    assert np.isfinite(second["frozen_mae"]) and abs(second["frozen_mae"] - second["fresh_mae"]) > 1e-4
    # the held-out check: queries the teacher labelled after the last refresh
    cascade.drain()
    later = refresher.take()
    assert later and np.mean(np.abs(student_errors(cascade.student, later))) < first["teacher_mae_before"]
    # every finished episode's transitions carry the refreshed student's shaping
    ids = list(refresher.episodes)
    phis = refresher.potentials(ids)
    rows, cols = np.nonzero(np.isin(refresher.slot_episode, ids))
    assert len(rows) > 0
    for r, c in zip(rows, cols):
        phi, t = phis[int(refresher.slot_episode[r, c])], int(refresher.slot_step[r, c])
        assert rewards[r, c] == pytest.approx(env_rewards[r, c] + 2.0 * (0.9 * phi[t] - phi[t - 1]), abs=1e-4)


def test_teacher_refresh_refuses_privileged_rehearsal_and_other_critics(tiny_ckpt):
    cascade = CascadeCritic(student=CompactCritic(tiny_ckpt), teacher=teacher())
    with pytest.raises(ConfigError, match="rehearsal"):
        TeacherRefresher(cascade, TrackerConfig(), RefreshConfig(rehearsal_data=["data/x"]), 10, 1)
    with pytest.raises(ConfigError, match="cascade"):
        TeacherRefresher(CompactCritic(tiny_ckpt), TrackerConfig(), RefreshConfig(), 10, 1)
    with pytest.raises(ConfigError, match="async-critic"):
        AgentConfig(env=FAKE, reward="critic", critic="cascade", critic_options={"override": True})
    cfg = AgentConfig(env=FAKE, reward="critic", critic="cascade", tracker=TrackerConfig(failure_threshold=0.7))
    assert cfg.critic_options["failure_threshold"] == 0.7  # the student is unsure where the tracker decides


def test_training_with_a_cascade_logs_the_teacher_and_refreshes_the_student(tiny_ckpt, tmp_path):
    from primo_loop.testing.tensorboard import tb_scalars

    cascade = CascadeCritic(student=CompactCritic(tiny_ckpt), teacher="oracle", every=2, failure_margin=None,
                            progress_jump=None)
    cfg = AgentConfig(env=FAKE, algo="sac", reward="critic", steps=300, workers=1, horizon=30, eval_every=0,
                      checkpoint_every=0, out=str(tmp_path / "run"), progress_bar=False,
                      refresh=RefreshConfig(every=150, grad_steps=5, min_episodes=4),
                      algo_kwargs={"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}})
    train(cfg, critic=cascade)
    out = tmp_path / "run"
    rows = read_eval(out / "refresh.csv")
    assert [r["refreshes"] for r in rows] == [1, 2] and all(r["fresh_labels"] > 0 for r in rows)
    tags = tb_scalars(out)
    assert {"critic/teacher_student_gap", "critic/teacher_share", "critic/teacher_delay_s",
            "refresh/teacher_mae_before", "refresh/teacher_mae_after"} <= set(tags)
    assert tags["critic/teacher_share"][-1] == pytest.approx(0.5, abs=0.05)


def test_labels_arrived_since_the_last_refresh_survive_a_resume(tiny_ckpt, tmp_path):
    def cascade():
        return CascadeCritic(student=CompactCritic(tiny_ckpt), teacher=teacher(), every=3, progress_jump=None,
                             failure_margin=None, runner=PolledRunner([1, 2]))

    config = RefreshConfig(every=1000, grad_steps=2, min_episodes=1, augment=False)  # no refresh while driving
    first = cascade()
    _, _, refresher = drive(first, 60, config)
    first.drain()
    untaken = [label.teacher.progress for label in first.peek_labels()]
    assert refresher.refreshes == 0 and len(untaken) >= 5
    refresher.save(tmp_path / "state.pt")
    assert first.pending_labels == len(untaken)  # saving takes nothing away

    second = cascade()
    resumed = TeacherRefresher(second, TrackerConfig(**TRACKER), config, buffer_size=60, n_envs=2)
    resumed.load(tmp_path / "state.pt")
    assert [label.teacher.progress for label in second.peek_labels()] == untaken
    stats = resumed.refresh(np.zeros((60, 2), np.float32))
    assert stats["fresh_labels"] == len(untaken) and stats["labels"] == len(untaken)
