"""Held-out embodiment test: the GR1ArmsOnly humanoid doing Lift, the compact critic zero-shot and fine-tuned.

The compact critic is trained on single-arm robots. Here the scripted policy drives the humanoid (nominal
episodes and injected failures); the critic is scored on held-out humanoid episodes twice:

1. **zero-shot**: the given checkpoint as it is;
2. **fine-tuned**: the compact trainer (:func:`primo_loop.training.compact.main`) run on the original training
   data with a few humanoid episodes mixed in. By default this "fine-tune" trains a new critic from scratch
   on the mixed data (how the committed results were made); ``--base-data`` must be the data the zero-shot
   checkpoint was trained on for the comparison to isolate the humanoid episodes. With
   ``--train-arg=--init=CKPT`` it starts from that checkpoint's weights instead: a fine-tune proper.

An experiment, so it lives in ``benchmarks/`` (run it with ``scripts/sim2real.py``); it uses the library's
collection, training and evaluation. Everything resumes: collection skips episodes already on disk, training resumes from its ``train_state.pt``.
Output folder: ``data/humanoid_{train,eval}``, ``zero_shot/`` and ``finetuned_eval/`` (evaluator reports),
``finetuned/`` (checkpoint), ``sim2real.md`` / ``sim2real.json``.
"""
from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError

log = logging.getLogger(__name__)

HUMANOID = "GR1ArmsOnly"


@dataclass
class Sim2RealConfig:
    """Options of the humanoid experiment.

    Attributes:
        out: output folder.
        base_data: dataset folders the zero-shot checkpoint was trained on (mixed into fine-tuning).
        checkpoint: the zero-shot compact checkpoint folder (None: the embedded default).
        task: task for the humanoid.
        robot: the held-out robot.
        train_episodes: humanoid episodes mixed into fine-tuning ("a few").
        eval_episodes: held-out humanoid episodes scored (different seeds).
        seed: first seed of the training episodes; eval episodes start at ``seed + 100_000``.
        failure_rate: fraction of episodes with an injected failure.
        epochs: fine-tuning epochs.
        train_args: more flags for the compact trainer (e.g. ``["--max-minutes", "10"]``).
        workers: collection workers.
        synthetic: use the synthetic scene instead of robosuite (tests).
    """

    out: str = "runs/sim2real"
    base_data: Sequence[str] = ()
    checkpoint: str | None = None
    task: str = "Lift"
    robot: str = HUMANOID
    train_episodes: int = 20
    eval_episodes: int = 30
    seed: int = 0
    failure_rate: float = 0.5
    epochs: int = 10
    train_args: Sequence[str] = field(default_factory=list)
    workers: int = 1
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.train_episodes < 1 or self.eval_episodes < 1:
            raise ConfigError(f"Expected train_episodes and eval_episodes >= 1, actually: "
                              f"{self.train_episodes}, {self.eval_episodes}")


def collect_humanoid(cfg: Sim2RealConfig, name: str, episodes: int, seed: int) -> Path:
    """Collect (or finish collecting) ``episodes`` scripted humanoid episodes into ``OUT/data/<name>``."""
    from policies.specs import collect_env, collect_policy, failure_modes
    from primo_loop.data.collect import CollectConfig, collect, plan_episodes

    root = Path(cfg.out) / "data" / name
    if cfg.synthetic:
        modes_for_task, factories = (lambda task: ["drop"]), {}
    else:
        modes_for_task, factories = failure_modes, {"make_env": collect_env, "make_policy": collect_policy}
    plan = plan_episodes([cfg.task], [cfg.robot], episodes, seed, cfg.failure_rate, modes_for_task=modes_for_task)
    summary = collect(plan, root, CollectConfig(synthetic=cfg.synthetic), workers=cfg.workers, **factories)
    if summary.get("errors"):
        log.warning("%d %s episodes could not be collected", len(summary["errors"]), name)
    return root


def _score(checkpoint: str | None, eval_dir: Path, out: Path, label: str) -> dict[str, Any]:
    from primo_loop.critics import make_critic
    from primo_loop.evaluate import EvalConfig, evaluate

    critic = make_critic("compact", **({"checkpoint": checkpoint} if checkpoint else {}))
    report = evaluate(critic, [eval_dir], out, EvalConfig(split_by="none"), critic_name=label)
    return report["splits"]["all"] if "all" in report["splits"] else next(iter(report["splits"].values()))


def run_sim2real(cfg: Sim2RealConfig) -> dict[str, Any]:
    """Collect, score zero-shot, fine-tune, score again; returns and writes the comparison."""
    if not cfg.base_data:
        raise ConfigError("Expected --base-data: the dataset(s) the zero-shot critic was trained on; fine-tuning "
                          "trains on them with the humanoid episodes mixed in")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_dir = collect_humanoid(cfg, "humanoid_train", cfg.train_episodes, cfg.seed)
    eval_dir = collect_humanoid(cfg, "humanoid_eval", cfg.eval_episodes, cfg.seed + 100_000)
    zero = _score(cfg.checkpoint, eval_dir, out / "zero_shot", "compact (zero-shot)")

    from primo_loop.training.compact import main as train_compact

    ft = out / "finetuned"
    argv = ["--data", *map(str, cfg.base_data), str(train_dir), "--out", str(ft), "--epochs", str(cfg.epochs),
            "--no-progress", *cfg.train_args]
    if (ft / "train_state.pt").exists():
        argv.append("--resume")
    log.info("fine-tuning: train_critic.py compact %s", shlex.join(argv))
    train_compact(argv)
    tuned = _score(str(ft), eval_dir, out / "finetuned_eval", "compact (fine-tuned with humanoid episodes)")
    result = {"config": {**asdict(cfg), "base_data": list(cfg.base_data), "train_args": list(cfg.train_args)},
              "trainer_argv": argv, "zero_shot": zero, "finetuned": tuned}
    (out / "sim2real.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "sim2real.md").write_text(report_markdown(result))
    return result


def _how_tuned(train_args: Sequence[str]) -> str:
    """"training from scratch", or "training from CKPT's weights" when the trainer got ``--init``."""
    args = list(train_args)
    for i, a in enumerate(args):
        if a.startswith("--init="):
            return f"training from {a.split('=', 1)[1]}'s weights"
        if a == "--init" and i + 1 < len(args):
            return f"training from {args[i + 1]}'s weights"
    return "training from scratch"


def report_markdown(result: dict[str, Any]) -> str:
    """Zero-shot vs fine-tuned metrics as a markdown table."""
    from primo_loop.evaluate import metric_table

    c = result["config"]
    lines = [f"# {c['task']} on {c['robot']}: compact critic zero-shot vs fine-tuned", "",
             f"{c['train_episodes']} humanoid episodes mixed into training, {c['eval_episodes']} held-out humanoid "
             f"episodes scored (fine-tuning = {_how_tuned(c.get('train_args') or [])} on base data + humanoid "
             "episodes).", "",
             *metric_table({"zero-shot": result["zero_shot"], "fine-tuned": result["finetuned"]})]
    return "\n".join(lines) + "\n"
