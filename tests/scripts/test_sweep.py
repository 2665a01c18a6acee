"""benchmarks/sweep.py: (reward, seed) runs as Ray tasks that resume from their checkpoints, with the report
rebuilt from what finished; a tiny fake training function stands in for SB3."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from primo_loop.errors import TrainingError

ray = pytest.importorskip("ray")


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    if str(ROOT) not in sys.path:  # as benchmarks/shaping.py does: the checkout's root holds `benchmarks`
        sys.path.insert(0, str(ROOT))
    import benchmarks.sweep

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # fake_train: the workers get it by value
    return benchmarks.sweep


def fake_train(cfg: dict) -> dict:
    """Trains ``cfg["steps"]`` steps with a checkpoint after each, resuming from the last one; logs where each
    start began in ``starts``; dies (its process gone) at step ``die_at`` once, raises at ``raise_at``."""
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    if (out / "done.json").exists():
        return json.loads((out / "done.json").read_text())
    ckpt = out / "checkpoint.json"
    start = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    with open(out / "starts", "a") as f:
        f.write(f"{start}\n")
    for step in range(start + 1, cfg["steps"] + 1):
        ckpt.write_text(json.dumps({"step": step}))
        if step == cfg.get("die_at") and not (out / "died").exists():
            (out / "died").write_text("")
            os._exit(1)
        if step == cfg.get("raise_at"):
            raise cfg.get("error", ValueError)("diverged")
    summary = {"timesteps": cfg["steps"], "eval": 0.5}
    (out / "done.json").write_text(json.dumps(summary))
    return summary


def _runs(sweep, root: Path, **special) -> list:
    runs = []
    for reward in ("sparse", "critic"):
        for seed in (0, 1):
            name = f"{reward}_s{seed}"
            cfg = {"out": str(root / name), "steps": 4, **special.get(name, {})}
            runs.append(sweep.SweepRun(name, cfg, out=cfg["out"]))
    return runs


def _report(root: Path) -> list[str]:
    """What a report is rebuilt from: the runs whose folders say they finished."""
    return sorted(p.name for p in root.iterdir() if (p / "done.json").exists())


def _starts(root: Path, name: str) -> list[int]:
    return [int(x) for x in (root / name / "starts").read_text().split()]


def test_a_ray_sweep_resubmits_a_lost_run_which_resumes_from_its_checkpoint(local_ray, sweep, tmp_path):
    runs = _runs(sweep, tmp_path, critic_s1={"die_at": 2})
    reports = []
    summary = sweep.run_sweep(runs, fake_train, ray=local_ray,
                              on_finished=lambda run, res: reports.append((run.name, _report(tmp_path))))
    assert sorted(summary["finished"]) == sorted(r.name for r in runs) and summary["retries"] == 1
    assert _starts(tmp_path, "critic_s1") == [0, 2]  # resumed after step 2, not started over
    # the report is rebuilt on the driver after each run, from what has finished (the run itself included)
    assert len(reports) == 4 and all(name in report for name, report in reports)
    assert reports[-1][1] == sorted(r.name for r in runs)


def test_an_interrupted_sweep_reports_what_finished_and_resumes_the_rest(local_ray, sweep, tmp_path):
    runs = _runs(sweep, tmp_path, sparse_s1={"raise_at": 3, "error": KeyboardInterrupt})
    interrupted = []
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(runs, fake_train, on_interrupt=lambda: interrupted.append(_report(tmp_path)))
    assert interrupted == [["sparse_s0"]]
    again = [sweep.SweepRun(r.name, {k: v for k, v in r.config.items() if k not in ("raise_at", "error")}, r.out)
             for r in runs]
    summary = sweep.run_sweep(again, fake_train, ray=local_ray)
    assert summary["retries"] == 0 and len(summary["finished"]) == 4
    assert _starts(tmp_path, "sparse_s0") == [0]  # finished: not trained again
    assert _starts(tmp_path, "sparse_s1") == [0, 3]  # resumed from its checkpoint
    assert _report(tmp_path) == sorted(r.name for r in runs)


def test_a_failed_run_is_named_after_the_others_finished(local_ray, sweep, tmp_path):
    runs = _runs(sweep, tmp_path, critic_s0={"raise_at": 2})
    with pytest.raises(TrainingError, match=r"1 of 4 sweep runs failed: critic_s0 \(ValueError: diverged\)"):
        sweep.run_sweep(runs, fake_train, ray=local_ray)
    assert _report(tmp_path) == ["critic_s1", "sparse_s0", "sparse_s1"]


def test_shaping_ray_options_say_where_runs_go_not_how_agents_train(load_script):
    """A prior report trained without --ray still lends its curves to a command with --ray (and vice versa)."""
    shaping = load_script("benchmarks/shaping.py")
    args = shaping.build_parser().parse_args(["--ray", "auto", "--ray-task-cpus", "5", "--ray-task-gpus", "1"])
    plain = shaping.build_parser().parse_args([])
    assert shaping.training_options(args) == shaping.training_options(plain)


@pytest.mark.slow
def test_shaping_trains_its_runs_as_ray_tasks(local_ray, load_script, tmp_path):
    """benchmarks/shaping.py --ray: real SB3 runs (a fake env, 100 steps) as Ray tasks; the report holds both."""
    shaping = load_script("benchmarks/shaping.py")
    argv = ["--env", "primo_loop.testing.fakes:ProgressEnv", "--rewards", "sparse", "oracle", "--seeds", "0",
            "--steps", "100", "--workers", "1", "--horizon", "30", "--eval-every", "50", "--eval-episodes", "2",
            "--checkpoint-every", "50", "--set", "learning_starts=50", "--set", "batch_size=32",
            "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--ray", "auto",
            "--ray-task-cpus", "1"]
    assert shaping.main(argv) == 0
    runs = json.loads((tmp_path / "res" / "shaping.json").read_text())["runs"]
    assert set(runs) == {"sparse", "oracle"}
    assert all(runs[r]["finished_steps"] == {"0": 100} for r in runs)
    assert all((tmp_path / "runs" / f"{r}_s0" / "done.json").exists() for r in runs)
