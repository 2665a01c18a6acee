"""scripts/check_policies.py --unlisted: robots a task does not list are run (how the list is decided) and their
rows say so; the task lists are restored afterwards."""
from __future__ import annotations

import envs


def test_unlisted_robots_are_run_and_named_and_the_lists_restored(load_script, monkeypatch, capsys):
    import policies.scripted

    ran = []

    def fake_evaluate(task, robot, episodes=20, failure=None, seed=0):  # what the table asks for, without robosuite
        assert robot in envs.supported_robots(task)  # make_env would refuse a robot the task does not list
        ran.append((task, robot, failure))
        return {"horizon": 300, "success_rate": 0.5, "steps_to_success": 100.0, "steps_per_s": 50.0,
                "failure_flagged": 1.0}

    monkeypatch.setattr(policies.scripted, "evaluate", fake_evaluate)
    main = load_script("scripts/check_policies.py").main
    main(["--tasks", "NutAssemblySquare", "--robots", "Panda", "Kinova3", "--episodes", "2"])
    assert ran == [("NutAssemblySquare", "Panda", None)]  # Kinova3 is not listed for the nut: skipped
    main(["--tasks", "NutAssemblySquare", "--robots", "Panda", "Kinova3", "--episodes", "2", "--unlisted"])
    assert ran[1:] == [("NutAssemblySquare", "Panda", None), ("NutAssemblySquare", "Kinova3", None)]
    out = capsys.readouterr().out
    assert "| NutAssemblySquare | Kinova3 (not listed) | 300 | 50% |" in out and "| Panda | 300 |" in out
    assert "Kinova3" not in envs.supported_robots("NutAssemblySquare")  # restored


def test_failures_runs_the_named_modes_or_every_mode_the_task_has(load_script, monkeypatch, capsys):
    import pytest

    import policies.scripted
    from primo_loop.errors import UnknownNameError

    ran = []

    def fake_evaluate(task, robot, episodes=20, failure=None, seed=0):
        ran.append(failure)
        return {"horizon": 300, "success_rate": 0.0, "steps_to_success": None, "steps_per_s": 50.0,
                "failure_flagged": 1.0}

    monkeypatch.setattr(policies.scripted, "evaluate", fake_evaluate)
    main = load_script("scripts/check_policies.py").main
    main(["--tasks", "NutAssemblySquare", "--robots", "Panda", "--failures", "offset_grasp"])
    assert ran == [None, "offset_grasp"] and "offset_grasp (succ / flagged)" in capsys.readouterr().out
    ran.clear()
    main(["--tasks", "NutAssemblySquare", "--robots", "Panda", "--failures"])
    assert ran == [None, *envs.task_spec("NutAssemblySquare").failure_modes]  # push_away: n/a on the nut
    with pytest.raises(UnknownNameError):
        main(["--tasks", "Lift", "--robots", "Panda", "--failures", "dorp"])
