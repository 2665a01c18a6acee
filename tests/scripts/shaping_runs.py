"""Run folders and reports for the tests of ``benchmarks/shaping.py`` (test_shaping_report, test_shaping_prior)."""
from __future__ import annotations

from pathlib import Path


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


def report(shaping, tmp_path, name, curves, *extra):
    """A shaping report made from ``curves`` (training options: the defaults plus ``extra``)."""
    write_runs(tmp_path / f"runs_{name}", curves)
    seeds = sorted({str(s) for c in curves.values() for s in c})
    assert shaping.main(["--rewards", *curves, "--seeds", *seeds, "--runs", str(tmp_path / f"runs_{name}"),
                         "--results", str(tmp_path / name), "--report-only", *extra]) == 0
    return tmp_path / name / "shaping.json"
