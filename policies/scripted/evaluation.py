"""Success and failure rates of the scripted policies on one task and robot (``scripts/check_policies.py``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from policies.scripted.policy import ScriptedPolicy


def evaluate(task: str, robot: str, episodes: int = 20, failure: str | None = None, seed: int = 0,
             horizon: int | None = None, noise: float = 0.0) -> dict[str, Any]:
    """Run the scripted policy for ``episodes`` episodes (env seeds ``seed .. seed+episodes-1``).

    Nominal episodes stop at the first success; episodes with an injected failure run the full horizon.

    Returns:
        dict with ``success_rate`` (success at the end of the episode), ``failure_flagged`` (fraction where
        the oracle flagged ``failed`` at some step), ``steps_to_success`` (mean, over successes) and
        ``steps_per_s``.
    """
    import time

    import envs

    env = envs.make_env(task, robot, horizon=horizon, terminate_on_success=failure is None)
    horizon = env.horizon
    policy = ScriptedPolicy(env, failure=failure, seed=seed, noise=noise)
    successes, flagged, steps_to_success, steps = 0, 0, [], 0
    t0 = time.perf_counter()
    try:
        for ep in range(episodes):
            env.reset(seed=seed + ep)
            policy.reset(seed=seed + ep)
            ever_failed = False
            info: dict[str, Any] = {}
            for t in range(horizon):
                _, _, terminated, truncated, info = env.step(policy.act())
                steps += 1
                ever_failed |= bool(info["oracle/failed"])
                if terminated or truncated:
                    break
            if info.get("is_success"):
                successes += 1
                steps_to_success.append(env.step_count)
            flagged += ever_failed
    finally:
        env.close()
    return {
        "task": task, "robot": robot, "failure": failure, "episodes": episodes, "horizon": horizon,
        "success_rate": successes / episodes, "failure_flagged": flagged / episodes,
        "steps_to_success": float(np.mean(steps_to_success)) if steps_to_success else None,
        "steps_per_s": steps / max(time.perf_counter() - t0, 1e-9),
    }
