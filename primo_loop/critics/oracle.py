"""The privileged-state oracle: the labeller, the upper bound, and the test double.

It reads ``query.privileged``, which the env fills from simulator state (see ``envs/tasks.py``):
``{"progress": float in [0, 1], "failed": bool, ...}``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from primo_loop.critics.base import clamp01
from primo_loop.errors import ConfigError
from primo_loop.types import CriticQuery, CriticVerdict


class OracleCritic:
    """Progress straight from privileged simulator state.

    Args:
        noise_std: std of Gaussian noise added to progress (to study noisy critics); 0 = exact.
        seed: seed of the noise generator.
    """

    name = "oracle"
    needs_frames = False  # it reads privileged state only: callers may skip rendering for it
    needs_privileged = True

    def __init__(self, noise_std: float = 0.0, seed: int = 0):
        noise_std = float(noise_std)
        if noise_std < 0:
            raise ConfigError(f"Expected `noise_std` >= 0, actually: {noise_std}")
        self.noise_std = noise_std
        self._rng = np.random.default_rng(int(seed))

    def assess(self, queries: Sequence[CriticQuery]) -> list[CriticVerdict]:
        out = []
        for q in queries:
            t0 = time.perf_counter()
            p = q.privileged
            if not p or "progress" not in p:
                out.append(CriticVerdict(progress=None, raw="no privileged state in query",
                                         latency_s=time.perf_counter() - t0))
                continue
            progress = float(p["progress"])
            if self.noise_std:
                progress += float(self._rng.normal(0.0, self.noise_std))
            failed = bool(p.get("failed", False))
            out.append(CriticVerdict(progress=clamp01(progress), failure_prob=1.0 if failed else 0.0,
                                     raw=f"oracle progress={p['progress']:.3f} failed={failed}",
                                     latency_s=time.perf_counter() - t0))
        return out
