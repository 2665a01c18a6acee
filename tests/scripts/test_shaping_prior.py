"""benchmarks/shaping.py: an earlier report standing in for runs (--prior), a report rebuilt from its JSON (--rewrite),
and the training loop around the report (runs a prior holds are skipped; an interrupted experiment leaves a report)."""
from __future__ import annotations

import json

import pytest

from shaping_runs import report, write_runs


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


def test_the_committed_commands_of_the_rehearsal_experiment_still_build_their_configs(shaping):
    """Experiment 15's command, as committed in its report, parses and builds each reward's agent config; its
    ``rehearsal_data=data/rehearsal_lift`` (one folder where a list is expected) is a one-folder list."""
    import shlex
    from pathlib import Path

    from benchmarks.shaping_options import training_config_kwargs

    md = (Path(__file__).resolve().parents[2] / "docs/results/scratch_rehearse/shaping.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("python benchmarks/shaping.py"))
    args = shaping.build_parser().parse_args(shlex.split(line)[2:])
    kwargs = training_config_kwargs(args, "critic")
    assert kwargs["refresh"].rehearsal_data == ["data/rehearsal_lift"] and kwargs["refresh"].every == 10000
    assert kwargs["tracker"].terminate is False and kwargs["algo_kwargs"] == {"n_steps": 5, "ent_coef": 0.05}
