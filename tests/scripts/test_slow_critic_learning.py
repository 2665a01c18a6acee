"""benchmarks/slow_critic_learning.py: the report of the slow-critic learning runs applies the registered decision
rules to the runs' own CSVs, and a value a run did not log stays empty (never a stand-in)."""
from __future__ import annotations

import json

import pytest


def make_run(path, success=None, refresh=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if success is not None:
        rows = ["timesteps,success_rate,mean_reward,episodes,wall_s"]
        rows += [f"{4000 * (i + 1)},{v},0.0,20,1.0" for i, v in enumerate(success)]
        (path / "eval.csv").write_text("\n".join(rows) + "\n")
    if refresh is not None:
        keys = ("timesteps,refreshes,labels,fresh_labels,teacher_mae_before,teacher_mae_after,fresh_mae,frozen_mae,"
                "fit_mae")
        rows = [keys] + [f"{10000 * (i + 1)},{i + 1},{100 * (i + 1)},100,0.2,0.1,{fresh},{frozen},0.05"
                         for i, (fresh, frozen) in enumerate(refresh)]
        (path / "refresh.csv").write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def report(load_script):
    return load_script("benchmarks/slow_critic_learning.py")


def run_report(report, tmp_path, sync, slow, refresh):
    runs = {n: make_run(tmp_path / n, s, r) for n, s, r in
            (("sync", sync, None), ("async", slow, None), ("cascade", [0.0, 0.1], refresh))}
    out = tmp_path / "out"
    assert report.main(["--sync", str(runs["sync"]), "--async", str(runs["async"]), "--cascade",
                        str(runs["cascade"]), "--results", str(out)]) == 0
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text(), out


def test_the_registered_rules_decide_from_the_runs_csvs(report, tmp_path):
    result, md, out = run_report(report, tmp_path, [0.0, 0.5, 0.6, 0.7, 0.8], [0.0, 0.3, 0.5, 0.5, 0.6],
                                 [(0.1, 0.1), (0.06, 0.09), (0.05, 0.1)])
    assert result["sync"]["last_mean"] == pytest.approx(0.7)
    assert result["async"]["last_mean"] == pytest.approx(0.5333, 1e-3)
    assert result["async_decision"] == {"survives": True, "close_enough": True, "reaches": True}
    assert result["cascade_decision"] == {"honest": True, "refreshes_compared": 2}
    assert "fresh_mae < frozen_mae" in md and (out / "curves.png").stat().st_size > 1000


def test_a_run_that_falls_behind_or_a_student_that_gets_worse_is_said_so(report, tmp_path):
    result, md, _ = run_report(report, tmp_path, [0.5, 0.8, 0.9, 0.9], [0.0, 0.2, 0.4, 0.6],
                               [(0.1, 0.1), (0.06, 0.09), (0.12, 0.1)])
    assert result["async_decision"]["survives"] is False and result["async_decision"]["close_enough"] is False
    assert result["cascade_decision"]["honest"] is False
    assert "survives the asynchronous critic" in md and ": no.**" in md


def test_a_run_without_evaluations_is_not_decided_and_shows_no_number(report, tmp_path):
    result, md, _ = run_report(report, tmp_path, [0.5, 0.6], None, [(0.1, 0.1)])
    assert result["async"]["last_mean"] is None and result["async_decision"]["survives"] is None
    assert result["cascade_decision"]["honest"] is None
    assert "not decided" in md and "| — (None) |" in md
