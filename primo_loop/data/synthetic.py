"""Synthetic episodes: a drawn "gripper lifts a block" scene whose pixels follow the progress label.

For tests and smoke runs of the data tools, the trainer and the evaluator without a simulator. The scene is
deliberately simple: a dark gripper bar descends onto a red block, then both rise; a failed attempt drops the
block back to the table.
"""
from __future__ import annotations

import numpy as np

from primo_loop.data.episode import Episode, EpisodeRecorder

INSTRUCTIONS = {"SynthLift": "lift the red block", "SynthPush": "push the red block to the right"}


def draw_scene(progress: float, dropped: bool, size: int = 32, task: str = "SynthLift",
               shade: int = 0) -> np.ndarray:
    """One uint8 ``[size, size, 3]`` frame of the synthetic scene at ``progress`` (0-1)."""
    img = np.full((size, size, 3), 200 - shade, np.uint8)
    table = int(size * 0.75)
    img[table:] = (120, 90, 60)
    b = max(2, size // 8)
    cx = size // 2
    # gripper descends during the first 40 % of progress, then carries the block up
    reach = min(progress / 0.4, 1.0)
    lift = max(0.0, (progress - 0.4) / 0.6)
    if task == "SynthPush":
        bx = int(cx - size * 0.25 + lift * size * 0.4)
        by = table - b
    else:
        bx = cx
        by = int(table - b - lift * size * 0.4)
    if dropped:
        by = table - b
    gy = int(2 + reach * (table - b - 6)) if lift == 0 or dropped else by - 4
    gx = bx if not dropped else cx
    img[max(0, gy):max(0, gy) + 3, max(0, gx - b):gx + b] = (30, 30, 30)
    img[by:by + b, bx - b // 2:bx + b - b // 2] = (220, 30, 30)
    return img


def make_episode(seed: int, task: str = "SynthLift", robot: str = "SynthBot", n_steps: int = 40,
                 frame_every: int = 2, image_size: int = 32, failure: str | None = None) -> Episode:
    """A synthetic episode (deterministic given the arguments).

    Successful episodes reach progress 1 at about 70 % of the horizon; ``failure="drop"`` reaches about 0.6,
    then drops the block (progress falls to 0.3, ``failed`` from then on).
    """
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0.8, 1.2) / (0.7 * n_steps)
    drop_at = int(n_steps * rng.uniform(0.45, 0.6)) if failure else None
    shade = int(rng.integers(0, 30))
    rec = EpisodeRecorder(image_size=image_size, frame_every=frame_every)
    progress, failed = 0.0, False
    rec.reset(draw_scene(0.0, False, image_size, task, shade), {"progress": 0.0, "failed": False, "events": []})
    for t in range(1, n_steps + 1):
        if drop_at is not None and t >= drop_at:
            failed = True
            progress = 0.3
        else:
            progress = min(1.0, progress + speed)
        events = (["grasped"] if progress >= 0.4 or failed else []) + (["dropped"] if failed else [])
        p = {"progress": progress, "failed": failed, "events": events, "stage": ("reach", "grasp", "lift", "done")[min(3, int(progress * 3))]}
        frame = draw_scene(progress, failed, image_size, task, shade) if rec.wants_frame(t) else None
        rec.step(rng.normal(size=4).astype(np.float32), float(progress), p, success=progress >= 1.0, frame=frame)
    final = draw_scene(progress, failed, image_size, task, shade)
    meta = {"task": task, "instruction": INSTRUCTIONS.get(task, task), "robot": robot, "camera": "synthetic",
            "seed": seed, "failure": failure, "canonical_steps": ["reach the block", "grasp it", "lift it"]}
    return rec.finish(f"{task}-{robot}-s{seed:06d}", meta, final_frame=final)


def make_dataset(root, n_episodes: int = 8, seed: int = 0, failure_rate: float = 0.5, **kwargs) -> list[str]:
    """Write ``n_episodes`` synthetic episodes into the dataset folder ``root``; return their ids."""
    from primo_loop.data.dataset import write_episode, write_index

    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n_episodes):
        failure = "drop" if rng.random() < failure_rate else None
        ep = make_episode(seed + i, failure=failure, **kwargs)
        write_episode(root, ep)
        ids.append(ep.episode_id)
    write_index(root)
    return ids


class SyntheticEnv:
    """The synthetic scene behind the env contract that collection uses (``reset``, ``step``,
    ``render_frame``, ``privileged``, ``instruction``), for tests of collection without a simulator.

    Action ``[a]``: ``a > 0`` advances the task by ``a / 30`` of its progress; ``a < 0`` drops the block (a
    failure). ``step_delay`` seconds of sleep per step make runs long enough to interrupt in tests.
    """

    def __init__(self, task: str = "SynthLift", robot: str = "SynthBot", image_size: int = 64,
                 horizon: int = 60, step_delay: float = 0.0, cameras: tuple[str, ...] = ()):
        self.task, self.robot, self.image_size, self.horizon = task, robot, image_size, horizon
        self.cameras = tuple(cameras) or ("synthetic",)  # more than one: frames tile them (primo_loop.views)
        self.step_delay = step_delay
        self.instruction = INSTRUCTIONS.get(task, task)
        self.canonical_steps = ["reach the block", "grasp it", "lift it"]
        self.failure_modes = ("drop",)
        self.reset(seed=0)

    def reset(self, seed: int | None = None):
        rng = np.random.default_rng(seed)
        self.shade = int(rng.integers(0, 30))
        self.progress, self.dropped, self.step_count = 0.0, False, 0
        self.failure_event: str | None = None
        return np.zeros(1, np.float32), self._info()

    def step(self, action):
        import time

        if self.step_delay:
            time.sleep(self.step_delay)
        a = float(np.asarray(action).ravel()[0])
        self.step_count += 1
        if a < 0 and not self.dropped:
            self.dropped, self.failure_event = True, "the block was dropped"
            self.progress = 0.3
        elif not self.dropped:
            self.progress = min(1.0, self.progress + a / 30)
        return np.zeros(1, np.float32), float(self.progress), False, self.step_count >= self.horizon, self._info()

    def _info(self):
        return {"is_success": self.progress >= 1.0, "oracle/progress": self.progress,
                "oracle/failed": self.dropped, "oracle/stage": self.privileged()["stage"]}

    def render_frame(self, camera=None, size=None):
        img = draw_scene(self.progress, self.dropped, size or self.image_size, self.task, self.shade)
        if camera is not None or len(self.cameras) < 2:
            return img
        # the second and later views: the scene mirrored, a shade darker per view (enough to tell them apart)
        return np.concatenate([img] + [np.ascontiguousarray(img[:, ::-1] // (i + 1))
                                       for i in range(1, len(self.cameras))], axis=1)

    def privileged(self):
        events = (["the block was grasped"] if self.progress >= 0.4 or self.dropped else []) + \
            ([self.failure_event] if self.dropped else [])
        return {"progress": self.progress, "failed": self.dropped, "failure_event": self.failure_event,
                "stage": ("reach", "grasp", "lift", "done")[min(3, int(self.progress * 3))],
                "success": self.progress >= 1.0, "events": events, "canonical_steps": list(self.canonical_steps)}

    def close(self):
        pass


class SyntheticPolicy:
    """Drives :class:`SyntheticEnv`; ``failure="drop"`` drops the block at a random step."""

    def __init__(self, env: SyntheticEnv, failure: str | None = None, seed: int = 0, noise: float = 0.0):
        self.env, self.failure, self.noise = env, failure, noise
        rng = np.random.default_rng([seed, 7])
        self._rng = rng
        self._drop_at = int(rng.integers(10, 20)) if failure else None
        self.failure_injected_at: int | None = None

    def act(self, obs=None):
        if self._drop_at is not None and self.env.step_count + 1 >= self._drop_at and self.failure_injected_at is None:
            self.failure_injected_at = self.env.step_count + 1
            return np.array([-1.0], np.float32)
        return np.array([1.0 + self.noise * self._rng.normal()], np.float32)


def synthetic_env(task: str, robot: str, cfg) -> SyntheticEnv:
    """Env factory for :func:`primo_loop.data.collect.collect` (``cfg``: its ``CollectConfig``)."""
    return SyntheticEnv(task, robot, image_size=cfg.render_size, horizon=cfg.horizon, step_delay=cfg.step_delay,
                        cameras=tuple(getattr(cfg, "cameras", ())))


def synthetic_policy(env: SyntheticEnv, spec, cfg) -> SyntheticPolicy:
    """Policy factory for :func:`primo_loop.data.collect.collect` (``spec``: an ``EpisodeSpec``)."""
    return SyntheticPolicy(env, failure=spec.failure, seed=spec.seed, noise=spec.noise)
