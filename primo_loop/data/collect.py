"""Collection of labelled episodes from scripted sim rollouts, in parallel worker processes.

    plan = plan_episodes(["Lift"], ["Panda"], episodes=200, seed=0, failure_rate=0.5, noise=0.1)
    collect(plan, "data/lift", CollectConfig(), workers=2)

Every episode has a deterministic id (``<task>-<robot>-s<seed>``) and spec (failure mode, action noise) drawn
from the collection seed, and is written atomically (:func:`primo_loop.data.dataset.write_episode`). A run that
is killed at any moment and started again skips the episodes already on disk and redoes the unfinished ones:
nothing is lost or duplicated. A worker that dies mid-run breaks only its pool: the parent starts a new pool
and carries on with what is left.

Cost model: a robosuite frame costs ~60 ms on a CPU against ~10 ms for a control step, so frames are rendered
only every ``frame_every`` steps, and an episode stops ``post_success_steps`` after success or
``post_failure_steps`` after the failure event (the critic has seen what matters by then).
"""
from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primo_loop.data.dataset import (
    EpisodeRecorder,
    clean_stale_tmp,
    episodes_dir,
    list_episode_ids,
    read_meta,
    write_episode,
    write_index,
)
from primo_loop.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeSpec:
    """What to collect for one episode (all of it derived from the collection seed)."""

    episode_id: str
    task: str
    robot: str
    seed: int
    failure: str | None
    noise: float


@dataclass
class CollectConfig:
    """How episodes are rolled out and recorded.

    Attributes:
        image_size: side of the stored frames (the critic's resolution).
        render_size: side of the rendered frames (the env's ``image_size``; frames are then resized the way
            the critic resizes what the in-loop env renders).
        frame_every: keep a frame every this many steps (and at reset and at the last step).
        horizon: at most this many steps.
        post_success_steps: stop this many steps after the first success (None: run to the horizon).
        post_failure_steps: stop this many steps after the failure event (None: run to the horizon).
        camera: the env camera.
        policy: "scripted" (waypoints with failure injection), "random" (uniform random actions, e.g. for
            task/robot pairs without a scripted policy), or a run folder of ``scripts/train_agent.py`` (the
            trained agent, with each episode's action noise; the states an RL agent visits, labelled from
            privileged state like every other episode).
        policy_steps: with a run folder: the checkpoint at this many env steps (default: the final model).
        synthetic: roll out the drawn synthetic scene instead of robosuite (tests and smoke runs).
        step_delay: synthetic only: seconds of sleep per step.
    """

    image_size: int = 64
    render_size: int = 128
    frame_every: int = 5
    horizon: int = 200
    post_success_steps: int | None = 30
    post_failure_steps: int | None = 50
    camera: str = "agentview"
    policy: str = "scripted"
    policy_steps: int | None = None
    synthetic: bool = False
    step_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "render_size", "frame_every", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` >= 1, actually: {getattr(self, name)}")
        if self.trained_policy:
            if self.synthetic:
                raise ConfigError("A trained agent acts in robosuite, not in the synthetic scene")
            if not (Path(self.policy) / "config.json").is_file():
                raise ConfigError(f"Expected `policy` 'scripted', 'random' or a run folder of "
                                  f"scripts/train_agent.py (with config.json), actually: {self.policy!r}")
        elif self.policy_steps is not None:
            raise ConfigError("`policy_steps` needs `policy` to be a training run folder")

    @property
    def trained_policy(self) -> bool:
        """Whether ``policy`` names a training run folder."""
        from policies import POLICIES

        return self.policy not in POLICIES


def episode_id(task: str, robot: str, seed: int) -> str:
    """``Lift-Panda-s000012``."""
    return f"{task}-{robot}-s{seed:06d}"


def plan_episodes(tasks: Sequence[str], robots: Sequence[str], episodes: int, seed: int = 0,
                  failure_rate: float = 0.5, noise: float = 0.1, failure_modes: Sequence[str] | None = None,
                  modes_for_task: Callable[[str], Sequence[str]] | None = None) -> list[EpisodeSpec]:
    """The episodes of a collection run: ``episodes`` per (task, robot), seeds ``seed .. seed+episodes-1``.

    Each episode draws, from ``(seed, index, task, robot)``, whether a failure is injected (probability
    ``failure_rate``), which mode (uniform over the task's supported modes, intersected with
    ``failure_modes``), and its action noise std (uniform in ``[0, noise]``).

    >>> [s.episode_id for s in plan_episodes(["Lift"], ["Panda"], 2, seed=10, modes_for_task=lambda t: ["drop"])]
    ['Lift-Panda-s000010', 'Lift-Panda-s000011']
    """
    if episodes < 0:
        raise ConfigError(f"Expected `episodes` >= 0, actually: {episodes}")
    if not 0.0 <= failure_rate <= 1.0:
        raise ConfigError(f"Expected 0 <= `failure_rate` <= 1, actually: {failure_rate}")
    if noise < 0:
        raise ConfigError(f"Expected `noise` >= 0, actually: {noise}")
    out = []
    for task in tasks:
        if failure_rate == 0:
            modes: list[str] = []
        else:
            modes = list(modes_for_task(task) if modes_for_task else _task_modes(task))
        if failure_modes is not None:
            modes = [m for m in modes if m in failure_modes]
        if failure_rate > 0 and not modes:
            raise ConfigError(f"No failure mode left for task {task!r} (asked for {list(failure_modes or [])})")
        for robot in robots:
            salt = zlib.crc32(f"{task}/{robot}".encode())
            for i in range(episodes):
                rng = np.random.default_rng([seed, i, salt])
                fail = modes[int(rng.integers(len(modes)))] if rng.random() < failure_rate else None
                nz = float(round(rng.uniform(0.0, noise), 4)) if noise > 0 else 0.0
                s = seed + i
                out.append(EpisodeSpec(episode_id(task, robot, s), task, robot, s, fail, nz))
    return out


def _task_modes(task: str) -> Sequence[str]:
    import envs

    return envs.task_spec(task).failure_modes


# ------------------------------------------------------------------------------------------------ workers

_ENVS: dict[tuple[str, str], Any] = {}
_CFG: CollectConfig | None = None


def _worker_init(cfg: CollectConfig) -> None:
    global _CFG
    _CFG = cfg


def _get_env(task: str, robot: str, cfg: CollectConfig):
    key = (task, robot)
    if key not in _ENVS:
        if cfg.synthetic:
            from primo_loop.data.synthetic import SyntheticEnv

            _ENVS[key] = SyntheticEnv(task, robot, image_size=cfg.render_size, horizon=cfg.horizon,
                                      step_delay=cfg.step_delay)
        else:
            import envs

            _ENVS[key] = envs.make_env(task, robot, camera=cfg.camera, image_size=cfg.render_size,
                                       horizon=cfg.horizon, obs_mode="state", hard_reset=False)
    return _ENVS[key]


_TRAINED: dict[tuple[str, int | None], Any] = {}


def _trained_policy(spec: EpisodeSpec, cfg: CollectConfig):
    """The run folder's agent (loaded once per worker), reseeded and with the episode's action noise."""
    key = (cfg.policy, cfg.policy_steps)
    if key not in _TRAINED:
        from policies.sb3 import TrainedPolicy

        _TRAINED[key] = TrainedPolicy(cfg.policy, cfg.policy_steps)
    agent = _TRAINED[key]
    agent.check_task(spec.task, spec.robot)
    agent.noise = spec.noise
    agent.reset(seed=spec.seed)
    return agent


def _make_policy(env: Any, spec: EpisodeSpec, cfg: CollectConfig):
    if cfg.trained_policy:
        return _trained_policy(spec, cfg)
    if cfg.synthetic:
        from primo_loop.data.synthetic import SyntheticPolicy

        return SyntheticPolicy(env, failure=spec.failure, seed=spec.seed, noise=spec.noise)
    from policies import make_policy

    if cfg.policy == "scripted":
        return make_policy("scripted", env, failure=spec.failure, seed=spec.seed, noise=spec.noise)
    return make_policy(cfg.policy, env, seed=spec.seed)


def rollout(spec: EpisodeSpec, cfg: CollectConfig, env: Any | None = None):
    """Roll out one episode and return it as an :class:`~primo_loop.data.dataset.Episode` (not written)."""
    t0 = time.perf_counter()
    env = env if env is not None else _get_env(spec.task, spec.robot, cfg)
    obs, info = env.reset(seed=spec.seed)
    policy = _make_policy(env, spec, cfg)
    acting = policy.wrap_env(env) if hasattr(policy, "wrap_env") else env  # a trained agent's action space
    rec = EpisodeRecorder(cfg.image_size, cfg.frame_every)
    rec.reset(env.render_frame(), env.privileged())
    stop_at: int | None = None
    failure_event = None
    failure_seen = False
    n_render = 1
    for t in range(1, cfg.horizon + 1):
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = acting.step(action)
        priv = env.privileged()
        success = bool(info.get("is_success", priv.get("success", False)))
        if success and stop_at is None and not failure_seen and cfg.post_success_steps is not None:
            stop_at = t + cfg.post_success_steps
        if priv.get("failed") and not failure_seen:
            # a failure (also one after a success: a drop) restarts the countdown: it must be seen
            failure_seen = True
            failure_event = priv.get("failure_event")
            stop_at = None if cfg.post_failure_steps is None else t + cfg.post_failure_steps
        last = terminated or truncated or t == cfg.horizon or (stop_at is not None and t >= stop_at)
        frame = env.render_frame() if (rec.wants_frame(t) or last) else None
        n_render += frame is not None
        rec.step(action, reward, priv, success=success, frame=frame)
        if last:
            break
    versions = _versions(cfg.synthetic)
    meta = {
        "task": spec.task, "robot": spec.robot, "instruction": env.instruction, "camera": cfg.camera,
        "seed": spec.seed, "policy": "synthetic" if cfg.synthetic else cfg.policy, "failure": spec.failure,
        "noise": spec.noise,
        "failure_injected_at": getattr(policy, "failure_injected_at", None), "failure_event": failure_event,
        "canonical_steps": list(getattr(env, "canonical_steps", None) or env.privileged().get("canonical_steps", [])),
        "horizon": cfg.horizon, "render_size": cfg.render_size, "collect_s": round(time.perf_counter() - t0, 3),
        "renders": n_render, "versions": versions,
    }
    if cfg.trained_policy:
        meta["policy_model"] = str(policy.path)
    return rec.finish(spec.episode_id, meta)


_VERSIONS: dict[str, Any] | None = None


def _versions(synthetic: bool) -> dict[str, Any]:
    global _VERSIONS
    if _VERSIONS is None:
        import primo_loop

        v = {"primo_loop": primo_loop.__version__, "numpy": np.__version__, "format": 1}
        if not synthetic:
            try:
                import mujoco
                import robosuite

                v.update(robosuite=robosuite.__version__, mujoco=mujoco.__version__)
            except ImportError:
                pass
        _VERSIONS = v
    return _VERSIONS


def _collect_one(root: str, spec: EpisodeSpec) -> dict[str, Any]:
    """Worker task: roll out and write one episode; an episode already on disk counts as done."""
    cfg = _CFG
    assert cfg is not None, "worker not initialised"
    final = episodes_dir(root) / spec.episode_id
    if final.exists():
        return {"episode_id": spec.episode_id, "status": "exists"}
    ep = rollout(spec, cfg)
    try:
        write_episode(root, ep)
    except DatasetError:
        return {"episode_id": spec.episode_id, "status": "exists"}
    return {"episode_id": spec.episode_id, "status": "written", "outcome": ep.meta["outcome"],
            "steps": ep.meta["n_steps"], "seconds": ep.meta["collect_s"]}


# ------------------------------------------------------------------------------------------------- driver

def check_resume(root: str | os.PathLike, plan: Sequence[EpisodeSpec], cfg: CollectConfig) -> list[EpisodeSpec]:
    """Episodes of ``plan`` still to collect; raises if what is on disk was collected differently.

    Raises:
        DatasetError: an existing episode's failure mode, noise, frame size or stride differs from the plan
            (a different seed, failure rate or recording option with the same ``--out``).
    """
    done = set(list_episode_ids(root))
    by_id = {s.episode_id: s for s in plan}
    for eid in sorted(done & set(by_id))[:50]:  # a sample is enough to catch a changed plan
        m = read_meta(episodes_dir(root) / eid)
        s = by_id[eid]
        diffs = [f"{k}: on disk {a!r}, planned {b!r}" for k, a, b in (
            ("failure", m.get("failure"), s.failure), ("noise", m.get("noise"), s.noise),
            ("image_size", m.get("image_size"), cfg.image_size), ("frame_every", m.get("frame_every"), cfg.frame_every),
            ("policy", m.get("policy", cfg.policy), "synthetic" if cfg.synthetic else cfg.policy))
            if a != b]
        if diffs:
            raise DatasetError(f"{root} already holds episode {eid} collected differently ({'; '.join(diffs)}); "
                               f"use the same options to resume, or another --out")
    return [s for s in plan if s.episode_id not in done]


def collect(plan: Sequence[EpisodeSpec], root: str | os.PathLike, cfg: CollectConfig, workers: int = 1,
            progress_bar: bool = False, max_restarts: int = 5) -> dict[str, Any]:
    """Collect the episodes of ``plan`` into the dataset folder ``root``, resuming what is there.

    Args:
        plan: from :func:`plan_episodes`.
        root: the dataset folder.
        cfg: recording options.
        workers: worker processes (0 = in this process).
        progress_bar: show a tqdm bar.
        max_restarts: new pools to start after a worker dies before giving up.

    Returns:
        A summary: episodes planned, already there, written, failed to collect, outcomes, wall time.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    clean_stale_tmp(root)
    pending = check_resume(root, plan, cfg)
    already = len(plan) - len(pending)
    written, errors, outcomes, restarts = 0, {}, {}, 0
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(plan), initial=already, desc=f"collect {root.name}", unit="ep")

    def done_one(res: dict[str, Any]) -> None:
        nonlocal written
        if res["status"] == "written":
            written += 1
            outcomes[res["outcome"]] = outcomes.get(res["outcome"], 0) + 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(outcomes)

    if workers <= 0:
        _worker_init(cfg)
        for spec in pending:
            try:
                done_one(_collect_one(str(root), spec))
            except Exception as exc:  # noqa: BLE001 - one bad episode must not end the run
                errors[spec.episode_id] = f"{type(exc).__name__}: {exc}"
                logger.exception("episode %s failed", spec.episode_id)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        while pending:
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(cfg,)) as pool:
                    futures = {pool.submit(_collect_one, str(root), s): s for s in pending}
                    while futures:
                        finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            spec = futures.pop(fut)
                            try:
                                done_one(fut.result())
                            except BrokenProcessPool:
                                raise
                            except Exception as exc:  # noqa: BLE001
                                errors[spec.episode_id] = f"{type(exc).__name__}: {exc}"
                                logger.error("episode %s failed: %s", spec.episode_id, errors[spec.episode_id])
                pending = []
            except BrokenProcessPool:
                restarts += 1
                if restarts > max_restarts:
                    raise DatasetError(f"Collection workers died {restarts} times; giving up (see the log)")
                logger.warning("a collection worker died; starting a new pool (restart %d)", restarts)
                clean_stale_tmp(root)
                pending = [s for s in check_resume(root, plan, cfg) if s.episode_id not in errors]
                if bar is not None:
                    bar.n = len(plan) - len(pending) - len(errors)
                    bar.refresh()
    if bar is not None:
        bar.close()
    clean_stale_tmp(root)  # again: a writer of a killed run may have been dying (unreaped) at the start
    index = write_index(root)
    return {"planned": len(plan), "already_there": already, "written": written, "errors": errors,
            "outcomes_written": outcomes, "episodes_on_disk": index["n_episodes"], "worker_restarts": restarts,
            "wall_s": round(time.time() - t0, 1), "config": asdict(cfg)}
