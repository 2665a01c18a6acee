"""Collection of labelled episodes from scripted sim rollouts, in parallel worker processes.

    from policies.specs import collect_env, collect_policy, failure_modes

    plan = plan_episodes(["Lift"], ["Panda"], episodes=200, seed=0, failure_rate=0.5, noise=0.1,
                         modes_for_task=failure_modes)
    collect(plan, "data/lift", CollectConfig(), make_env=collect_env, make_policy=collect_policy, workers=2)

The library knows no simulator and no policy: collection is handed an env factory ``(task, robot, cfg) -> env``
and a policy factory ``(env, episode_spec, cfg) -> policy`` (module-level functions, so worker processes can
unpickle them); ``policies.specs`` has the robosuite ones. With ``CollectConfig(synthetic=True)`` the drawn
synthetic scene and its policy are the defaults.

Every episode has a deterministic id (``<task>-<robot>-s<seed>``) and spec (failure mode, action noise) drawn
from the collection seed, and is written atomically (:func:`primo_loop.data.dataset.write_episode`) by the
worker that rolled it out. A run killed at any moment and started again skips the episodes on disk and redoes
the unfinished ones: nothing is lost or duplicated. Workers are a local process pool, or Ray tasks on a cluster
(``ray=RayOptions("auto")``, :mod:`primo_loop.executors`): a local worker that dies breaks only its pool (a new
one carries on with what is left); a Ray task lost with its worker or node is resubmitted.

Cost: frames are rendered only every ``frame_every`` steps; an episode stops soon after success or failure.
"""
from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
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
from primo_loop.data.provenance import appearance_meta, check_appearance
from primo_loop.data.versions import stack_versions
from primo_loop.errors import ConfigError, DatasetError
from primo_loop.executors import RayOptions, check_shared_folder, run_pool, run_ray
from primo_loop.views import normalize_views

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
        camera: the env camera; render_profile: the env's render profile ("fast" or "default", envs/render.py).
        appearance: "nominal", or a look per episode from its seed, "train" or "heldout" (envs/appearance.py).
        cameras: several cameras instead of ``camera`` (e.g. ``("agentview", "robot0_eye_in_hand")``): each frame
            tiles their views left to right, each ``image_size`` square (:mod:`primo_loop.views`); recorded in
            each episode's meta as ``views`` (one camera: ``[camera]``).
        policy: "scripted" (waypoints with failure injection), "random" (uniform random actions, e.g. for
            task/robot pairs without a scripted policy), or a run folder of ``scripts/train_agent.py`` (the
            trained agent, with each episode's action noise; the states an RL agent visits, labelled from
            privileged state like every other episode). Resolved by the policy factory; recorded in the meta.
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
    render_profile: str = "fast"
    appearance: str = "nominal"
    cameras: tuple[str, ...] = ()
    policy: str = "scripted"
    policy_steps: int | None = None
    synthetic: bool = False
    step_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "render_size", "frame_every", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Expected `{name}` >= 1, actually: {getattr(self, name)}")
        self.cameras = normalize_views(self.cameras, "cameras")
        if self.synthetic and self.policy != "scripted":
            raise ConfigError(f"Expected policy='scripted' in the synthetic scene, actually: {self.policy!r}")
        self.appearance = check_appearance(self.appearance, self.synthetic)

    @property
    def views(self) -> tuple[str, ...]:
        """The camera names tiled in each recorded frame."""
        return tuple(self.cameras) or (self.camera,)

    @property
    def policy_label(self) -> str:
        """The policy as recorded in each episode's meta."""
        return "synthetic" if self.synthetic else self.policy


#: ``(task, robot, cfg) -> env``: the env a worker records from (built once per worker and task/robot pair).
EnvFactory = Callable[[str, str, CollectConfig], Any]
#: ``(env, episode_spec, cfg) -> policy``: the policy of one episode, reset for it.
PolicyFactory = Callable[[Any, "EpisodeSpec", CollectConfig], Any]


def _factories(cfg: CollectConfig, make_env: EnvFactory | None,
               make_policy: PolicyFactory | None) -> tuple[EnvFactory, PolicyFactory]:
    if cfg.synthetic:
        from primo_loop.data.synthetic import synthetic_env, synthetic_policy

        return make_env or synthetic_env, make_policy or synthetic_policy
    if make_env is None or make_policy is None:
        raise ConfigError(f"Expected `make_env` and `make_policy` factories, actually: {make_env!r}, {make_policy!r}; "
                          "pass policies.specs.collect_env and .collect_policy, or CollectConfig(synthetic=True)")
    return make_env, make_policy


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
        elif modes_for_task is None:
            raise ConfigError(f"Expected `modes_for_task` (task -> its failure modes) with failure_rate="
                              f"{failure_rate}, actually: None; pass policies.specs.failure_modes for robosuite tasks")
        else:
            modes = list(modes_for_task(task))
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


# ------------------------------------------------------------------------------------------------ workers

_ENVS: dict[tuple[str, str], Any] = {}
_WORKER: tuple[CollectConfig, EnvFactory, PolicyFactory] | None = None


def _worker_init(cfg: CollectConfig, make_env: EnvFactory, make_policy: PolicyFactory) -> None:
    global _WORKER
    while _ENVS:  # called once per run and process; a Ray worker serves many runs: another run's envs go
        getattr(_ENVS.popitem()[1], "close", lambda: None)()
    _WORKER = (cfg, make_env, make_policy)


def _get_env(task: str, robot: str, cfg: CollectConfig, make_env: EnvFactory):
    if (task, robot) not in _ENVS:
        _ENVS[task, robot] = make_env(task, robot, cfg)
    return _ENVS[task, robot]


def rollout(spec: EpisodeSpec, cfg: CollectConfig, env: Any | None = None, make_env: EnvFactory | None = None,
            make_policy: PolicyFactory | None = None):
    """Roll out one episode in ``env`` (default: built by ``make_env``, once per process and task/robot pair) and
    return it as an :class:`~primo_loop.data.dataset.Episode` (not written); factories as for :func:`collect`."""
    t0 = time.perf_counter()
    if env is None:
        make_env, make_policy = _factories(cfg, make_env, make_policy)
        env = _get_env(spec.task, spec.robot, cfg, make_env)
    else:
        make_policy = _factories(cfg, lambda *a: env, make_policy)[1]
    obs, info = env.reset(seed=spec.seed)
    policy = make_policy(env, spec, cfg)
    acting = policy.wrap_env(env) if hasattr(policy, "wrap_env") else env  # a trained agent's action space
    rec = EpisodeRecorder(cfg.image_size, cfg.frame_every, cfg.views)
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
    versions = stack_versions(cfg.synthetic)
    meta = {
        "task": spec.task, "robot": spec.robot, "instruction": env.instruction, "camera": cfg.views[0],
        "seed": spec.seed, "policy": cfg.policy_label, "failure": spec.failure, "noise": spec.noise,
        "failure_injected_at": getattr(policy, "failure_injected_at", None), "failure_event": failure_event,
        "canonical_steps": list(getattr(env, "canonical_steps", None) or env.privileged().get("canonical_steps", [])),
        "horizon": cfg.horizon, "render_size": cfg.render_size, "render_profile": cfg.render_profile,
        "post_success_steps": cfg.post_success_steps,
        "post_failure_steps": cfg.post_failure_steps, "collect_s": round(time.perf_counter() - t0, 3),
        "renders": n_render, "versions": versions, **appearance_meta(env, cfg.appearance),
    }
    model = getattr(policy, "path", None)  # a trained agent's checkpoint file
    if model is not None:
        meta["policy_model"] = str(model)
    return rec.finish(spec.episode_id, meta)


def _collect_one(root: str, spec: EpisodeSpec) -> dict[str, Any]:
    """Worker task: roll out and write one episode; an episode already on disk counts as done."""
    assert _WORKER is not None, "worker not initialised"
    cfg, make_env, make_policy = _WORKER
    if (episodes_dir(root) / spec.episode_id).exists():
        return {"episode_id": spec.episode_id, "status": "exists"}
    cpu0 = time.process_time()  # this worker's CPU, all its threads (the renderer's included)
    ep = rollout(spec, cfg, make_env=make_env, make_policy=make_policy)
    try:
        write_episode(root, ep)
    except DatasetError:
        return {"episode_id": spec.episode_id, "status": "exists"}
    return {"episode_id": spec.episode_id, "status": "written", "outcome": ep.meta["outcome"],
            "steps": ep.meta["n_steps"], "seconds": ep.meta["collect_s"], "cpu_s": time.process_time() - cpu0}


# ------------------------------------------------------------------------------------------------- driver


def check_resume(root: str | os.PathLike, plan: Sequence[EpisodeSpec], cfg: CollectConfig) -> list[EpisodeSpec]:
    """Episodes of ``plan`` still to collect; raises if what is on disk was collected differently.

    Raises:
        DatasetError: an existing episode's failure mode, noise, or a recording setting (frame size, stride,
            horizon, camera(s), render size and profile, appearance, policy, stopping rule) differs from the plan
            (a different seed, failure rate or option with the same ``--out``); the message names each setting
            that differs.
    """
    done = set(list_episode_ids(root))
    by_id = {s.episode_id: s for s in plan}
    for eid in sorted(done & set(by_id))[:50]:  # a sample is enough to catch a changed plan
        m = read_meta(episodes_dir(root) / eid)
        s = by_id[eid]
        planned = {"failure": s.failure, "noise": s.noise, "image_size": cfg.image_size,
                   "frame_every": cfg.frame_every, "horizon": cfg.horizon, "camera": cfg.views[0],
                   "render_size": cfg.render_size, "render_profile": cfg.render_profile, "policy": cfg.policy_label,
                   "appearance": cfg.appearance,
                   "post_success_steps": cfg.post_success_steps, "post_failure_steps": cfg.post_failure_steps}
        # a setting an older dataset did not record counts as unchanged; it had one view, of its camera (one view
        # on both sides: `camera` says it all)
        disk_views = m.get("views") or [m.get("camera")]
        if max(len(disk_views), len(cfg.views)) > 1:
            planned["views"], m = list(cfg.views), {**m, "views": disk_views}
        diffs = [f"{k}: on disk {m[k]!r}, now {v!r}" for k, v in planned.items() if k in m and m[k] != v]
        if diffs:
            raise DatasetError(f"{root} already holds episode {eid} collected differently ({'; '.join(diffs)}); "
                               f"resume with the same options, or collect into another --out")
    return [s for s in plan if s.episode_id not in done]


def collect(plan: Sequence[EpisodeSpec], root: str | os.PathLike, cfg: CollectConfig, workers: int = 1,
            progress_bar: bool = False, max_restarts: int = 5, make_env: EnvFactory | None = None,
            make_policy: PolicyFactory | None = None, ray: RayOptions | None = None) -> dict[str, Any]:
    """Collect the episodes of ``plan`` into the dataset folder ``root``, resuming what is there.

    Args:
        plan: from :func:`plan_episodes`.
        root: the dataset folder.
        cfg: recording options.
        workers: local worker processes (0 = in this process); ignored with ``ray``.
        progress_bar: show a tqdm bar.
        max_restarts: new pools to start after a worker dies before giving up.
        make_env, make_policy: the env and policy factories (module-level functions; defaults only for
            ``cfg.synthetic``).
        ray: run each episode as a Ray task on this cluster instead (:mod:`primo_loop.executors`); ``root``
            must be a folder every node sees (checked), as the workers write the episodes there.

    Returns:
        A summary: episodes planned, already there, written, failed to collect, outcomes, local pool restarts,
        Ray task retries (tasks resubmitted after their worker or node was lost), the executor, wall time, and
        ``cpu_s``: the CPU seconds of the written episodes, in whichever process ran them (what sizes a collection
        on a machine shared with other jobs, where wall time does not).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"Expected `workers` to be an integer >= 0 (0: in this process), actually: {workers!r}")
    factories = _factories(cfg, make_env, make_policy)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    clean_stale_tmp(root)
    pending = check_resume(root, plan, cfg)
    already = len(plan) - len(pending)
    if ray is not None:  # joins the cluster: a bad address or an unshared folder stops here, in one line
        check_shared_folder(root, ray)
    written, errors, outcomes, restarts, retries, cpu_s = 0, {}, {}, 0, 0, 0.0
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(plan), initial=already, desc=f"collect {root.name}", unit="ep")

    def done_one(spec: EpisodeSpec, res: dict[str, Any]) -> None:
        nonlocal written, cpu_s
        if res["status"] == "written":
            written += 1
            cpu_s += res.get("cpu_s", 0.0)
            outcomes[res["outcome"]] = outcomes.get(res["outcome"], 0) + 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(outcomes)

    def failed_one(spec: EpisodeSpec, exc: BaseException) -> None:
        errors[spec.episode_id] = f"{type(exc).__name__}: {exc}"
        logger.error("episode %s failed: %s", spec.episode_id, errors[spec.episode_id])

    def refresh() -> list[EpisodeSpec]:  # after a worker died: what is left, per the disk
        clean_stale_tmp(root)
        left = [s for s in check_resume(root, plan, cfg) if s.episode_id not in errors]
        if bar is not None:
            bar.n = len(plan) - len(left) - len(errors)
            bar.refresh()
        return left

    task, init = partial(_collect_one, str(root)), dict(initializer=_worker_init, initargs=(cfg, *factories))
    if ray is not None:
        retries = run_ray(task, pending, ray, on_result=done_one, on_error=failed_one, **init)
    elif workers <= 0:
        _worker_init(cfg, *factories)
        for spec in pending:
            try:
                done_one(spec, task(spec))
            except Exception as exc:  # noqa: BLE001 - one bad episode must not end the run
                failed_one(spec, exc)
    else:
        restarts = run_pool(task, pending, workers=workers, on_result=done_one, on_error=failed_one, refresh=refresh,
                            max_restarts=max_restarts, **init)
    if bar is not None:
        bar.close()
    clean_stale_tmp(root)  # again: a writer of a killed run may have been dying (unreaped) at the start
    index = write_index(root)
    executor = f"ray:{ray.address}" if ray is not None else ("in-process" if workers <= 0 else f"pool:{workers}")
    return {"planned": len(plan), "already_there": already, "written": written, "errors": errors,
            "outcomes_written": outcomes, "episodes_on_disk": index["n_episodes"], "worker_restarts": restarts,
            "task_retries": retries, "executor": executor, "wall_s": round(time.time() - t0, 1),
            "cpu_s": round(cpu_s, 1), "config": asdict(cfg)}
