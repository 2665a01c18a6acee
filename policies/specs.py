"""One resolver of policy specs: ``"scripted"`` (waypoints with failure injection), ``"random"``, or a run folder
of ``scripts/train_agent.py`` (the trained agent), for every script that takes ``--policy``.

    spec = check_policy_spec("runs/sac", steps=20_000)       # validate before paying for a simulator
    policy = resolve_policy(spec, env, task="Lift", robot="Panda", seed=3, noise=0.1)

Also the two factories that :func:`primo_loop.data.collect.collect` is handed for robosuite collection
(:func:`collect_env`, :func:`collect_policy`); the library itself imports nothing from ``envs`` or ``policies``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies import POLICIES, make_policy
from primo_loop.errors import ConfigError, UnknownNameError

BUILTIN = POLICIES
TRAINED = "trained"


@dataclass(frozen=True)
class PolicySpec:
    """A checked policy spec.

    Attributes:
        kind: "scripted", "random" or "trained".
        source: the name, or the run folder of a trained agent.
        steps: with a run folder: its checkpoint at this many env steps (None: the final model).
    """

    kind: str
    source: str
    steps: int | None = None

    @property
    def injects_failures(self) -> bool:
        """Only the scripted policy can inject a failure."""
        return self.kind == "scripted"


def check_policy_spec(spec: str | PolicySpec, steps: int | None = None) -> PolicySpec:
    """Check ``spec`` ("scripted", "random" or a run folder of ``scripts/train_agent.py``) without loading a model.

    Raises:
        UnknownNameError: neither a built-in policy nor a folder (lists the choices and the closest).
        ConfigError: a folder that is not a run folder, or ``steps`` with a built-in policy.
    """
    if isinstance(spec, PolicySpec):
        return spec
    for name in BUILTIN:
        if spec.lower() == name:
            if steps is not None:
                raise ConfigError(f"Expected no checkpoint steps with policy {name!r}, actually: {steps}; "
                                  f"--policy-steps needs --policy RUN_FOLDER (a run of scripts/train_agent.py)")
            return PolicySpec(name, name)
    path = Path(spec)
    if not path.exists() and "/" not in spec:
        raise UnknownNameError("policy", spec, [*BUILTIN, "RUN_FOLDER"])
    if not (path / "config.json").is_file():
        raise ConfigError(f"Expected `policy` 'scripted', 'random' or a run folder of scripts/train_agent.py "
                          f"(with config.json), actually: {spec!r}")
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise ConfigError(f"Expected checkpoint steps >= 1, actually: {steps!r}")
    return PolicySpec(TRAINED, str(path), steps)


_TRAINED: dict[tuple[str, int | None], Any] = {}


def load_trained(spec: PolicySpec) -> Any:
    """The run folder's agent, loaded once per process (collection workers roll out many episodes each)."""
    key = (spec.source, spec.steps)
    if key not in _TRAINED:
        from policies.sb3 import TrainedPolicy  # lazy: SB3 and torch only for a trained agent

        _TRAINED[key] = TrainedPolicy(spec.source, spec.steps)
    return _TRAINED[key]


def resolve_policy(spec: str | PolicySpec, env: Any, *, task: str | None = None, robot: str | None = None,
                   failure: str | None = None, seed: int = 0, noise: float = 0.0, steps: int | None = None) -> Any:
    """A policy for ``env`` from a spec, reset for an episode.

    Args:
        spec: "scripted", "random", a run folder, or a :class:`PolicySpec`.
        env: the env it acts in (scripted and random policies read it; a trained agent acts in the action space
            it was trained in: roll it out in ``policy.wrap_env(env)``).
        task, robot: with a run folder: checked against what the agent was trained on.
        failure: the failure mode to inject (scripted only).
        seed: the episode's seed.
        noise: action noise std (scripted and trained).
        steps: with a run folder given as a string: its checkpoint at this many env steps.

    Raises:
        ConfigError: a failure asked of a policy that cannot inject one; an agent trained on another task/robot.
    """
    spec = check_policy_spec(spec, steps)
    if failure is not None and not spec.injects_failures:
        raise ConfigError(f"Policy {spec.source!r} injects no failures (asked for {failure!r}); use the scripted "
                          f"policy or collect with --failure-rate 0")
    if spec.kind == "scripted":
        return make_policy("scripted", env, failure=failure, seed=seed, noise=noise)
    if spec.kind == "random":
        return make_policy("random", env, seed=seed)
    agent = load_trained(spec)
    if task is not None and robot is not None:
        agent.check_task(task, robot)
    agent.noise = noise
    agent.reset(seed=seed)
    return agent


# --------------------------------------------------------------------------------- collection factories

def collect_env(task: str, robot: str, cfg: Any) -> Any:
    """The robosuite env a collection worker records from (``cfg``: a ``CollectConfig``)."""
    import envs

    return envs.make_env(task, robot, camera=cfg.camera, image_size=cfg.render_size, horizon=cfg.horizon,
                         obs_mode="state", hard_reset=False, render_profile=cfg.render_profile,
                         appearance=cfg.appearance,
                         **({"cameras": tuple(cfg.cameras)} if getattr(cfg, "cameras", ()) else {}))


def collect_policy(env: Any, episode: Any, cfg: Any) -> Any:
    """The policy of one collected episode (``episode``: an ``EpisodeSpec``; ``cfg``: a ``CollectConfig``)."""
    return resolve_policy(cfg.policy, env, task=episode.task, robot=episode.robot, failure=episode.failure,
                          seed=episode.seed, noise=episode.noise, steps=cfg.policy_steps)


def failure_modes(task: str) -> tuple[str, ...]:
    """The scripted failure modes of ``task`` (for ``plan_episodes(modes_for_task=...)``)."""
    import envs

    return tuple(envs.task_spec(task).failure_modes)
