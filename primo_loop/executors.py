"""Where independent tasks run: a local process pool (the default) or Ray tasks on a cluster.

    restarts = run_pool(fn, items, workers=2, on_result=..., on_error=..., refresh=...)
    retries = run_ray(fn, items, RayOptions("auto"), on_result=..., on_error=...)

Both call ``fn(item)`` once per item in worker processes (``fn`` a module-level function or a
``functools.partial`` of one, so workers can unpickle it) and report each outcome on the driver through
``on_result(item, result)`` or ``on_error(item, exception)``, as the results arrive.

Failures of the machinery, not of the task, cost only the tasks they hit:

- the local pool: a worker that dies breaks the whole ``ProcessPoolExecutor``; a new pool is started for what
  ``refresh()`` says is left (up to ``max_restarts`` times);
- Ray: a task whose worker process or node is lost (``WorkerCrashedError``, ``NodeDiedError``, ...) is submitted
  again, up to ``max_retries`` times per task, and each resubmission is counted. The driver resubmits rather than
  Ray's own ``max_retries`` so that the count is exact; a task that ran twice must therefore be idempotent
  (collection's tasks are: an episode already on disk counts as done, and episodes are renamed into place).

An exception raised by the task itself is reported through ``on_error`` and not retried: it would fail again.

Ray is imported here, lazily, and only by :func:`run_ray` and its helpers: ``import primo_loop`` stays free of it.
Writes land where the task writes them; a task that writes into a folder needs that folder on every node
(:func:`check_shared_folder` refuses a cluster where some node cannot see it).
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primo_loop.errors import ConfigError, DatasetError, MissingDependencyError

logger = logging.getLogger(__name__)

OnResult = Callable[[Any, Any], None]
OnError = Callable[[Any, BaseException], None]


# --------------------------------------------------------------------------------------------- local pool

def run_pool(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int, on_result: OnResult,
             on_error: OnError, refresh: Callable[[], list[Any]], initializer: Callable[..., None] | None = None,
             initargs: tuple = (), max_restarts: int = 5, what: str = "collection") -> int:
    """Run ``fn`` over ``items`` in ``workers`` local processes (forkserver where available). Returns the pool
    restarts: after a worker died, ``refresh()`` gives the items still to do and a new pool takes them.

    Raises:
        DatasetError: workers died more than ``max_restarts`` times.
    """
    import multiprocessing as mp

    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    pending, restarts = list(items), 0
    while pending:
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer,
                                     initargs=initargs) as pool:
                futures = {pool.submit(fn, item): item for item in pending}
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        item = futures.pop(fut)
                        try:
                            result = fut.result()
                        except BrokenProcessPool:
                            raise
                        except Exception as exc:  # noqa: BLE001 - one bad task must not end the run
                            on_error(item, exc)
                        else:
                            on_result(item, result)
            pending = []
        except BrokenProcessPool:
            restarts += 1
            if restarts > max_restarts:
                raise DatasetError(f"{what.capitalize()} workers died {restarts} times; giving up (see the log)")
            logger.warning("a %s worker died; starting a new pool (restart %d)", what, restarts)
            pending = refresh()
    return restarts


# ---------------------------------------------------------------------------------------------------- Ray

@dataclass(frozen=True)
class RayOptions:
    """How tasks run on Ray.

    Attributes:
        address: ``"auto"`` (the cluster this machine belongs to, started with ``ray start``), ``"local"`` (a new
            single-machine Ray started for this run), or a cluster address (``HOST:6379``, ``ray://HOST:10001``).
        num_cpus, num_gpus: resources each task declares (Ray schedules no more tasks on a node than fit).
        max_retries: resubmissions of one task whose worker or node was lost.
    """

    address: str = "auto"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not self.address:
            raise ConfigError("Expected a Ray address: auto, local, or HOST:PORT; actually: an empty string")
        if self.num_cpus < 0 or self.num_gpus < 0 or self.max_retries < 0:
            raise ConfigError(f"Expected num_cpus, num_gpus, max_retries >= 0, actually: {self.num_cpus}, "
                              f"{self.num_gpus}, {self.max_retries}")


def import_ray():
    """``ray``, or an error naming the package."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray==2.60.0", "Running tasks on Ray (--ray)") from exc
    return ray


def _code_paths() -> list[str]:
    """Folders the workers need on their ``sys.path``: this checkout's root (primo_loop, envs, policies)."""
    root = str(Path(__file__).resolve().parents[1])
    return [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]


def connect(address: str = "auto"):
    """Join the Ray cluster at ``address`` (or start a local one for ``"local"``); a no-op when this process is
    connected already. Workers get this checkout on their ``PYTHONPATH`` (the same path on every node: a shared
    filesystem, or the same checkout at the same place). Returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    _check_reachable(address)
    kw: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING,
                              runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_code_paths())}})
    try:
        if address == "local":
            ray.init(**kw)
        else:
            ray.init(address=address, **kw)
    except ConnectionError as exc:
        raise ConfigError(f"Expected a running Ray cluster at {address!r}, actually: none answered ({exc}); "
                          "start one with `ray start --head` (docs/cluster.md), or pass --ray local") from exc
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """One line at once for a ``HOST:PORT`` nothing listens on (Ray itself retries for minutes)."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Expected a Ray head node at {address}, actually: {exc}; start one there with "
                          "`ray start --head --port PORT` (docs/cluster.md), or pass --ray auto | local") from exc


def _lost_errors(ray) -> tuple[type[BaseException], ...]:
    """Ray's errors for a task lost with its worker or node (worth a resubmission), as opposed to its own."""
    e = ray.exceptions
    names = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OutOfMemoryError")
    return tuple(getattr(e, n) for n in names if hasattr(e, n))


_INIT_DONE: object | None = None


def _ray_call(setup: tuple, item: Any) -> Any:
    """Ray task body: the worker initialiser (again only when this process served another run), then ``fn``."""
    global _INIT_DONE
    fn, initializer, initargs, token = setup
    if initializer is not None and _INIT_DONE != token:
        initializer(*initargs)
        _INIT_DONE = token
    return fn(item)


def run_ray(fn: Callable[[Any], Any], items: Iterable[Any], options: RayOptions, *, on_result: OnResult,
            on_error: OnError, initializer: Callable[..., None] | None = None, initargs: tuple = (),
            what: str = "collection", max_in_flight: int | None = None) -> int:
    """Run ``fn`` over ``items`` as one Ray task each, on the cluster of ``options.address``, at most
    ``max_in_flight`` at a time (None: all submitted at once; Ray queues what does not fit). Returns the count
    of resubmissions (tasks whose worker or node was lost); a task lost more than ``options.max_retries``
    times is reported through ``on_error``."""
    ray = connect(options.address)
    lost = _lost_errors(ray)
    task = ray.remote(_ray_call).options(num_cpus=options.num_cpus, num_gpus=options.num_gpus, max_retries=0,
                                         name=f"primo_loop.{what}")
    setup = ray.put((fn, initializer, initargs, uuid.uuid4().hex))
    waiting = list(items)[::-1]
    refs: dict[Any, tuple[Any, int]] = {}
    retries = 0
    while refs or waiting:
        while waiting and (max_in_flight is None or len(refs) < max_in_flight):
            item = waiting.pop()
            refs[task.remote(setup, item)] = (item, 0)
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.2)
        for ref in done:
            item, attempt = refs.pop(ref)
            try:
                result = ray.get(ref)
            except lost as exc:
                if attempt < options.max_retries:
                    retries += 1
                    logger.warning("a %s task was lost with its worker or node (%s); resubmitted (retry %d)",
                                   what, type(exc).__name__, retries)
                    refs[task.remote(setup, item)] = (item, attempt + 1)
                else:
                    on_error(item, exc)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                on_error(item, cause)
            else:
                on_result(item, result)
    return retries


def _sees_marker(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def check_shared_folder(root: str | os.PathLike, options: RayOptions | None = None) -> int:
    """Refuse a cluster on which some node cannot see the folder ``root`` (the driver writes a marker file there,
    a task pinned to each alive node reads it). Returns the count of nodes checked.

    Raises:
        ConfigError: one line naming the nodes that do not see ``root`` and what to do.
    """
    ray = connect((options or RayOptions()).address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marker = Path(root) / f".ray-shared-{token}"
    marker.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        probe = ray.remote(_sees_marker)
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                              ).remote(str(marker.resolve()), token) for n in nodes]
        seen = ray.get(refs, timeout=120)
    finally:
        marker.unlink(missing_ok=True)
    refuse_unshared(root, {f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})": ok for n, ok in zip(nodes, seen)})
    return len(nodes)


def refuse_unshared(root: str | os.PathLike, seen: dict[str, bool]) -> None:
    """The refusal of :func:`check_shared_folder`, given whether each node (by name) saw the marker."""
    blind = [name for name, ok in seen.items() if not ok]
    if blind:
        raise ConfigError(f"Expected {Path(root).resolve()} to be one shared folder seen by every Ray node (workers "
                          f"write there), actually: not seen by {len(blind)} of {len(seen)} nodes: {', '.join(blind)}; "
                          "mount it at the same path on every node (NFS, ...), or pass a folder that is")
