"""policies.specs: the one resolver of policy specs (scripted | random | a trained agent's run folder)."""
from __future__ import annotations

import numpy as np
import pytest

from policies import RandomPolicy
from policies.specs import PolicySpec, check_policy_spec, load_trained, resolve_policy
from primo_loop.errors import ConfigError, UnknownNameError
from primo_loop.testing.fakes import ProgressEnv


def test_builtin_names_and_bad_specs(tmp_path):
    assert check_policy_spec("scripted") == PolicySpec("scripted", "scripted")
    assert check_policy_spec("Random") == PolicySpec("random", "random")
    with pytest.raises(UnknownNameError, match=r"valid: RUN_FOLDER, random, scripted\. Did you mean 'scripted'"):
        check_policy_spec("scriptd")
    with pytest.raises(ConfigError, match="run folder of scripts/train_agent.py"):
        check_policy_spec(str(tmp_path))  # a folder, but no run
    with pytest.raises(ConfigError, match="run folder of scripts/train_agent.py"):
        check_policy_spec("runs/missing")
    with pytest.raises(ConfigError, match="--policy-steps needs --policy RUN_FOLDER"):
        check_policy_spec("random", steps=100)


def test_random_is_seeded_and_injects_no_failure():
    env = ProgressEnv()
    a = resolve_policy("random", env, seed=3)
    first = [a.act() for _ in range(3)]
    b = resolve_policy("random", env, seed=3)
    assert isinstance(b, RandomPolicy) and np.allclose(first, [b.act() for _ in range(3)])
    with pytest.raises(ConfigError, match="'random' injects no failures"):
        resolve_policy("random", env, failure="drop")


def test_scripted_on_lift_with_a_failure():
    pytest.importorskip("robosuite")
    import envs
    from policies.scripted import ScriptedPolicy

    env = envs.make_env("Lift", "Panda", horizon=20)
    try:
        policy = resolve_policy("scripted", env, failure="drop", seed=1, noise=0.05)
        assert isinstance(policy, ScriptedPolicy) and policy.failure == "drop"
    finally:
        env.close()


def test_a_trained_agent_is_loaded_once_and_checked(lift_agent):
    spec = check_policy_spec(str(lift_agent), steps=20)
    assert spec.kind == "trained" and not spec.injects_failures
    agent = resolve_policy(spec, None, task="Lift", robot="Panda", seed=2, noise=0.1)
    assert agent is load_trained(spec) and agent.noise == 0.1 and str(agent.path).endswith("model_20_steps.zip")
    with pytest.raises(ConfigError, match="pass --env Lift --robot Panda"):
        resolve_policy(spec, None, task="Lift", robot="Sawyer")
