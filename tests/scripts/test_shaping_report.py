"""benchmarks/shaping.py --report-only: curves from eval.csv files, the table and the computed verdict (budgets,
means over evaluations, standard errors over seeds, Q-loss peaks). ``--prior`` and ``--rewrite``: test_shaping_prior."""
from __future__ import annotations

import json

import pytest

from shaping_runs import write_runs


def test_report_computes_the_comparison(tmp_path, shaping):
    write_runs(tmp_path / "runs")
    out = tmp_path / "results"
    args = ["--rewards", "sparse", "dense", "critic", "oracle", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
            "--results", str(out), "--action", "position", "--demo-episodes", "20", "--set", "n_steps=5",
            "--report-only"]
    assert shaping.main(args) == 0
    result = json.loads((out / "shaping.json").read_text())
    v = result["verdict"]
    assert "oracle" not in result["runs"]  # no runs on disk: left out, not reported as zeros
    assert result["runs"]["critic"]["label"] == "critic (compact)"  # the default delta shaping is not named
    assert v["dense"]["steps_to_target"] == 2000 and v["critic"]["steps_to_target"] == 2000
    assert v["sparse"]["steps_to_target"] is None
    assert v["critic"]["steps_to_stay_at_target"] == 2000 and v["sparse"]["steps_to_stay_at_target"] is None
    assert v["critic_within_dense_budget"] is True
    assert v["critic"]["mean_success_over_evals"] == pytest.approx((0.7 + 0.9 + 0.95) / 3, abs=1e-3)
    assert v["sparse"]["late_mean_success"] == pytest.approx((0.0 + 0.05 + 0.15) / 3, abs=1e-3)
    assert v["critic_minus_sparse"] == pytest.approx((0.7 + 0.9 + 0.95 - 0.0 - 0.05 - 0.15) / 3, abs=2e-3)
    # per-seed means: critic 0.833, 0.867; sparse 0.033, 0.100 -> Welch SE sqrt((0.000556 + 0.002222) / 2)
    assert v["critic_minus_sparse_se"] == pytest.approx(0.0373, abs=1e-3) and v["critic_clearly_beats_sparse"]
    # the same comparison for robosuite's dense reward (per seed 0.533, 0.667 against 0.033, 0.100), and the
    # critic against dense: is the setting one in which hand-crafted shaping beats sparse at all?
    assert v["dense_minus_sparse"] == pytest.approx(0.6 - 0.0667, abs=2e-3)
    assert v["dense_minus_sparse_se"] == pytest.approx(0.0745, abs=1e-3) and v["dense_clearly_beats_sparse"]
    assert v["critic_minus_dense"] == pytest.approx(0.85 - 0.6, abs=2e-3)
    assert v["critic_minus_dense_se"] == pytest.approx(0.0687, abs=1e-3) and v["critic_clearly_beats_dense"]
    assert "oracle_minus_sparse" not in v  # no oracle runs, no comparison
    assert result["setting"]["demo_episodes"] == 20 and result["setting"]["action"] == "position"
    assert result["setting"]["algo_kwargs"] == {"n_steps": 5}  # --set options are part of the setting
    md = (out / "shaping.md").read_text()
    assert "clearly above sparse, i.e. by more than 2 standard errors: yes" in md
    assert "within dense's budget: yes" in md and "`sparse`: seed-averaged success never reaches 80%" in md
    assert "dense minus sparse (robosuite's hand-crafted shaping), mean success over evaluations: +0.53" in md
    assert "Critic minus dense, mean success over evaluations: +0.25 (standard error over seeds 0.07; " \
           "clearly above dense" in md
    assert "--report-only" not in result["command"] and "--demo-episodes 20" in result["command"]
    assert (out / "shaping.png").stat().st_size > 10_000


def test_dense_never_reaching_makes_the_budget_unmeasurable(tmp_path, shaping):
    write_runs(tmp_path / "runs", {"dense": {s: [0.0, 0.1] for s in (0, 1)}, "critic": {s: [0.5, 0.9] for s in (0, 1)}})
    shaping.main(["--rewards", "dense", "critic", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]
    assert v["critic"]["steps_to_target"] == 2000 and v["critic_within_dense_budget"] is None
    assert "critic_within_dense_budget_pending" not in v  # every run finished: unmeasurable, not pending
    assert "within dense's budget: not measurable" in (tmp_path / "out" / "shaping.md").read_text()


def test_a_lucky_evaluation_does_not_stay(tmp_path, shaping):
    write_runs(tmp_path / "runs", {"dense": {0: [0.9, 0.5, 0.85, 0.9], 1: [0.9, 0.6, 0.8, 1.0]}})
    shaping.main(["--rewards", "dense", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]["dense"]
    assert (v["steps_to_target"], v["steps_to_stay_at_target"]) == (1000, 3000)


def test_a_gap_within_the_seed_spread_is_not_clear(tmp_path, shaping):
    curves = {"critic": {0: [0.9, 0.9], 1: [0.3, 0.5], 2: [0.8, 1.0]},   # per seed 0.9, 0.4, 0.9
              "sparse": {0: [0.5, 0.7], 1: [0.6, 0.8], 2: [0.4, 0.6]}}   # per seed 0.6, 0.7, 0.5
    write_runs(tmp_path / "runs", curves)
    shaping.main(["--rewards", "critic", "sparse", "--seeds", "0", "1", "2", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--shaping", "progress", "--report-only"])
    result = json.loads((tmp_path / "out" / "shaping.json").read_text())
    assert result["runs"]["critic"]["label"] == "critic (compact, progress shaping)"
    assert result["runs"]["sparse"]["label"] == "sparse" and result["setting"]["shaping"] == "progress"
    v = result["verdict"]
    # critic's seed-averaged curve 0.667, 0.8: reaches 80% at the last evaluation and ends there
    assert v["critic"]["steps_to_target"] == 2000 and v["critic"]["steps_to_stay_at_target"] == 2000
    # mean gap +0.133, SE sqrt(0.0833 / 3 + 0.01 / 3) = 0.176: higher on average, not clearly
    assert v["critic_minus_sparse"] == pytest.approx(0.133, abs=2e-3)
    assert v["critic_minus_sparse_se"] == pytest.approx(0.176, abs=2e-3) and v["critic_clearly_beats_sparse"] is False
    assert "dense_minus_sparse" not in v and "critic_minus_dense" not in v  # no dense runs


def test_runs_resumed_past_the_budget_are_reported_at_it(tmp_path, shaping):
    # both runs went on to 3000 steps; at a 2000-step budget critic is ahead, at 3000 sparse has caught up
    write_runs(tmp_path / "runs", {"critic": {0: [0.6, 0.9, 0.5], 1: [0.5, 0.8, 0.6]},
                                   "sparse": {0: [0.0, 0.1, 1.0], 1: [0.1, 0.2, 1.0]}})
    for run in (tmp_path / "runs").iterdir():
        (run / "done.json").write_text(json.dumps({"timesteps": 3000}))
    base = ["--rewards", "critic", "sparse", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"), "--report-only"]
    assert shaping.main([*base, "--steps", "2000", "--results", str(tmp_path / "at2k")]) == 0
    r2 = json.loads((tmp_path / "at2k" / "shaping.json").read_text())
    assert r2["runs"]["critic"]["steps"] == [1000.0, 2000.0]
    assert r2["runs"]["critic"]["final_success"] == {"0": 0.9, "1": 0.8}
    assert r2["runs"]["sparse"]["finished_steps"] == {"0": 2000, "1": 2000}
    assert r2["verdict"]["critic_minus_sparse"] == pytest.approx((1.5 + 1.3 - 0.1 - 0.3) / 4, abs=1e-3)
    assert "| critic (compact) | 2 | 2000 | 0.90, 0.80 |" in (tmp_path / "at2k" / "shaping.md").read_text()
    assert shaping.main([*base, "--steps", "3000", "--results", str(tmp_path / "at3k")]) == 0
    r3 = json.loads((tmp_path / "at3k" / "shaping.json").read_text())
    assert r3["runs"]["sparse"]["final_success"] == {"0": 1.0, "1": 1.0}
    assert r3["verdict"]["critic_minus_sparse"] == pytest.approx((2.0 + 1.9 - 1.1 - 1.3) / 6, abs=1e-3)


def test_a_killed_resume_is_not_reported_finished_at_its_old_budget(tmp_path, shaping):
    """A run finished at 2000 steps, then resumed to a longer budget and killed at 3000: its old done.json
    must not make the report call it finished."""
    write_runs(tmp_path / "runs", {"sparse": {0: [0.1, 0.2, 0.3]}})
    (tmp_path / "runs" / "sparse_s0" / "done.json").write_text(json.dumps({"timesteps": 2000}))
    argv = ["--rewards", "sparse", "--seeds", "0", "--runs", str(tmp_path / "runs"), "--report-only"]
    assert shaping.main([*argv, "--steps", "5000", "--results", str(tmp_path / "a")]) == 0
    run = json.loads((tmp_path / "a" / "shaping.json").read_text())["runs"]["sparse"]
    assert run["finished_steps"] == {"0": None} and run["success"] == {"0": [0.1, 0.2, 0.3]}
    # a done.json at (or past) the last evaluation still counts
    (tmp_path / "runs" / "sparse_s0" / "done.json").write_text(json.dumps({"timesteps": 3000}))
    assert shaping.main([*argv, "--steps", "5000", "--results", str(tmp_path / "b")]) == 0
    run = json.loads((tmp_path / "b" / "shaping.json").read_text())["runs"]["sparse"]
    assert run["finished_steps"] == {"0": 3000}


def test_each_run_reports_its_largest_sac_q_loss(tmp_path, shaping):
    """A diverging value function is what separated the level-reward runs that never learned from those that did
    (experiments 12-13): the report gives each run's largest mean Q-loss over an interval between evaluations,
    within the budget, and a borrowed run keeps the figure its report gave."""
    from torch.utils.tensorboard import SummaryWriter

    write_runs(tmp_path / "runs", {"dense": {0: [0.0, 0.7, 0.9]}, "critic": {0: [0.0, 0.0, 0.0]},
                                   "sparse": {0: [0.0, 0.0, 0.0]}})
    losses = {"dense": {200: 1.0, 900: 3.0, 1500: 2.0, 2500: 4.0},  # interval means 2.0, 2.0, 4.0
              "critic": {500: 1.0, 1500: 50.0, 1800: 150.0, 2600: 10.0, 3500: 9e6}}  # 1.0, 100.0, 10.0; 3500 > budget
    for reward, points in losses.items():
        with SummaryWriter(str(tmp_path / "runs" / f"{reward}_s0" / "tb" / f"sac_{reward}_1")) as w:
            for step, v in points.items():
                w.add_scalar("train/critic_loss", v, step)
    out = tmp_path / "results"
    assert shaping.main(["--rewards", "sparse", "dense", "critic", "--seeds", "0", "--runs", str(tmp_path / "runs"),
                         "--results", str(out), "--steps", "3000", "--report-only"]) == 0
    result = json.loads((out / "shaping.json").read_text())
    assert result["runs"]["dense"]["q_loss_peak"] == {"0": [3000, 4.0]}
    assert result["runs"]["critic"]["q_loss_peak"] == {"0": [2000, 100.0]}  # the 9e6 after the budget is not read
    assert "q_loss_peak" not in result["runs"]["sparse"]  # no scalar logged: no figure rather than a zero
    md = (out / "shaping.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert rows["dense"].endswith("| 4 (3k) |") and rows["critic (compact)"].endswith("| 100 (2k) |")
    assert rows["sparse"].endswith("| - |")
    # a later report borrowing these runs through --prior keeps their figures
    again = tmp_path / "again"
    assert shaping.main(["--rewards", "sparse", "dense", "critic", "--seeds", "0", "--runs", str(tmp_path / "none"),
                         "--results", str(again), "--steps", "3000", "--prior", str(out / "shaping.json"),
                         "--report-only"]) == 0
    assert json.loads((again / "shaping.json").read_text())["runs"]["critic"]["q_loss_peak"] == {"0": [2000, 100.0]}


def test_a_budget_is_read_only_where_every_seed_has_evaluated(tmp_path, shaping):
    """An unfinished experiment: one dense seed got further than the others. Its lone 0.9 at 3000 steps is not
    the seed average, so dense has no budget yet (and the critic is not "within" it)."""
    write_runs(tmp_path / "runs", {"dense": {0: [0.0, 0.3, 0.9], 1: [0.1, 0.2]},
                                   "critic": {0: [0.5, 0.9], 1: [0.6, 0.8]}})
    shaping.main(["--rewards", "dense", "critic", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]
    assert v["dense"]["steps_to_target"] is None and v["dense"]["steps_to_stay_at_target"] is None
    assert v["critic"]["steps_to_target"] == 2000 and v["critic_within_dense_budget"] is None
    assert v["critic_within_dense_budget_pending"] == "dense"
    assert "within dense's budget: not known yet: dense has no budget" in (tmp_path / "out" / "shaping.md").read_text()


def test_means_over_evaluations_compare_the_same_range_while_runs_are_unfinished(tmp_path, shaping):
    """Critic seed 0 got two evaluations further than everything else. Averaged over its whole curve it would
    look better than sparse by its later, better evaluations alone; the means and the seed difference are taken
    over the evaluations every run has (to 2000 steps), and the report says so."""
    write_runs(tmp_path / "runs", {"critic": {0: [0.1, 0.2, 0.9, 1.0], 1: [0.1, 0.2]},
                                   "sparse": {0: [0.1, 0.2, 0.2], 1: [0.1, 0.2, 0.3]}})
    shaping.main(["--rewards", "sparse", "critic", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]
    assert v["compared_to_steps"] == 2000 and v["evaluated_to_steps"] == 4000
    assert v["critic"]["mean_success_over_evals"] == pytest.approx(0.15)
    assert v["sparse"]["mean_success_over_evals"] == pytest.approx(0.15)
    assert v["critic_minus_sparse"] == pytest.approx(0.0)
    md = (tmp_path / "out" / "shaping.md").read_text()
    assert "every seed of every run has, to 2000 env steps" in md
    # a difference over the start of the budget only: no answer on "clearly" either way
    assert v["critic_minus_sparse_se"] is not None and v["critic_clearly_beats_sparse"] is None
    assert "clearly above sparse, i.e. by more than 2 standard errors: not known yet" in md


def test_runs_without_a_shared_evaluation_are_not_compared(tmp_path, shaping):
    """Sparse's only evaluations (at 3000 steps) come after the critic's last: nothing to average over alike."""
    write_runs(tmp_path / "runs", {"critic": {0: [0.5, 0.9], 1: [0.4, 0.8]}})
    for seed in (0, 1):
        (tmp_path / "runs" / f"sparse_s{seed}").mkdir()
        (tmp_path / "runs" / f"sparse_s{seed}" / "eval.csv").write_text(
            "timesteps,success_rate,mean_reward,episodes,wall_s\n3000,0.1,0.0,10,1.0")
    shaping.main(["--rewards", "sparse", "critic", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]
    assert v["compared_to_steps"] is None and v["critic"]["mean_success_over_evals"] is None
    assert "critic_minus_sparse" not in v
    assert "has, and there are none" in (tmp_path / "out" / "shaping.md").read_text()


@pytest.mark.parametrize("critic_seed_1, within", [([0.5, 0.6, 0.7], False), ([0.5], None)])
def test_the_critic_misses_the_budget_only_once_every_seed_got_there(tmp_path, shaping, critic_seed_1, within):
    """Dense's budget is 2000 steps. A critic whose seed average is below 80% there has missed it; one with a
    seed not yet evaluated at 2000 steps has not been measured, and gets no answer either way."""
    write_runs(tmp_path / "runs", {"dense": {s: [0.1, 0.9, 0.9] for s in (0, 1)},
                                   "critic": {0: [0.5, 0.6, 0.7], 1: critic_seed_1}})
    shaping.main(["--rewards", "dense", "critic", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                  "--results", str(tmp_path / "out"), "--report-only"])
    v = json.loads((tmp_path / "out" / "shaping.json").read_text())["verdict"]
    assert v["dense"]["steps_to_target"] == 2000 and v["critic_within_dense_budget"] is within
    assert v.get("critic_within_dense_budget_pending") == (None if within is False else "critic")
    md = (tmp_path / "out" / "shaping.md").read_text()
    assert ("within dense's budget: no." if within is False else "within dense's budget: not known yet") in md
    assert ("`critic`: seed-averaged success never reaches 80%" if within is False else
            "`critic`: seed-averaged success has not reached 80% in the evaluations every seed has (to 1000") in md
