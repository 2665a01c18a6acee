"""envs/render.py: profile names, mesh simplification and its cache, the offscreen renderer on a tiny MuJoCo
scene, and a quiet exit (the env-level checks of frames are in test_adapter.py)."""
from __future__ import annotations

import numpy as np
import pytest

from envs import render as R
from primo_loop.errors import ConfigError, UnknownNameError

mujoco = pytest.importorskip("mujoco")


def sphere(n_lat: int = 40, n_lon: int = 60, radius: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere: (verts, faces) with 2 * n_lon * (n_lat - 1) faces."""
    verts = [[0.0, 0.0, radius]]
    for i in range(1, n_lat):
        theta = np.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * np.pi * j / n_lon
            verts.append([radius * np.sin(theta) * np.cos(phi), radius * np.sin(theta) * np.sin(phi),
                          radius * np.cos(theta)])
    verts.append([0.0, 0.0, -radius])
    ring = lambda i, j: 1 + (i - 1) * n_lon + j % n_lon  # noqa: E731
    faces = [[0, ring(1, j), ring(1, j + 1)] for j in range(n_lon)]
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, c, b], [b, c, d]]
    last = len(verts) - 1
    faces += [[last, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)] for j in range(n_lon)]
    return np.asarray(verts), np.asarray(faces)


def scene_xml() -> str:
    verts, faces = sphere()
    v = " ".join(f"{x:.6f}" for x in verts.ravel())
    f = " ".join(str(i) for i in faces.ravel())
    return f"""
<mujoco>
  <asset>
    <mesh name="ball" vertex="{v}" face="{f}"/>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.3 0.5 0.7" rgb2="0 0 0" width="64" height="64"/>
    <material name="floor" rgba="0.6 0.6 0.6 1" reflectance="0.5"/>
  </asset>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" castshadow="true"/>
    <geom type="plane" size="1 1 0.1" material="floor"/>
    <body name="ball" pos="0 0 0.2">
      <freejoint/>
      <geom type="mesh" mesh="ball" rgba="0.8 0.1 0.1 1"/>
    </body>
    <camera name="front" pos="0 -0.8 0.5" xyaxes="1 0 0 0 0.5 1"/>
  </worldbody>
</mujoco>"""


@pytest.fixture(scope="module")
def tiny():
    model = mujoco.MjModel.from_xml_string(scene_xml())
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def test_profile_names_are_validated():
    assert R.get_profile("fast").name == "fast" and R.get_profile("FAST").name == "fast"
    assert R.get_profile("default").max_mesh_faces is None
    with pytest.raises(UnknownNameError, match="valid: default, fast.*Did you mean 'fast'"):
        R.get_profile("fsat")
    with pytest.raises(ConfigError, match="render_profile"):
        R.get_profile(None)


def test_cluster_mesh_keeps_a_valid_mesh_within_budget():
    verts, faces = sphere()
    new_faces, source, new_verts = R.simplify_mesh(verts, faces, 300)
    assert len(faces) == 4680 and 0 < len(new_faces) <= 300
    assert new_faces.min() >= 0 and new_faces.max() < len(verts) and new_verts.shape == verts.shape
    assert np.all(new_faces[:, 0] != new_faces[:, 1]) and np.all(new_faces[:, 1] != new_faces[:, 2])
    assert len(np.unique(np.sort(new_faces, axis=1), axis=0)) == len(new_faces)  # no repeated faces
    assert len(np.unique(source)) == len(source) and source.max() < len(faces)
    # the simplified surface stays on the sphere: every used vertex within 2 cm of the 10 cm radius
    used = new_verts[np.unique(new_faces)]
    assert np.abs(np.linalg.norm(used, axis=1) - 0.1).max() < 0.02
    # a mesh within budget is returned as it is
    same, src, _ = R.simplify_mesh(verts, faces, len(faces))
    np.testing.assert_array_equal(same, faces)
    np.testing.assert_array_equal(src, np.arange(len(faces)))


def test_simplified_model_is_cached_and_leaves_the_model_alone(tiny):
    model, _ = tiny
    R._SIMPLIFIED.clear()
    before = dict(R.CACHE_STATS)
    a = R.simplified_model(model, 200)
    b = R.simplified_model(model, 200)
    assert R.CACHE_STATS["misses"] == before["misses"] + 1 and R.CACHE_STATS["hits"] == before["hits"] + 1
    assert a.mesh_facenum[0] == b.mesh_facenum[0] <= 200
    np.testing.assert_array_equal(a.mesh_face, b.mesh_face)
    assert model.mesh_facenum[0] == 4680  # the live model keeps its meshes
    R.simplified_model(model, 100)  # another budget is another entry
    assert R.CACHE_STATS["misses"] == before["misses"] + 2


def test_renderer_profiles_shape_determinism_and_difference(tiny):
    model, data = tiny
    default = R.SceneRenderer(model, data, "default")
    fast = R.SceneRenderer(model, data, "fast")
    try:
        for size in (32, 64):
            d, f = default.render("front", size), fast.render("front", size)
            assert d.shape == f.shape == (size, size, 3) and d.dtype == f.dtype == np.uint8
            np.testing.assert_array_equal(f, fast.render("front", size))  # same state, same frame
            np.testing.assert_array_equal(d, default.render(0, size))  # a camera by name or id
            assert np.abs(d.astype(int) - f).mean() > 1.0  # shadow and reflection gone, coarser ball
        # upright: the camera looks down at the floor; the ball (red) sits above the image centre line
        img = fast.render("front", 64)
        red = (img[..., 0] > 120) & (img[..., 1] < 80)
        rows = np.flatnonzero(red.any(axis=1))
        assert rows.size and rows.mean() < 32  # flipped, it would sit near row 43
        with pytest.raises(ConfigError, match="camera"):
            fast.render("nope", 32)
    finally:
        default.close()
        fast.close()
    default.close()  # idempotent


def test_fast_profile_draws_fewer_faces(tiny):
    model, data = tiny
    renderer = R.SceneRenderer(model, data, "fast")
    try:
        renderer.render("front", 32)
        assert renderer.uploaded_faces < int(model.mesh_facenum.sum())
    finally:
        renderer.close()


def test_unclosed_renderer_exits_quietly(tmp_path):
    """An env whose renderer nobody closed must not spill GL errors at interpreter exit (mujoco's EGL display
    is terminated by then, and its context finalizer fails)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("robosuite")
    root = Path(__file__).resolve().parents[2]
    code = ("import envs\n"
            "env = envs.make_env('Lift', image_size=16)\n"
            "env.reset(seed=0)\n"
            "print(env.render_frame().shape, env.render_frame(profile='default').shape)\n")
    env = {**os.environ, "PYTHONPATH": str(root), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(16, 16, 3) (16, 16, 3)" in out.stdout
    assert "Exception ignored" not in out.stderr and "EGLError" not in out.stderr, out.stderr
