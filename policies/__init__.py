"""Policies: scripted waypoint policies with failure injection, and a random baseline.

``make_policy(name, env, **kw)`` builds one by name: ``"scripted"`` (:class:`ScriptedPolicy`) or ``"random"``.
Scripts take a policy *spec* (a name or a trained agent's run folder) through :mod:`policies.specs`
(``check_policy_spec``, ``resolve_policy``), the one resolver of specs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from primo_loop.errors import check_choice

POLICIES = ("scripted", "random")


class RandomPolicy:
    """Uniformly random actions from the env's action space (seeded)."""

    phase = "random"
    failure_injected_at: int | None = None

    def __init__(self, env: Any, seed: int = 0, **_: Any):
        self.env = env
        self.action_space = env.action_space
        self.action_space.seed(int(seed))

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.action_space.seed(int(seed))

    def replan(self) -> None:
        """Nothing to replan."""

    def act(self, obs: Any = None) -> np.ndarray:
        return np.asarray(self.action_space.sample(), dtype=np.float32)


def make_policy(name: str, env: Any, **kwargs: Any):
    """Build the policy ``name`` ("scripted" or "random") for ``env``; kwargs go to its constructor."""
    name = check_choice("policy", name, POLICIES)
    if name == "scripted":
        from policies.scripted import ScriptedPolicy

        return ScriptedPolicy(env, **kwargs)
    return RandomPolicy(env, **kwargs)


__all__ = ["POLICIES", "RandomPolicy", "make_policy"]
