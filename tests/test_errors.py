"""primo_loop.errors: every error crosses a process boundary intact (a collection worker's error reaches the run
as that error, with its message; before, an UnknownNameError could not be rebuilt there and the pool took its
worker for dead)."""
from __future__ import annotations

import functools
import pickle

import pytest

from primo_loop import errors
from primo_loop.executors import run_pool

SAMPLES = {errors.UnknownNameError: ("camera", "eye", ["agentview", "robot0_eye_in_left_hand"]),
           errors.MissingDependencyError: ("torch", "The compact critic")}


@pytest.mark.parametrize("cls", [c for c in vars(errors).values()
                                 if isinstance(c, type) and issubclass(c, errors.PrimoError)])
def test_every_error_survives_pickling(cls):
    exc = cls(*SAMPLES.get(cls, ("something went wrong",)))
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and str(back) == str(exc)


def test_a_workers_unknown_name_reaches_the_run_as_an_error_not_a_dead_worker():
    got, results = [], []
    task = functools.partial(errors.check_choice, "camera", choices=["agentview"])
    restarts = run_pool(task, ["agentview", "robot0_eye_in_hand"], workers=1, on_result=lambda i, r: results.append(r),
                        on_error=lambda i, e: got.append((i, e)), refresh=lambda: [], max_restarts=0)
    assert restarts == 0 and results == ["agentview"]
    ((item, exc),) = got
    assert item == "robot0_eye_in_hand" and isinstance(exc, errors.UnknownNameError)
    assert "Unknown camera 'robot0_eye_in_hand'; valid: agentview" in str(exc)
