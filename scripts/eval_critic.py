#!/usr/bin/env python
"""Score a critic on dataset folders and/or PRIMO record files; write report.json, report.md and plots.

    python scripts/eval_critic.py --critic compact --data data/eval_lift_panda data/eval_lift_robots \\
        --out runs/eval_compact
    python scripts/eval_critic.py --critic primo --critic-option model=LeonOverload/PRIMO-R1-7B \\
        --data primo_bench/real_humanoid.jsonl --data-root /data/primo --out runs/eval_primo
    python scripts/eval_critic.py --compare runs/eval_a runs/eval_b --names old new --out runs/compared
    python scripts/eval_critic.py --critic remote --critic-option base_url=http://gpu:8000/v1 \
        --data /shared/primo/bench.jsonl --ray auto --out runs/eval_remote     # sharded over a Ray cluster
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import (  # noqa: E402
    add_output_flags,
    check_frame_size,
    named_folders,
    new_parser,
    parse_options,
    run,
)
from primo_loop.outputs import output_folder, write_text_atomic  # noqa: E402
from primo_loop.wrappers.common import ON_ERROR  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(__doc__)
    p.add_argument("--critic", default="compact",
                   help="a registered critic (compact, oracle, primo, remote) or package.module:Factory")
    p.add_argument("--checkpoint", default=None, help="checkpoint for the critic (compact: a folder)")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable")
    p.add_argument("--critic-on-error", choices=ON_ERROR, default="hold",
                   help="hold: a failed remote request is scored as no answer, counted apart (failed_rate); raise: "
                        "it stops the evaluation (a critic that raises always stops it)")
    p.add_argument("--data", nargs="+", default=[], help="dataset folder(s) and/or PRIMO .json/.jsonl file(s)")
    p.add_argument("--videos", nargs="+", default=[], help="folder(s) of videos with instruction sidecars "
                                                          "(NAME.mp4 + NAME.txt or NAME.json; see primo_loop/data/video_folder.py)")
    p.add_argument("--size", type=int, default=224, help="--videos frames are resized to this square size")
    p.add_argument("--data-root", default=None, help="where relative media paths of PRIMO records resolve "
                                                     "(default: $PRIMO_DATA_ROOT, else the records file's folder)")
    p.add_argument("--out", required=True, help="report folder (new or empty, unless --overwrite)")
    p.add_argument("--critic-every", type=int, default=10)
    p.add_argument("--frame-every", type=int, default=None)
    p.add_argument("--clip-len", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--failure-threshold", type=float, default=0.5)
    p.add_argument("--failure-patience", type=int, default=1)
    p.add_argument("--nframes", type=int, default=22,
                   help="clip frames decoded from a PRIMO record (22: the release's evaluation setting)")
    p.add_argument("--max-episodes", type=int, default=None)
    p.add_argument("--split-by", default="auto", help="auto | task | robot | source | none")
    p.add_argument("--train-tasks", nargs="+", default=None, help="training domain for --split-by auto")
    p.add_argument("--train-robots", nargs="+", default=None, help="training domain for --split-by auto")
    p.add_argument("--compare", nargs="+", default=[], metavar="REPORT_DIR",
                   help="no scoring: put the reports (report.json) of these earlier runs side by side in "
                        "OUT/comparison.md")
    p.add_argument("--names", nargs="+", default=None, help="column names for --compare (default: folder names)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="score --data in shards of whole episodes as Ray tasks: auto (the cluster this machine "
                        "joined), local, or HOST:PORT; each worker builds the critic (remote: shares the server "
                        "within the critic's max_concurrency); the data must be at the same path on every node")
    p.add_argument("--ray-shard-episodes", type=int, default=32, metavar="N", help="episodes per Ray task")
    p.add_argument("--ray-task-cpus", type=float, default=1.0, metavar="N", help="CPUs each Ray task declares")
    p.add_argument("--ray-task-gpus", type=float, default=0.0, metavar="N",
                   help="GPUs each Ray task declares (a VLM critic loaded in the workers)")
    add_output_flags(p)
    return p


def compare(args: argparse.Namespace) -> int:
    from primo_loop.errors import ConfigError
    from primo_loop.eval_report import compare_reports

    reports = {}
    for name, folder in named_folders(args.compare, args.names).items():
        path = Path(folder) / "report.json"
        if not path.is_file():
            raise ConfigError(f"{path} not found: --compare takes report folders of scripts/eval_critic.py")
        reports[name] = json.loads(path.read_text())
    with output_folder(args.out, overwrite=args.overwrite) as folder:
        out = write_text_atomic(folder / "comparison.md", compare_reports(reports))
    print(f"comparison: {out}")
    return 0


def main() -> int:
    args = build_parser().parse_args()
    if args.compare:
        return compare(args)
    from primo_loop.critics import make_critic
    from primo_loop.evaluate import EvalConfig

    options = parse_options(args.critic_option)
    if args.checkpoint is not None:
        options["checkpoint"] = args.checkpoint
    cfg = EvalConfig(critic_every=args.critic_every, frame_every=args.frame_every, clip_len=args.clip_len,
                     batch_size=args.batch_size, failure_threshold=args.failure_threshold,
                     failure_patience=args.failure_patience, nframes=args.nframes, max_episodes=args.max_episodes,
                     split_by=args.split_by, train_tasks=args.train_tasks, train_robots=args.train_robots,
                     data_root=args.data_root)
    if not args.data and not args.videos:
        from primo_loop.errors import ConfigError

        raise ConfigError("Expected --data and/or --videos")
    if args.videos:
        check_frame_size(args.size)
    if args.critic_on_error == "raise" and args.critic == "remote":
        options.setdefault("on_error", "raise")
    critic = make_critic(args.critic, **options)
    with output_folder(args.out, overwrite=args.overwrite) as out:
        return _score(args, critic, cfg, out, _ray_scorer(args, options))


def _ray_scorer(args: argparse.Namespace, options: dict):
    """With --ray: the scorer that shards --data over Ray tasks (primo_loop/eval_shards.py), else None."""
    if args.ray is None:
        return None
    from primo_loop.eval_shards import ray_scorer
    from primo_loop.executors import RayOptions

    ray = RayOptions(args.ray, num_cpus=args.ray_task_cpus, num_gpus=args.ray_task_gpus)
    return ray_scorer(args.critic, options, ray, args.ray_shard_episodes, progress_bar=not args.no_progress)


def _score(args: argparse.Namespace, critic, cfg, out: Path, scorer=None) -> int:
    from primo_loop.evaluate import evaluate

    if args.videos:
        from primo_loop.data.video_folder import evaluate_videos

        videos = evaluate_videos(critic, args.videos, out / "videos", cfg, image_size=args.size,
                                 critic_name=args.critic)
        print(f"videos: {len(videos['videos'])} scored ({videos['labelled']} labelled): {out / 'videos' / 'videos.md'}")
        if not args.data:
            return 0
    report = evaluate(critic, args.data, out, cfg, critic_name=args.critic, progress_bar=not args.no_progress,
                      extra={"command": " ".join(["scripts/eval_critic.py", *sys.argv[1:]])}, scorer=scorer)
    summary = {name: {"episodes": s["episodes"], "mae": s["progress"]["mae"], "voc_successful": s["voc_successful"],
                      "failure_f1": (s["failure_detection"] or {}).get("f1"),
                      "median_delay": (s["failure_detection"] or {}).get("median_delay"),
                      "unreadable_rate": s["unreadable_rate"], "latency_ms": s["latency_ms"]}
               for name, s in report["splits"].items()}
    print(json.dumps(summary, indent=1, default=str))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    run(main)
