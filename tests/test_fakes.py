"""The fakes of primo_loop.testing stand for real parts: they must agree with them."""
from __future__ import annotations

import numpy as np

from primo_loop.testing.fakes import EXECUTED_ACTION, Demonstrated, ProgressEnv


def test_the_fake_demonstration_reports_under_the_key_the_warmup_uses():
    from policies.warmup import EXECUTED

    assert EXECUTED_ACTION == EXECUTED
    env = Demonstrated(ProgressEnv(horizon=5), n=1, action=0.5)
    env.reset(seed=0)
    info = env.step(np.zeros(1, dtype=np.float32))[4]
    assert np.allclose(info[EXECUTED], 0.5) and EXECUTED not in env.step(np.zeros(1, dtype=np.float32))[4]
