"""SB3 training on the 1-D fake env: env stacks, critic faults, checkpoints and resume, TensorBoard scalars."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from policies.sb3 import (
    AgentConfig,
    find_critic_wrapper,
    list_checkpoints,
    make_vec_env,
    read_eval,
    train,
)
from primo_loop.errors import ConfigError, UnknownNameError
from primo_loop.testing.fakes import ScriptedCritic
from primo_loop.testing.tensorboard import tb_scalars
from primo_loop.types import CriticVerdict

FAKE = "primo_loop.testing.fakes:ProgressEnv"


def tiny(tmp_path, **kw) -> AgentConfig:
    base = dict(env=FAKE, algo="sac", reward="oracle", steps=300, workers=1, horizon=30, eval_every=150,
                eval_episodes=2, checkpoint_every=100, out=str(tmp_path / "run"), progress_bar=False,
                algo_kwargs={"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}})
    base.update(kw)
    return AgentConfig(**base)


def test_config_validates_names_and_options(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'sac'"):
        AgentConfig(algo="sca")
    with pytest.raises(UnknownNameError, match="reward"):
        AgentConfig(reward="shaped")
    with pytest.raises(UnknownNameError, match="SAC option"):
        AgentConfig(algo_kwargs={"n_epochs": 5})
    with pytest.raises(ConfigError):
        AgentConfig(steps=0)
    cfg = AgentConfig(algo="sac", steps=5000, workers=2)
    hp = cfg.hyperparameters()
    assert hp["buffer_size"] == 5000 and hp["gradient_steps"] == 2
    assert AgentConfig(reward="oracle").critic_name == "oracle"
    assert AgentConfig(reward="critic").critic_name == "compact"
    assert AgentConfig(reward="dense").critic_name is None


def test_command_line_options_reach_the_tracker(tmp_path, load_script):
    from primo_loop.config_cli import from_namespace

    parser = load_script("scripts/train_agent.py").build_parser()
    args = parser.parse_args(["--env", FAKE, "--workers", "1", "--reward", "critic", "--critic", "oracle",
                              "--tracker.shaping", "progress", "--tracker.critic-weight", "2",
                              "--tracker.no-terminate", "--tracker.failure-patience", "3",
                              "--sb3.learning-starts", "50", "--sb3.net-arch", "16", "16",
                              "--out", str(tmp_path / "run")])
    cfg = from_namespace(AgentConfig, args)
    assert cfg.algo_kwargs == {"learning_starts": 50, "policy_kwargs": {"net_arch": [16, 16]}}
    venv = make_vec_env(cfg)
    try:
        tracker = find_critic_wrapper(venv).trackers[0].config
        assert (tracker.terminate, tracker.failure_patience, tracker.shaping, tracker.critic_weight) == \
            (False, 3, "progress", 2.0)
    finally:
        venv.close()


@pytest.mark.parametrize("reward, has_critic", [("sparse", False), ("critic", True)])
def test_vec_env_stack(tmp_path, reward, has_critic):
    venv = make_vec_env(tiny(tmp_path, reward=reward, workers=2, critic="oracle" if has_critic else None))
    try:
        assert type(venv).__name__ == "VecMonitor"
        wrapper = find_critic_wrapper(venv)
        assert (wrapper is not None) == has_critic
        venv.reset()
        for _ in range(12):
            obs, rewards, dones, infos = venv.step(np.ones((2, 1), dtype=np.float32))
        assert obs.shape == (2, 2)
        if has_critic:
            assert sum(t.stats.queries for t in wrapper.trackers) == 2 * 2  # baselines + step 10
            assert "critic/progress" in infos[0]
    finally:
        venv.close()


def test_training_survives_critic_faults_and_logs_them(tmp_path):
    def answer(q):  # every third query unreadable
        p = q.privileged["progress"]
        return CriticVerdict(progress=None if (q.step // 10) % 3 == 2 else p, failure_prob=0.0)

    critic = ScriptedCritic(answer, raise_on=[10])
    cfg = tiny(tmp_path, reward="critic")
    summary = train(cfg, critic=critic)
    c = summary["critic"]
    assert summary["timesteps"] == 300
    assert c["queries"] > 20 and c["unreadable"] > 0 and c["errors"] > 0 and c["raised_batches"] > 0
    out = tmp_path / "run"
    rows = read_eval(out / "eval.csv")
    assert [r["timesteps"] for r in rows] == [150, 300] and all(0 <= r["success_rate"] <= 1 for r in rows)
    assert (out / "final_model.zip").is_file() and (out / "final_replay_buffer.pkl").is_file()
    # every policy stays; only the newest 2 keep their replay buffers
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [300, 200, 100]
    assert sorted(p.name for p in (out / "checkpoints").glob("*replay_buffer*")) == [
        "model_replay_buffer_200_steps.pkl", "model_replay_buffer_300_steps.pkl"]

    tags = set(tb_scalars(out))
    assert {"critic/queries", "critic/unreadable", "critic/errors", "critic/latency_ms"} <= tags, tags
    # every query a step reports here failed (step 10) or was unreadable (step 20): the progress held through
    # them is no answer, so no progress mean is logged
    assert "critic/progress_mean" not in tags


def test_training_logs_how_the_critic_stands_against_the_oracle(tmp_path):
    """A critic that overrates progress by up to 0.2 shows as a positive ``critic/oracle_bias`` equal to its
    ``critic/oracle_mae`` and no larger than 0.2: the scalars read the env's privileged progress."""
    def answer(q):
        return CriticVerdict(progress=min(1.0, q.privileged["progress"] + 0.2), failure_prob=0.0)

    train(tiny(tmp_path, reward="critic"), critic=ScriptedCritic(answer))
    scalars = tb_scalars(tmp_path / "run")
    bias, mae = scalars["critic/oracle_bias"], scalars["critic/oracle_mae"]
    assert bias and len(bias) == len(mae)
    assert all(0.0 < b <= 0.2 + 1e-6 and b == pytest.approx(m) for b, m in zip(bias, mae))


def test_resume_continues_from_the_newest_readable_checkpoint(tmp_path):
    cfg = tiny(tmp_path, steps=200, eval_every=100)
    train(cfg)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="not empty: pass --resume"):
        train(tiny(tmp_path, steps=400))
    # a kill while writing the newest checkpoint: it does not load, the previous one is used
    newest = list_checkpoints(out / "checkpoints")[0][1]
    newest.write_bytes(b"truncated")
    (out / "done.json").unlink()
    summary = train(tiny(tmp_path, steps=400, eval_every=100, resume=True))
    assert summary["resumed_from"] == 100 and summary["timesteps"] == 400
    assert [r["timesteps"] for r in read_eval(out / "eval.csv")] == [100, 200, 300, 400]
    assert json.loads((out / "done.json").read_text())["timesteps"] == 400
    # finished: resuming again does nothing; different options are refused
    assert train(tiny(tmp_path, steps=400, resume=True))["timesteps"] == 400
    with pytest.raises(ConfigError, match="reward"):
        train(tiny(tmp_path, steps=500, reward="sparse", resume=True))
    # a checkpoint keeps the hyperparameters it was saved with: a changed --set is refused, not silently ignored
    with pytest.raises(ConfigError, match="different `algo_kwargs`.*'ent_coef': 0.05"):
        train(tiny(tmp_path, steps=500, resume=True, algo_kwargs={**cfg.algo_kwargs, "ent_coef": 0.05}))


def test_evaluations_differ_between_seeds_and_survive_a_resume(tmp_path, monkeypatch):
    """Each evaluation starts from states drawn from the run's seed and the step count: two seeds are evaluated on
    different states, the same seed on the same ones, and a resumed run on the ones it would have had unstopped."""
    import policies.sb3.driver as sb3
    from stable_baselines3.common.vec_env import VecEnvWrapper, VecMonitor

    starts: list[float] = []

    class FirstStates(VecEnvWrapper):  # records the first initial state of every evaluation
        def reset(self):
            obs = self.venv.reset()
            starts.append(round(float(obs[0][0]), 9))
            return obs

        def step_wait(self):
            return self.venv.step_wait()

    real = sb3.make_eval_env
    monkeypatch.setattr(sb3, "make_eval_env", lambda cfg: VecMonitor(FirstStates(real(cfg).venv)))

    def evaluate(name, seed, steps, resume=False):
        starts.clear()
        train(tiny(tmp_path, out=str(tmp_path / name), seed=seed, steps=steps, eval_every=100, resume=resume))
        return list(starts)

    seed0 = evaluate("a", 0, 300)
    assert len(seed0) == 3 and len(set(seed0)) == 3  # a fresh draw at every evaluation
    assert evaluate("b", 0, 300) == seed0
    assert not set(evaluate("c", 1, 300)) & set(seed0)
    assert evaluate("d", 0, 200) == seed0[:2]
    assert evaluate("d", 0, 300, resume=True) == seed0[2:]


def test_a_resume_to_a_longer_budget_killed_before_its_end_is_not_marked_finished(tmp_path):
    """``done.json`` says where a run ended. A run finished at 200 steps, resumed to 400 and killed on the way
    must not keep saying it ended at 200 (a report would cut its curve there); resuming again finishes it."""
    kill_after = {"queries": None}

    def answer(q):
        if kill_after["queries"] is not None:
            kill_after["queries"] -= 1
            if kill_after["queries"] < 0:
                raise KeyboardInterrupt  # not an Exception: the wrapper does not swallow it, like Ctrl-C
        return CriticVerdict(progress=q.privileged["progress"], failure_prob=0.0)

    def cfg(steps):
        return tiny(tmp_path, steps=steps, eval_every=100, reward="critic", resume=True)

    out = tmp_path / "run"
    assert train(cfg(200), critic=ScriptedCritic(answer))["timesteps"] == 200
    kill_after["queries"] = 15
    with pytest.raises(KeyboardInterrupt):
        train(cfg(400), critic=ScriptedCritic(answer))
    assert not (out / "done.json").exists()
    assert 200 < list_checkpoints(out / "checkpoints")[0][0] < 400  # it did get past the old budget
    kill_after["queries"] = None
    summary = train(cfg(400), critic=ScriptedCritic(answer))
    assert summary["timesteps"] == 400 and json.loads((out / "done.json").read_text())["timesteps"] == 400


def test_resume_redoes_an_evaluation_lost_to_the_kill(tmp_path):
    """A kill after the 200-step checkpoint but before the 200-step evaluation: the resumed run evaluates at
    200 first, so the curve has no hole; evaluations it has are not repeated, and their clock goes on."""
    from policies.sb3 import append_eval_row, truncate_eval

    out = tmp_path / "run"
    train(tiny(tmp_path, steps=200, eval_every=100))
    truncate_eval(out / "eval.csv", 100)  # the evaluation at 200 never got written
    first = read_eval(out / "eval.csv")[0]
    (out / "eval.csv").unlink()
    append_eval_row(out / "eval.csv", {**first, "wall_s": 5000.0})  # as if the first stretch took long
    (out / "done.json").unlink()
    summary = train(tiny(tmp_path, steps=300, eval_every=100, resume=True))
    assert summary["resumed_from"] == 200
    rows = read_eval(out / "eval.csv")
    assert [r["timesteps"] for r in rows] == [100, 200, 300]
    assert all(0.0 <= r["success_rate"] <= 1.0 for r in rows)
    # wall_s counts on from the kept row's 5000 s, not from zero again
    assert 5000.0 <= rows[1]["wall_s"] <= rows[2]["wall_s"] < 5000.0 + summary["wall_s"] + 1


def test_a_resumed_n_step_sac_keeps_its_n_step_returns(tmp_path, recwarn):
    """SB3 warns on load that ``n_steps`` "is ignored"; a resumed run still learns from n-step returns, so the
    warning is not passed on (and the buffer is checked, not the warning's absence alone)."""
    kwargs = {**tiny(tmp_path).algo_kwargs, "n_steps": 3}
    train(tiny(tmp_path, steps=100, eval_every=0, algo_kwargs=kwargs))
    recwarn.clear()
    summary = train(tiny(tmp_path, steps=200, eval_every=0, algo_kwargs=kwargs, resume=True))
    assert summary["resumed_from"] == 100 and summary["timesteps"] == 200
    assert not [w for w in recwarn if "is ignored" in str(w.message)]
    from stable_baselines3 import SAC

    model = SAC.load(tmp_path / "run" / "final_model.zip")
    model.load_replay_buffer(tmp_path / "run" / "final_replay_buffer.pkl")
    assert model.replay_buffer.n_steps == 3 and model.replay_buffer.sample(4).discounts is not None
