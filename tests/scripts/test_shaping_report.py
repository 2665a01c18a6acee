"""benchmarks/shaping.py --report-only: curves from eval.csv files, the table and the computed verdict."""
from __future__ import annotations

import json
from pathlib import Path

import pytest



@pytest.fixture(scope="module")
def shaping(load_script):
    return load_script("benchmarks/shaping.py")


CURVES = {  # reward -> seed -> success at 1000, 2000, 3000 env steps
    "dense": {0: [0.0, 0.7, 0.9], 1: [0.1, 0.9, 1.0]},    # mean 0.05, 0.8, 0.95 -> reaches 80% at 2000
    "critic": {0: [0.6, 0.9, 1.0], 1: [0.8, 0.9, 0.9]},   # mean 0.7, 0.9, 0.95 -> at 2000
    "sparse": {0: [0.0, 0.0, 0.1], 1: [0.0, 0.1, 0.2]},   # mean 0.0, 0.05, 0.15 -> never
}


def write_runs(root: Path, curves: dict = CURVES) -> None:
    """eval.csv files as training writes them, one evaluation every 1000 env steps."""
    for reward, seeds in curves.items():
        for seed, values in seeds.items():
            run = root / f"{reward}_s{seed}"
            run.mkdir(parents=True)
            rows = [f"{1000 * (i + 1)},{v},0.0,10,1.0" for i, v in enumerate(values)]
            (run / "eval.csv").write_text("timesteps,success_rate,mean_reward,episodes,wall_s\n" + "\n".join(rows))


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


def report(shaping, tmp_path, name, curves, *extra):
    """A shaping report made from ``curves`` (training options: the defaults plus ``extra``)."""
    write_runs(tmp_path / f"runs_{name}", curves)
    seeds = sorted({str(s) for c in curves.values() for s in c})
    assert shaping.main(["--rewards", *curves, "--seeds", *seeds, "--runs", str(tmp_path / f"runs_{name}"),
                         "--results", str(tmp_path / name), "--report-only", *extra]) == 0
    return tmp_path / name / "shaping.json"


def test_a_prior_report_stands_in_for_runs_not_on_disk(tmp_path, shaping):
    prior = report(shaping, tmp_path, "old", {"critic": {0: [0.9, 0.9]}, "sparse": {0: [0.5, 0.7], 1: [0.0, 0.0]}},
                   "--set", "n_steps=5")
    # new seeds on disk; sparse seed 1 is also on disk and wins over the prior's copy
    write_runs(tmp_path / "runs", {"critic": {1: [0.3, 0.5]}, "sparse": {1: [0.6, 0.8]}})
    out = tmp_path / "new"
    assert shaping.main(["--rewards", "critic", "sparse", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                         "--results", str(out), "--prior", str(prior), "--set", "n_steps=5", "--report-only"]) == 0
    result = json.loads((out / "shaping.json").read_text())
    critic, sparse = result["runs"]["critic"], result["runs"]["sparse"]
    assert critic["seeds"] == [0, 1] and critic["success"] == {"0": [0.9, 0.9], "1": [0.3, 0.5]}
    assert sparse["success"] == {"0": [0.5, 0.7], "1": [0.6, 0.8]}
    assert critic["source"] == {"0": str(prior), "1": str(tmp_path / "runs" / "critic_s1")}
    assert sparse["source"]["1"] == str(tmp_path / "runs" / "sparse_s1")
    # the verdict pools both: per seed critic 0.9, 0.4 and sparse 0.6, 0.7
    assert result["verdict"]["critic_minus_sparse"] == pytest.approx(0.0, abs=1e-3)
    assert "--prior" in result["command"]
    md = (out / "shaping.md").read_text()
    assert (f"From the earlier report `{prior}` (trained with the options these rewards read; a longer run is "
            "read up to this report's budget): critic seeds 0; sparse seeds 0.") in md


def test_rewrite_rebuilds_a_report_from_its_json_alone(tmp_path, shaping):
    """--rewrite redoes the verdict and the table of a report whose runs are gone, keeping its command."""
    from primo_loop.errors import ConfigError

    prior = report(shaping, tmp_path, "old", {"sparse": {0: [0.0, 0.1], 1: [0.2, 0.3]}})
    path = report(shaping, tmp_path, "new", {"dense": {0: [0.5, 0.9], 1: [0.7, 0.9]}, "critic": {0: [0.6, 0.8]}},
                  "--prior", str(prior), "--rewards", "sparse", "dense", "critic")  # sparse from the prior
    md, result = path.with_suffix(".md").read_text(), json.loads(path.read_text())
    # as a report written before the dense-sparse comparison existed: older verdict, no such line
    result["verdict"] = {k: v for k, v in result["verdict"].items() if not k.startswith("dense_minus")}
    path.write_text(json.dumps(result))
    path.with_suffix(".md").write_text("stale")
    for folder in ("runs_old", "runs_new"):
        for f in (tmp_path / folder).rglob("eval.csv"):
            f.unlink()
    assert shaping.main(["--rewrite", str(path)]) == 0
    assert path.with_suffix(".md").read_text() == md  # the same report, prior's line and command included
    v = json.loads(path.read_text())["verdict"]
    # per seed dense 0.7, 0.8 against sparse 0.05, 0.25: +0.6, SE sqrt(0.005 / 2 + 0.02 / 2) = 0.112
    assert v["dense_minus_sparse"] == pytest.approx(0.6, abs=1e-3) and v["dense_clearly_beats_sparse"]
    assert v["critic_minus_sparse_se"] is None  # one critic seed: no error, no verdict on "clearly"
    (tmp_path / "other.json").write_text('{"runs": []}')
    for bad in (tmp_path / "other.json", tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match="not a readable shaping report"):
            shaping.main(["--rewrite", str(bad)])


def test_a_prior_trained_otherwise_is_refused(tmp_path, shaping):
    from primo_loop.errors import ConfigError

    prior = report(shaping, tmp_path, "old", {"sparse": {0: [0.5, 0.7]}}, "--set", "n_steps=5", "--eval-episodes", "20")
    args = ["--rewards", "sparse", "--seeds", "0", "--runs", str(tmp_path / "runs"), "--results",
            str(tmp_path / "new"), "--prior", str(prior), "--report-only"]
    with pytest.raises(ConfigError, match=r"--eval-episodes 20 there, 10 here.*'n_steps': 5\} there, \{\} here"):
        shaping.main(args)
    # where runs live and the order of --set options are not training options
    assert shaping.main([*args, "--eval-episodes", "20", "--set", "n_steps=5", "--checkpoint-every", "5"]) == 0
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a readable shaping report"):
        shaping.main([*args[:-2], str(tmp_path / "broken.json"), "--report-only"])


def test_a_prior_trained_longer_lends_its_curves_up_to_the_budget(tmp_path, shaping):
    from primo_loop.errors import ConfigError

    prior = report(shaping, tmp_path, "long", {"critic": {0: [0.6, 0.9, 0.2]}, "sparse": {0: [0.0, 0.1, 1.0]}},
                   "--steps", "3000")
    args = ["--rewards", "critic", "sparse", "--seeds", "0", "--runs", str(tmp_path / "runs"), "--prior",
            str(prior), "--report-only"]
    assert shaping.main([*args, "--steps", "2000", "--results", str(tmp_path / "at2k")]) == 0
    result = json.loads((tmp_path / "at2k" / "shaping.json").read_text())
    assert result["runs"]["critic"]["success"] == {"0": [0.6, 0.9]}  # its 3000-step evaluation left out
    assert result["runs"]["sparse"]["final_success"] == {"0": 0.1}
    # a prior that stopped short of the budget would end early: refused
    with pytest.raises(ConfigError, match="--steps 3000 there, 4000 here"):
        shaping.main([*args, "--steps", "4000", "--results", str(tmp_path / "at4k")])


def test_a_prior_lends_only_the_rewards_its_options_left_unchanged(tmp_path, shaping, monkeypatch):
    """A critic variant (here the tracker's termination off) is compared with the prior's sparse and dense runs,
    which never read tracker options, but never with the prior's critic runs, which did."""
    import policies.sb3
    from primo_loop.errors import ConfigError

    prior = report(shaping, tmp_path, "old", {"sparse": {0: [0.1, 0.2]}, "dense": {0: [0.5, 0.9]},
                                              "critic": {0: [0.9, 0.9]}, "oracle": {0: [0.4, 0.4]}},
                   "--critic-weight", "10")
    trained = []

    def fake_train(cfg):
        trained.append((cfg.reward, cfg.seed, cfg.tracker.terminate))
        write_runs(tmp_path / "runs", {cfg.reward: {cfg.seed: [0.3, 0.95]}})
        return {"timesteps": 2000, "eval": 0.95}

    monkeypatch.setattr(policies.sb3, "train", fake_train)
    variant = ["--critic-weight", "10", "--tracker-option", "terminate=false", "--runs", str(tmp_path / "runs"),
               "--prior", str(prior), "--seeds", "0"]
    assert shaping.main([*variant, "--rewards", "sparse", "dense", "critic", "oracle",
                         "--results", str(tmp_path / "new")]) == 0
    # the critic and the oracle read the tracker options: trained anew; sparse and dense come from the prior
    assert trained == [("critic", 0, False), ("oracle", 0, False)]
    result = json.loads((tmp_path / "new" / "shaping.json").read_text())
    assert result["runs"]["critic"]["success"] == {"0": [0.3, 0.95]}
    assert result["runs"]["critic"]["label"] == "critic (compact, terminate=false)"
    assert result["runs"]["dense"]["source"] == {"0": str(prior)}
    assert result["verdict"]["critic_within_dense_budget"] is True  # 0.95 at 2000 <= dense's 2000
    md = (tmp_path / "new" / "shaping.md").read_text()
    assert ("(trained with the options these rewards read; a longer run is read up to this report's budget): "
            "sparse seeds 0; dense seeds 0.") in md
    # another critic backend: the oracle is still lent (it reads no critic), the critic is not
    (tmp_path / "runs" / "oracle_s0" / "eval.csv").unlink()
    assert shaping.main(["--critic-weight", "10", "--critic", "vlm", "--runs", str(tmp_path / "runs"), "--prior",
                         str(prior), "--seeds", "0", "--rewards", "oracle", "--results", str(tmp_path / "o"),
                         "--report-only"]) == 0
    assert json.loads((tmp_path / "o" / "shaping.json").read_text())["runs"]["oracle"]["source"] == {"0": str(prior)}
    # a prior usable for none of the rewards asked for is refused, naming what differs
    with pytest.raises(ConfigError, match=r"--tracker-option \{\} there, \{'terminate': False\} here"
                                          r" \(it could lend sparse, dense: name them in --rewards\)$"):
        shaping.main([*variant, "--rewards", "critic", "--results", str(tmp_path / "x"), "--report-only"])


def test_training_skips_the_runs_a_prior_holds(tmp_path, shaping, monkeypatch):
    import policies.sb3

    prior = report(shaping, tmp_path, "old", {"sparse": {0: [0.5, 0.7]}})
    trained = []

    def fake_train(cfg):
        trained.append((cfg.reward, cfg.seed))
        write_runs(tmp_path / "runs", {cfg.reward: {cfg.seed: [0.1, 0.2]}})
        return {"timesteps": 2000, "eval": 0.2}

    monkeypatch.setattr(policies.sb3, "train", fake_train)
    assert shaping.main(["--rewards", "sparse", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"),
                         "--results", str(tmp_path / "new"), "--prior", str(prior)]) == 0
    assert trained == [("sparse", 1)]
    result = json.loads((tmp_path / "new" / "shaping.json").read_text())
    assert result["runs"]["sparse"]["success"] == {"0": [0.5, 0.7], "1": [0.1, 0.2]}


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


def test_an_interrupted_experiment_leaves_a_report_of_the_runs_so_far(tmp_path, shaping, monkeypatch):
    """Run folders die with the machine; the report, which can be committed, is rewritten after every run and
    when training is interrupted, with the curves the runs have reached."""
    import policies.sb3

    reports = []  # the report each run found when it started

    def fake_train(cfg):
        path = tmp_path / "res" / "shaping.json"
        reports.append(json.loads(path.read_text())["runs"] if path.exists() else None)
        if cfg.seed == 1:  # killed mid-run, after its first evaluation
            write_runs(tmp_path / "runs", {cfg.reward: {cfg.seed: [0.4]}})
            raise KeyboardInterrupt
        write_runs(tmp_path / "runs", {cfg.reward: {cfg.seed: [0.1, 0.2]}})
        return {"timesteps": 2000, "eval": 0.2}

    monkeypatch.setattr(policies.sb3, "train", fake_train)
    argv = ["--rewards", "sparse", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"), "--results",
            str(tmp_path / "res")]
    with pytest.raises(KeyboardInterrupt):
        shaping.main(argv)
    # none before the first run; seed 0's curve as soon as it ended (a kill that no handler sees loses no more)
    assert reports[0] is None and reports[1]["sparse"]["success"] == {"0": [0.1, 0.2]}
    result = json.loads((tmp_path / "res" / "shaping.json").read_text())
    assert result["runs"]["sparse"]["success"] == {"0": [0.1, 0.2], "1": [0.4, None]}
    assert result["runs"]["sparse"]["finished_steps"] == {"0": None, "1": None}
    assert result["command"] == "python benchmarks/shaping.py " + " ".join(argv)


def test_a_refresh_variant_borrows_sparse_and_dense_and_plots_the_oracle_bias(tmp_path, shaping):
    """Online refresh changes only the critic reward's runs: a prior lends its sparse and dense curves, not its critic
    curves. The critic runs' ``critic/oracle_bias`` (TensorBoard) is read at each evaluation step, from the run's
    event folders merged in order (a resumed run's later folder wins) and, for borrowed seeds, from the prior."""
    from torch.utils.tensorboard import SummaryWriter

    prior = report(shaping, tmp_path, "old", {"sparse": {0: [0.1, 0.2]}, "dense": {0: [0.5, 0.9]},
                                              "critic": {0: [0.0, 0.1]}})
    write_runs(tmp_path / "runs", {"critic": {0: [0.4, 0.85]}})
    for folder, points in (("sac_critic_1", {500: 0.3, 1000: 0.5, 1500: 0.9}), ("sac_critic_2", {1500: 0.1, 2000: 0.05})):
        with SummaryWriter(str(tmp_path / "runs" / "critic_s0" / "tb" / folder)) as w:
            for step, v in points.items():
                w.add_scalar("critic/oracle_bias", v, step)
    out = tmp_path / "new"
    assert shaping.main(["--rewards", "sparse", "dense", "critic", "--seeds", "0", "--runs", str(tmp_path / "runs"),
                         "--results", str(out), "--prior", str(prior), "--refresh-every", "500",
                         "--report-only"]) == 0
    result = json.loads((out / "shaping.json").read_text())
    critic = result["runs"]["critic"]
    assert critic["label"] == "critic (compact, refreshed every 500)"
    assert critic["source"] == {"0": str(tmp_path / "runs" / "critic_s0")}
    assert result["runs"]["dense"]["source"] == {"0": str(prior)}
    assert critic["oracle_bias"] == {"0": [pytest.approx(0.5), pytest.approx(0.05)]}  # at 1000 and 2000
    assert result["setting"]["refresh_every"] == 500
    assert (out / "oracle_bias.png").stat().st_size > 0
    # the prior's own critic runs trained without refresh: they do not stand in
    with pytest.raises(Exception, match="refresh-every 0 there, 500 here"):
        shaping.main(["--rewards", "critic", "--seeds", "0", "--runs", str(tmp_path / "none"), "--results",
                      str(tmp_path / "x"), "--prior", str(prior), "--refresh-every", "500", "--report-only"])


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
