"""Render profiles for the critic's frames, and the offscreen renderer that draws them.

A frame of a robosuite scene on a CPU (Mesa llvmpipe) is bound by geometry, not pixels: the Lift scene's
visual meshes hold ~180,000 faces and MuJoCo's default scene adds shadows, reflections and a skybox, for
~46 ms per 84 px agentview frame, the cost of ~5-9 physics steps. Two profiles:

- ``"default"``: MuJoCo's scene as robosuite draws it today, pixel for pixel.
- ``"fast"``: shadows, reflections and skybox off, no multisampling, and every mesh simplified to at most
  ``max_mesh_faces`` faces by vertex clustering (done once per model and cached in the process); materials,
  colours and textures are kept, so the robot, the gripper and the objects look as they did, only coarser
  and with jagged edges.

Only the meshes uploaded to the GL context are simplified: the scene is built from the live model and data
every frame, so physics, poses, colours and anything else read from the model follow the simulator.

    renderer = SceneRenderer(model, data, profile="fast")
    frame = renderer.render("agentview", 84)  # upright RGB uint8 [84, 84, 3]
    renderer.close()
"""
from __future__ import annotations

import atexit
import copy
import hashlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from primo_loop.errors import ConfigError, check_choice

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderProfile:
    """How a frame is drawn.

    Attributes:
        name: the profile's name (a key of ``PROFILES``).
        shadows: MuJoCo's shadow pass (``mjRND_SHADOW``).
        reflections: reflective materials (``mjRND_REFLECTION``), e.g. the floor.
        skybox: the skybox texture (``mjRND_SKYBOX``).
        max_mesh_faces: each mesh is simplified to at most this many faces; None draws meshes as loaded.
        multisample: draw with the model's multisampling (``vis.quality.offsamples``, 4 in robosuite) for
            smooth edges; off, edges are jagged and a frame is ~30% cheaper.
    """

    name: str
    shadows: bool = True
    reflections: bool = True
    skybox: bool = True
    max_mesh_faces: int | None = None
    multisample: bool = True


PROFILES: dict[str, RenderProfile] = {
    "default": RenderProfile("default"),
    "fast": RenderProfile("fast", shadows=False, reflections=False, skybox=False, max_mesh_faces=400,
                          multisample=False),
}


def get_profile(profile: str | RenderProfile) -> RenderProfile:
    """The profile named ``profile`` (a RenderProfile passes through); UnknownNameError lists the choices."""
    if isinstance(profile, RenderProfile):
        return profile
    if not isinstance(profile, str):
        raise ConfigError(f"Expected `render_profile` to be one of {sorted(PROFILES)}, actually: {profile!r}")
    return PROFILES[check_choice("render_profile", profile, PROFILES)]


# ----- mesh simplification -----------------------------------------------------------------------------------
def cluster_mesh(verts: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simplify a triangle mesh by vertex clustering on a grid of side ``cell``.

    The vertices in one grid cell merge into one (the cluster's first vertex, moved to the cluster's mean);
    faces whose corners merge are dropped, as are repeated faces.

    Returns:
        ``(new_faces, source, new_verts)``: faces as indices into the original vertex array, the index of
        each kept face in ``faces`` (to carry its normals and texture coordinates), and the vertex array with
        each cluster's representative moved to the cluster mean.

    >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.01, 0.01, 0]], float)
    >>> f, src, _ = cluster_mesh(v, np.array([[0, 1, 2], [3, 1, 2]]), 0.5)
    >>> f.tolist(), src.tolist()
    ([[0, 1, 2]], [0])
    """
    verts = np.asarray(verts, dtype=np.float64)
    grid = np.floor((verts - verts.min(axis=0)) / cell).astype(np.int64)
    dims = grid.max(axis=0) + 1
    keys = (grid[:, 0] * dims[1] + grid[:, 1]) * dims[2] + grid[:, 2]  # one int per cell: a fast 1-D unique
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rep = first[inverse]
    merged = rep[np.asarray(faces, dtype=np.int64)]
    ok = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
    source = np.flatnonzero(ok)
    tri = np.sort(merged[source], axis=1)
    n = len(verts)
    _, uniq = np.unique((tri[:, 0] * n + tri[:, 1]) * n + tri[:, 2], return_index=True)
    source = source[np.sort(uniq)]
    counts = np.bincount(inverse)
    means = np.stack([np.bincount(inverse, weights=verts[:, k]) for k in range(3)], axis=1) / counts[:, None]
    new_verts = verts.copy()
    new_verts[first] = means
    return merged[source], source, new_verts


def simplify_mesh(verts: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cluster_mesh`` with the finest grid that leaves at most ``max_faces`` faces (the grid's side starts
    where a surface of the mesh's area would keep about twice that many, and grows by 1.2x until the budget
    holds). A mesh already within budget comes back unchanged."""
    faces = np.asarray(faces)
    if len(faces) <= max_faces:
        return faces, np.arange(len(faces)), np.asarray(verts, dtype=np.float64)
    verts = np.asarray(verts, dtype=np.float64)
    tri = verts[faces]
    area = 0.5 * float(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum())
    cell = max(np.sqrt(area / max_faces), 1e-9)
    while True:
        new_faces, source, new_verts = cluster_mesh(verts, faces, cell)
        if len(new_faces) <= max_faces:
            return new_faces, source, new_verts
        cell *= 1.2


_SIMPLIFIED: dict[str, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}
CACHE_STATS = {"hits": 0, "misses": 0}


def _mesh_key(model, max_faces: int) -> str:
    h = hashlib.sha1(f"cluster-v1/{max_faces}".encode())
    for name in ("mesh_vertadr", "mesh_vertnum", "mesh_faceadr", "mesh_facenum", "mesh_vert", "mesh_face"):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()


def simplified_model(model, max_faces: int):
    """A copy of MjModel ``model`` whose meshes have at most ``max_faces`` faces each (for drawing only).

    The simplification is computed once per distinct set of meshes and kept for the life of the process, so
    hard resets and further envs of the same scene reuse it (``CACHE_STATS`` counts hits and misses).
    """
    key = _mesh_key(model, max_faces)
    plan = _SIMPLIFIED.get(key)
    if plan is None:
        CACHE_STATS["misses"] += 1
        plan = []
        for k in range(model.nmesh):
            va, vn = model.mesh_vertadr[k], model.mesh_vertnum[k]
            fa, fn = model.mesh_faceadr[k], model.mesh_facenum[k]
            if fn <= max_faces:
                continue
            new_faces, source, new_verts = simplify_mesh(model.mesh_vert[va:va + vn], model.mesh_face[fa:fa + fn],
                                                         max_faces)
            plan.append((k, new_faces.astype(np.int32), source, new_verts.astype(np.float32)))
        _SIMPLIFIED[key] = plan
        before = int(model.mesh_facenum.sum())
        after = before - sum(int(model.mesh_facenum[k]) - len(f) for k, f, _, _ in plan)
        logger.info("simplified %d meshes: %d -> %d faces", len(plan), before, after)
    else:
        CACHE_STATS["hits"] += 1
    out = copy.copy(model)
    for k, new_faces, source, new_verts in plan:
        va, fa, n = out.mesh_vertadr[k], out.mesh_faceadr[k], len(new_faces)
        old = slice(fa, fa + out.mesh_facenum[k])
        normals, texcoords = out.mesh_facenormal[old][source], out.mesh_facetexcoord[old][source]
        out.mesh_vert[va:va + len(new_verts)] = new_verts
        out.mesh_face[fa:fa + n] = new_faces
        out.mesh_facenormal[fa:fa + n] = normals
        out.mesh_facetexcoord[fa:fa + n] = texcoords
        out.mesh_facenum[k] = n
    return out


# ----- the renderer ------------------------------------------------------------------------------------------
_LIVE: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_live_renderers() -> None:
    # A renderer nobody closed would be freed at interpreter teardown, after mujoco's EGL display is terminated
    # (its own exit hook), and mujoco's finalizer then fails noisily ("Exception ignored ... EGLError"). This hook
    # is registered after mujoco's (at the first GL context), so it runs before it.
    for renderer in list(_LIVE):
        renderer.close()


class SceneRenderer:
    """Offscreen frames of a live MuJoCo model/data pair under one render profile.

    The GL context is made at the first ``render`` (a state-only env never makes one) and the offscreen
    buffer grows to the largest frame asked for.

    Args:
        model: the live ``mujoco.MjModel`` (robosuite: ``sim.model._model``).
        data: the live ``mujoco.MjData``.
        profile: a name from ``PROFILES`` or a ``RenderProfile``.
        geomgroup: which geom groups are drawn (six 0/1 flags; default: MuJoCo's, groups 0-2).
    """

    def __init__(self, model, data, profile: str | RenderProfile = "default", geomgroup: Any = None):
        import mujoco

        self._mj = mujoco
        self.profile = get_profile(profile)
        self.model, self.data = model, data
        self.scene = mujoco.MjvScene(model, maxgeom=10000)
        flags = mujoco.mjtRndFlag
        for flag, on in ((flags.mjRND_SHADOW, self.profile.shadows), (flags.mjRND_REFLECTION, self.profile.reflections),
                         (flags.mjRND_SKYBOX, self.profile.skybox)):
            if not on:
                self.scene.flags[flag] = 0
        self.option = mujoco.MjvOption()
        if geomgroup is not None:
            self.option.geomgroup[:] = np.asarray(geomgroup, dtype=np.uint8)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._gl = None
        self._con = None
        self._side = 0
        self.uploaded_faces: int | None = None  # mesh faces in the GL context (known after the first frame)

    def render(self, camera: str | int, size: int) -> np.ndarray:
        """An upright RGB frame, uint8 [size, size, 3], from fixed camera ``camera`` (name or id)."""
        mj = self._mj
        cam_id = camera if isinstance(camera, (int, np.integer)) else mj.mj_name2id(
            self.model, mj.mjtObj.mjOBJ_CAMERA, camera)
        if not 0 <= cam_id < self.model.ncam:
            raise ConfigError(f"Expected a camera of the model (0..{self.model.ncam - 1} or its name), "
                              f"actually: {camera!r}")
        self._ensure_context(int(size))
        self.camera.fixedcamid = int(cam_id)
        mj.mjv_updateScene(self.model, self.data, self.option, None, self.camera, mj.mjtCatBit.mjCAT_ALL, self.scene)
        rect = mj.MjrRect(0, 0, size, size)
        self._gl.make_current()
        mj.mjr_render(rect, self.scene, self._con)
        img = np.empty((size, size, 3), dtype=np.uint8)
        mj.mjr_readPixels(img, None, rect, self._con)
        return np.ascontiguousarray(img[::-1])  # OpenGL reads bottom-up: flip once, here

    def _ensure_context(self, size: int) -> None:
        if self._con is not None and size <= self._side:
            return
        mj = self._mj
        side = max(size, self._side)
        if self._gl is None:
            self._gl = mj.GLContext(side, side)
            _LIVE.add(self)
            if not _EXIT_HOOK:
                atexit.register(_close_live_renderers)
                _EXIT_HOOK.append(True)
        self._gl.make_current()
        if self._con is not None:
            self._con.free()
        if self.profile.max_mesh_faces is None:
            upload = copy.copy(self.model)
        else:
            upload = simplified_model(self.model, self.profile.max_mesh_faces)
        upload.vis.global_.offwidth = upload.vis.global_.offheight = side
        if not self.profile.multisample:
            upload.vis.quality.offsamples = 0
        self.uploaded_faces = int(upload.mesh_facenum.sum())
        self._con = mj.MjrContext(upload, mj.mjtFontScale.mjFONTSCALE_150)
        mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._side = side

    def close(self) -> None:
        """Free the GL resources (idempotent)."""
        if self._con is not None:
            self._gl.make_current()
            self._con.free()
            self._con = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
