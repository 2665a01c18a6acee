"""Online critic refresh with an asynchronous critic (policies.sb3.deferred + policies.sb3.callbacks).

The key property: SAC on fake envs, the compact critic refreshed in place every 50 env steps, its verdicts
arriving late and out of step; after the run the replay buffer's rewards (relabelled by the refreshes) equal,
value for value, those of the same run with a synchronous critic, and so do the refresher's map of buffer rows
to episode steps and the refreshed critic's weights.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from policies.sb3.callbacks import CriticRefreshCallback  # noqa: E402
from policies.sb3.deferred import DeferredRewards, deferred_buffer_class  # noqa: E402
from primo_loop.critics.compact import CompactCritic  # noqa: E402
from primo_loop.testing.fakes import ProgressEnv  # noqa: E402
from primo_loop.testing.slow import PolledRunner  # noqa: E402
from primo_loop.training.online import CriticRefresher, RefreshConfig  # noqa: E402
from primo_loop.wrappers import VecCriticInTheLoop  # noqa: E402

LATE = [3, 0, 7, 1, 12, 2, 5]  # env steps each critic batch takes
TRACKER = dict(critic_every=5, clip_len=4, critic_weight=2.0, gamma=0.9, terminate=False)


class OneByOne(CompactCritic):
    """The compact critic answering each query on its own: a verdict does not depend on which queries share its
    batch (float sums over a batch may differ in the last bit), so synchronous and asynchronous batches agree."""

    def assess(self, queries):
        out = []
        for q in queries:
            out += super().assess([q])
        return out


def run(tiny_ckpt, tmp_path, late: bool, shaping: str, steps: int = 260, every: int = 50):
    critic = OneByOne(tiny_ckpt)
    venv = DummyVecEnv([lambda: ProgressEnv(horizon=12, size=16)] * 2)
    venv.seed(3)
    env = VecCriticInTheLoop(venv, critic, **TRACKER, shaping=shaping, async_critic=late, max_pending=8,
                             async_runner=PolledRunner(LATE) if late else None)
    model = SAC("MlpPolicy", env, learning_starts=10_000, buffer_size=1000, seed=0, gamma=0.9,
                replay_buffer_class=deferred_buffer_class("sac"), policy_kwargs={"net_arch": [8]})
    rb = model.replay_buffer
    refresher = CriticRefresher(critic, env.trackers[0].config,
                                RefreshConfig(every=every, grad_steps=20, lr=3e-3, min_episodes=2, batch_episodes=4,
                                              augment=False), buffer_size=rb.buffer_size, n_envs=rb.n_envs)
    env.episode_sink = refresher.add_episode
    held = []

    class Watch(CriticRefreshCallback):
        def _on_step(self) -> bool:
            held.append(self.model.replay_buffer.held)
            return super()._on_step()

    model.learn(steps, callback=Watch(refresher, tmp_path / f"refresh_{late}.csv", 0, tmp_path))
    return model, env, refresher, max(held)


@pytest.mark.parametrize("shaping", ["delta", "progress"])
def test_refresh_with_a_late_critic_relabels_exactly_as_the_synchronous_run(tiny_ckpt, tmp_path, shaping):
    sync, _, ref, _ = run(tiny_ckpt, tmp_path, False, shaping)
    late, env, refresher, held = run(tiny_ckpt, tmp_path, True, shaping)
    rb, want = late.replay_buffer, sync.replay_buffer
    assert isinstance(rb, DeferredRewards) and held >= 3  # rows did wait for verdicts
    stats = [t.stats for t in env.trackers]
    assert sum(s.queries for s in stats) > 40 and sum(s.errors + s.unreadable for s in stats) == 0
    assert ref.refreshes == refresher.refreshes == 5 and refresher.relabelled > 0
    assert [h["relabelled"] for h in refresher.history] == [h["relabelled"] for h in ref.history]
    rb.settle(env.drain())  # the newest rows, still waiting when learning stopped
    n = want.pos
    assert rb.held == 0 and rb.pos == n == 130
    # the refreshes changed the rewards (else the comparison below says little)
    never, _, _, _ = run(tiny_ckpt, tmp_path, False, shaping, every=10**9)
    assert np.abs(never.replay_buffer.rewards[:n] - want.rewards[:n]).max() > 1e-3
    for name in ("rewards", "observations", "actions", "dones"):
        assert np.array_equal(getattr(rb, name)[:n], getattr(want, name)[:n]), name
    for name in ("slot_episode", "slot_step", "slot_shaping"):
        assert np.array_equal(getattr(refresher, name), getattr(ref, name)), name
    for k, v in refresher.critic.model.state_dict().items():
        assert torch.equal(v, ref.critic.model.state_dict()[k]), k


def test_the_delayed_compact_critic_is_the_compact_critic_to_refresh(tiny_ckpt):
    import time

    from benchmarks.slow_critic import DelayedCompact, delayed_compact
    from primo_loop.critics import make_critic
    from primo_loop.critics.base import capabilities
    from primo_loop.tracker import TrackerConfig
    from primo_loop.types import CriticQuery

    critic = make_critic("benchmarks.slow_critic:delayed_compact", delay_s=0.2, checkpoint=str(tiny_ckpt))
    plain = CompactCritic(tiny_ckpt)
    assert isinstance(critic, DelayedCompact) and capabilities(critic) == capabilities(plain)
    assert capabilities(critic).refreshable and capabilities(critic).needs_frames
    frame = np.full((16, 16, 3), 90, np.uint8)
    q = CriticQuery("lift the cube", frame, np.stack([frame] * 4), frame + 40, 5)
    t0 = time.perf_counter()
    got = critic.assess([q, q])
    assert time.perf_counter() - t0 >= 0.2 and critic.batch_s[-1] >= 0.2 and critic.queries == 2
    assert [v.progress for v in got] == [v.progress for v in plain.assess([q, q])]
    # each verdict's latency is its share of the whole batch, the injected wait included (what the logs show)
    assert [v.latency_s for v in got] == [pytest.approx(critic.batch_s[-1] / 2)] * 2
    # what the refresher uses is the compact critic's own: training it trains the critic in the loop
    assert critic.model is critic.inner.model and critic.config is critic.inner.config
    refresher = CriticRefresher(critic, TrackerConfig(**TRACKER), RefreshConfig(every=10), 10, 1)
    with torch.no_grad():
        for p in refresher.critic.model.parameters():
            p.add_(0.5)
    refresher.critic.weights_changed()
    assert [v.progress for v in critic.assess([q])] != [v.progress for v in plain.assess([q])]
    assert delayed_compact(delay_s=0.0, checkpoint=str(tiny_ckpt)).delay_s == 0.0


@pytest.mark.slow  # ~90 s on the shared 2-core machine
def test_a_training_run_refreshes_a_delayed_asynchronous_compact_critic(tiny_ckpt, tmp_path, load_script):
    """The command-line route: train_agent's options build the delayed compact critic in asynchronous mode with
    refresh on, and train() refreshes it and relabels rows released by the deferred buffer, with n-step returns."""
    from benchmarks.slow_critic import delayed_compact
    from policies.sb3 import AgentConfig, read_eval, train
    from primo_loop.config_cli import from_namespace

    script = load_script("scripts/train_agent.py")
    args = script.build_parser().parse_args([
        "--out", str(tmp_path / "run"), "--env", "primo_loop.testing.fakes:ProgressEnv", "--reward", "critic",
        "--critic", "benchmarks.slow_critic:delayed_compact", "--critic-option", "delay_s=0.05",
        "--critic-option", f"checkpoint={tiny_ckpt}", "--tracker.async-critic", "--tracker.critic-every", "5",
        "--refresh.every", "150", "--refresh.min-episodes", "2", "--refresh.grad-steps", "5"])
    cfg = from_namespace(AgentConfig, args)
    assert cfg.critic_options["delay_s"] == 0.05 and cfg.tracker.async_critic and cfg.refresh.every == 150
    cfg = AgentConfig(**{**cfg.__dict__, "steps": 300, "workers": 1, "horizon": 30, "eval_every": 0,
                         "checkpoint_every": 0, "progress_bar": False,
                         "algo_kwargs": {"learning_starts": 60, "batch_size": 16, "n_steps": 3,
                                         "policy_kwargs": {"net_arch": [8]}}})
    critic = delayed_compact(delay_s=0.05, checkpoint=str(tiny_ckpt))
    summary = train(cfg, critic=critic)
    assert summary["timesteps"] == 300 and summary["critic"]["errors"] == 0
    rows = read_eval(tmp_path / "run" / "refresh.csv")
    assert [r["refreshes"] for r in rows] == [1, 2] and all(r["relabelled"] > 0 for r in rows)
    assert critic.batch_s and min(critic.batch_s) >= 0.05  # every batch paid the delay
