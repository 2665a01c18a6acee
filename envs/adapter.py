"""RobosuiteEnv: a robosuite task as a Gymnasium environment (our own adapter; robosuite's GymWrapper
fails gymnasium's checks, reports the horizon as ``terminated`` and does not seed ``reset``).

Observations: ``"state"`` is a float32 vector (robosuite's ``object-state`` + ``robot0_proprio-state``),
``"pixels"`` a uint8 [H, W, 3] upright RGB frame of ``camera``, ``"both"`` a Dict of the two. Frames are
rendered only when asked for (``render_frame``) or when the observation needs them, under the env's
``render_profile`` (``envs/render.py``: ``"fast"``, the default, or ``"default"``, MuJoCo's full scene as
robosuite draws it). With ``appearance="train"`` or ``"heldout"`` every reset shows a look drawn from the reset
seed (``envs/appearance.py``: colours, light, camera pose) and every frame carries that look's pixel noise.

``info`` at reset and after every step holds ``is_success``, ``oracle/progress``, ``oracle/failed`` and
``oracle/stage``; ``privileged()`` returns the full oracle state (see ``envs/tasks/base.py``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.appearance import Look, SceneLook, add_noise, check_appearance, noise_rng, sample_look
from envs.render import RenderProfile, SceneRenderer, get_profile
from envs.robots import GRIPPERS, ROBOTS, controller_config, fix_model
from envs.tasks import SPECS, SimView, TaskSpec
from primo_loop.errors import ConfigError, check_choice
from primo_loop.views import normalize_views, tile_views

logger = logging.getLogger(__name__)

OBS_MODES = ("state", "pixels", "both")
STATE_KEYS = ("object-state", "robot0_proprio-state")


def _import_robosuite():
    """Import robosuite without its import-time chatter ("No private macro file", "Could not load the
    mink-based whole-body IK", controller parts a robot lacks): none of it concerns our adapter. Its logger
    is left at ERROR; raise it again with ``logging.getLogger("robosuite_logs").setLevel(...)``."""
    import sys

    if "robosuite" not in sys.modules:
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            import robosuite  # noqa: F401
        finally:
            logging.disable(previous)
        rs_log = logging.getLogger("robosuite_logs")
        rs_log.setLevel(logging.ERROR)
        rs_log.propagate = False
    return sys.modules["robosuite"]


#: Views that a robot's model names otherwise. The GR1 humanoid has a camera in each hand and no
#: ``robot0_eye_in_hand``; it grasps with its right hand (policies/scripted), so its right-hand camera gives that view.
#: The view keeps the asked name: a critic trained on ``robot0_eye_in_hand`` reads the humanoid's hand camera.
CAMERA_ALIASES: dict[str, tuple[str, ...]] = {"robot0_eye_in_hand": ("robot0_eye_in_right_hand",)}


def resolve_camera(view: str, names: Sequence[str]) -> str:
    """The model's camera that renders ``view``: the camera of that name, else its alias in this model
    (:data:`CAMERA_ALIASES`); neither is an UnknownNameError listing the model's cameras."""
    if view not in names:
        for alias in CAMERA_ALIASES.get(view, ()):
            if alias in names:
                return alias
    return check_choice("camera", view, names)


class RobosuiteEnv(gym.Env):
    """One robosuite task with one robot, with Gymnasium semantics.

    Args:
        task: a name from ``envs.TASKS``.
        robot: a name from ``envs.supported_robots(task)``.
        camera: camera for pixel observations and ``render_frame``.
        cameras: several cameras (e.g. ``("agentview", "robot0_eye_in_hand")``): ``render_frame()`` tiles their
            views left to right, each a square of ``image_size`` (a frame of ``[S, len(cameras) * S, 3]``;
            :mod:`primo_loop.views`), all under the env's render profile; the critic wrappers read the names from
            ``env.cameras``. Default: ``(camera,)``.
        image_size: side of the square frames, in pixels.
        horizon: steps until ``truncated=True`` (never ``terminated``); None = the task's default
            (``envs.task_spec(task).horizon``: Lift 200, Stack 250, PickPlaceCan 300).
        obs_mode: ``"state"``, ``"pixels"`` or ``"both"``.
        hard_reset: reload the MuJoCo model at each reset (slow; only for geometry randomisation).
        control_freq: control steps per simulated second.
        reward_shaping: robosuite's dense reward instead of its sparse one.
        terminate_on_success: end the episode (``terminated=True``) when the task succeeds.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` then returns ``render_frame()``).
        render_profile: how frames are drawn (``envs.render.PROFILES``): ``"fast"`` (the default) turns shadows,
            reflections, skybox and multisampling off and draws simplified meshes, ~8x cheaper on a CPU (the
            shipped compact critic reads it as well as the full scene: docs/results/throughput.md);
            ``"default"`` is MuJoCo's full scene as robosuite draws it; a ``RenderProfile`` gives a custom one.
        appearance: None (or ``"nominal"``): robosuite's look; ``"train"`` / ``"heldout"``: at each reset a look
            drawn from that split (``envs/appearance.py``) from the reset seed (from ``np_random`` without one),
            kept in ``look``; frames get its pixel noise, seeded per episode. Physics and the oracle never see it.
        **robosuite_kwargs: passed to ``robosuite.make`` (e.g. ``initialization_noise``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str, robot: str = "Panda", *, camera: str = "agentview",
                 cameras: Sequence[str] | None = None, image_size: int = 128,
                 horizon: int | None = None, obs_mode: str = "state", hard_reset: bool = False, control_freq: int = 20,
                 reward_shaping: bool = False, terminate_on_success: bool = False, render_mode: str | None = None,
                 render_profile: str | RenderProfile = "fast", appearance: str | None = None, **robosuite_kwargs: Any):
        task = check_choice("task", task, SPECS)
        robot = check_choice("robot", robot, ROBOTS)
        spec: TaskSpec = SPECS[task]
        spec.check_robot(robot)
        obs_mode = check_choice("obs_mode", obs_mode, OBS_MODES)
        self._profile = get_profile(render_profile)
        self.render_profile = self._profile.name
        self.appearance = check_appearance(appearance)
        self.look: Look | None = None
        horizon = spec.horizon if horizon is None else horizon
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"Expected `render_mode` in {self.metadata['render_modes']} or None, "
                              f"actually: {render_mode!r}")
        for name, value in (("image_size", image_size), ("horizon", horizon), ("control_freq", control_freq)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"Expected `{name}` to be a positive int, actually: {value!r}")

        robosuite = _import_robosuite()

        kwargs = dict(
            robots=robot,
            controller_configs=controller_config(robot),
            has_renderer=False,
            has_offscreen_renderer=False,  # frames come from our own renderer (envs/render.py), made lazily
            use_camera_obs=False,  # we render ourselves, only when needed
            control_freq=int(control_freq),
            horizon=int(horizon),
            ignore_done=True,  # the horizon is ours (truncated), robosuite would raise after it
            hard_reset=bool(hard_reset),
            reward_shaping=bool(reward_shaping),
        )
        if robot in GRIPPERS:
            kwargs["gripper_types"] = GRIPPERS[robot]
        kwargs.update(spec.env_kwargs)
        kwargs.update(robosuite_kwargs)
        kwargs.setdefault("seed", 0)  # object sizes are drawn at construction: same env in every process
        self.rs_env = robosuite.make(spec.env_name, **kwargs)

        self.spec_task = spec
        self.task, self.robot = task, robot
        names = self.rs_env.sim.model.camera_names
        self.cameras: tuple[str, ...] = normalize_views(cameras or (camera,), "cameras")
        self._camera_of = {c: resolve_camera(c, names) for c in self.cameras}  # view name -> the model's camera
        self.camera = self.cameras[0]
        self.image_size, self.horizon, self.obs_mode = int(image_size), int(horizon), obs_mode
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "render_fps": int(control_freq)}

        self._renderers: dict[RenderProfile, SceneRenderer] = {}
        self.raw_obs: dict[str, np.ndarray] = self.rs_env.reset()
        self._bind_sim()
        self.step_count = 0
        self.last_action: np.ndarray | None = None

        state_dim = self._state(self.raw_obs).shape[0]
        state_space = spaces.Box(-np.inf, np.inf, shape=(state_dim,), dtype=np.float32)
        width = self.image_size * len(self.cameras)
        pixel_space = spaces.Box(0, 255, shape=(self.image_size, width, 3), dtype=np.uint8)
        self.observation_space = {"state": state_space, "pixels": pixel_space,
                                  "both": spaces.Dict({"state": state_space, "pixels": pixel_space})}[obs_mode]
        lo, hi = self.rs_env.action_spec
        self.action_space = spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)

    # ----- Gymnasium API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._reseed(int(seed))
        self.raw_obs = self.rs_env.reset()
        if self.rs_env.hard_reset:
            self._bind_sim()  # the model (and its ids) was rebuilt
        self._new_look(seed)
        self.step_count = 0
        self.last_action = None
        self.oracle.reset()
        return self._obs(), self._info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape:
            raise ConfigError(f"Expected an action of shape {self.action_space.shape}, actually: {action.shape}")
        self.raw_obs, reward, _, _ = self.rs_env.step(action)
        self.step_count += 1
        self.last_action = action
        self.oracle.step(action)
        success = self.oracle.success_now
        terminated = bool(self.terminate_on_success and success)
        truncated = bool(self.step_count >= self.horizon and not terminated)
        return self._obs(), float(reward), terminated, truncated, self._info()

    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_frame()
        return None

    def close(self) -> None:
        self._close_renderers()
        rs_env = getattr(self, "rs_env", None)
        if rs_env is not None:
            rs_env.close()

    # ----- primo_loop API --------------------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self.spec_task.instruction

    @property
    def canonical_steps(self) -> tuple[str, ...]:
        return self.spec_task.canonical_steps

    def render_frame(self, camera: str | None = None, size: int | None = None,
                     profile: str | RenderProfile | None = None) -> np.ndarray:
        """An upright RGB frame, uint8 [size, size, 3], of ``camera`` drawn under render ``profile`` (default: the
        env's ``render_profile``); without ``camera``, the env's ``cameras`` tiled left to right, [size, V*size, 3]."""
        size = self.image_size if size is None else int(size)
        if camera is None and len(self.cameras) > 1:
            return tile_views([self.render_frame(c, size, profile) for c in self.cameras])
        view = self.camera if camera is None else camera
        cam = self._camera_of.get(view) or resolve_camera(view, self.rs_env.sim.model.camera_names)
        prof = self._profile if profile is None else get_profile(profile)
        renderer = self._renderers.get(prof)
        if renderer is None:
            rs = self.rs_env
            groups = (int(bool(rs.render_collision_mesh)), int(bool(rs.render_visual_mesh)), 1, 0, 0, 0)
            renderer = self._renderers[prof] = SceneRenderer(rs.sim.model._model, rs.sim.data._data, prof, groups)
        frame = renderer.render(cam, size)
        return frame if self.look is None else add_noise(frame, self.look.noise_std, self._noise)

    def privileged(self) -> dict[str, Any]:
        """Oracle state from the simulator: progress, failed, failure_event, stage, success, events, ..."""
        return self.oracle.snapshot()

    # ----- internals -------------------------------------------------------------------------------------
    def _close_renderers(self) -> None:
        for renderer in getattr(self, "_renderers", {}).values():
            renderer.close()
        self._renderers = {}

    def _bind_sim(self) -> None:
        self._close_renderers()  # a hard reset rebuilt the model: renderers are remade at the next frame
        fix_model(self.robot, self.rs_env.sim)
        self.sim_view = SimView(self.rs_env)
        self.oracle = self.spec_task.oracle(self.sim_view, self.spec_task, self.robot)
        self.oracle.reset()
        self._scene_look = None if self.appearance == "nominal" else SceneLook(self.rs_env)

    def _new_look(self, seed: int | None) -> None:
        if self._scene_look is None:
            return
        look_seed = int(self.np_random.integers(2**31)) if seed is None else int(seed)
        self.look = sample_look(look_seed, self.appearance)
        self._noise = noise_rng(look_seed)
        self._scene_look.apply(self.look)

    def _reseed(self, seed: int) -> None:
        # robosuite samples object placements and initial joint noise from env.rng (shared with samplers)
        rng = np.random.default_rng(seed)
        self.rs_env.rng = rng
        stack = [getattr(self.rs_env, "placement_initializer", None)]
        while stack:
            sampler = stack.pop()
            if sampler is None:
                continue
            sampler.rng = rng
            stack.extend(getattr(sampler, "samplers", {}).values())

    def _state(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(raw[k], dtype=np.float32).ravel() for k in STATE_KEYS if k in raw])

    def _obs(self):
        if self.obs_mode == "state":
            return self._state(self.raw_obs)
        if self.obs_mode == "pixels":
            return self.render_frame()
        return {"state": self._state(self.raw_obs), "pixels": self.render_frame()}

    def _info(self) -> dict[str, Any]:
        o = self.oracle
        return {"is_success": bool(o.success_now), "oracle/progress": float(o.progress),
                "oracle/failed": bool(o.failed), "oracle/stage": o.stage}
