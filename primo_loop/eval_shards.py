"""Evaluation sharded over Ray tasks: a large dataset folder or PRIMO record file scored by many workers.

    scorer = ray_scorer("remote", {"base_url": "http://gpu:8000/v1"}, RayOptions("auto"), shard_episodes=64)
    evaluate(make_critic("remote", base_url=...), ["bench.jsonl"], "runs/eval", cfg, scorer=scorer)

The driver splits each source into shards of whole episodes (dataset episode ids, or record groups), in the
order the local evaluation scores them; each shard is one Ray task that builds the critic from its registered
name and options (once per worker process) and scores its episodes with the very functions of the local path
(:func:`primo_loop.evaluate.score_dataset`, :func:`~primo_loop.evaluate.score_records`). The driver puts the
results back in shard order, so the report equals the local one except for the measured latencies.

A critic whose factory takes ``max_concurrency`` (the ``remote`` backend: requests in flight to one server) has
that budget split between the tasks in flight: many workers share the server within the limit the user set
(``max_concurrency`` in the critic options, else the factory's default), and none holds a model. Other backends
build their model in every worker: declare what it needs (``RayOptions.num_gpus`` for a VLM).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError, DatasetError
from primo_loop.executors import RayOptions, run_ray

_CRITICS: dict[str, Any] = {}


def shards(source: str | Path, cfg: Any, shard_episodes: int) -> list[list[str]]:
    """The episodes of ``source`` (in the local evaluation's order) in chunks of ``shard_episodes``."""
    p = Path(source)
    if p.is_dir():
        from primo_loop.data.dataset import EpisodeDataset

        ds = EpisodeDataset(p)
        keys = ds.ids[: cfg.max_episodes or len(ds.ids)]
    else:
        from primo_loop.data.primo_format import load_records
        from primo_loop.evaluate import record_groups

        keys = list(record_groups(load_records(p, data_root=cfg.data_root), cfg))
    return [keys[i:i + shard_episodes] for i in range(0, len(keys), shard_episodes)]


def _score_shard(task: tuple[str, dict[str, Any], str, Any, list[str]]) -> tuple[list[Any], int]:
    """Ray task: score one shard with this worker's critic (built on first use)."""
    from primo_loop.critics import make_critic
    from primo_loop.evaluate import score_dataset, score_records

    name, options, source, cfg, keys = task
    key = repr((name, sorted(options.items())))
    if key not in _CRITICS:
        _CRITICS.clear()  # one critic per worker: a model of an earlier run is let go
        _CRITICS[key] = make_critic(name, **options)
    critic = _CRITICS[key]
    if Path(source).is_dir():
        return score_dataset(critic, source, cfg, ids=keys)
    return score_records(critic, source, cfg, keys=set(keys))


def concurrency_budget(name: str, options: dict[str, Any]) -> int | None:
    """The requests-in-flight limit the critic ``name`` declares through a ``max_concurrency`` parameter."""
    from primo_loop.critics import critic_factory

    try:
        param = inspect.signature(critic_factory(name)).parameters.get("max_concurrency")
    except (TypeError, ValueError):
        return None
    if param is None:
        return None
    return int(options.get("max_concurrency", param.default))


def ray_scorer(critic_name: str, options: dict[str, Any], ray: RayOptions, shard_episodes: int = 32,
               progress_bar: bool = False) -> Callable[[Path, Any], tuple[list[Any], int]]:
    """A ``scorer`` for :func:`primo_loop.evaluate.evaluate` that scores each source as Ray tasks (one a shard).

    Raises:
        ConfigError: ``shard_episodes`` < 1.
        DatasetError: a shard failed (the first errors are named); a report from part of the data is no report.
    """
    if shard_episodes < 1:
        raise ConfigError(f"Expected `shard_episodes` >= 1, actually: {shard_episodes}")

    def score(source: Path, cfg: Any) -> tuple[list[Any], int]:
        parts = shards(source, cfg, shard_episodes)
        opts = dict(options)
        budget = concurrency_budget(critic_name, options)
        if budget is not None and parts:
            opts["max_concurrency"] = max(1, budget // min(len(parts), budget))
        skipped = 0
        if source.is_dir():  # episodes the dataset skips on opening are in no shard: count them here
            from primo_loop.data.dataset import EpisodeDataset

            skipped = len(EpisodeDataset(source).skipped)
        done: dict[int, tuple[list[Any], int]] = {}
        errors: dict[int, str] = {}
        bar = None
        if progress_bar:
            from tqdm import tqdm

            bar = tqdm(total=sum(map(len, parts)), desc=f"eval {source.name} (ray)", unit="ep")

        def on_result(item: tuple, res: tuple[list[Any], int]) -> None:
            done[item[0]] = res
            if bar is not None:
                bar.update(len(item[1][-1]))

        def on_error(item: tuple, exc: BaseException) -> None:
            errors[item[0]] = f"{type(exc).__name__}: {exc}"

        items = [(i, (critic_name, opts, str(source), cfg, keys)) for i, keys in enumerate(parts)]
        in_flight = None if budget is None else min(len(parts), budget)
        run_ray(_call_shard, items, ray, on_result=on_result, on_error=on_error, what="evaluation",
                max_in_flight=in_flight)
        if bar is not None:
            bar.close()
        if errors:
            first = "; ".join(f"shard {i}: {e}" for i, e in sorted(errors.items())[:3])
            raise DatasetError(f"{len(errors)} of {len(parts)} evaluation shards of {source} failed ({first})")
        results = [r for i in range(len(parts)) for r in done[i][0]]
        if not results and not source.is_dir():
            raise DatasetError(f"No scorable records in {source}")
        return results, skipped + sum(done[i][1] for i in range(len(parts)))

    return score


def _call_shard(item: tuple[int, tuple]) -> tuple[list[Any], int]:
    return _score_shard(item[1])

