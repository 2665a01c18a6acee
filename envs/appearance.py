"""Appearance randomisation: a look per episode (table and object colours, light, camera pose, image noise),
drawn from the episode's seed, in a training split and a held-out split that share no appearance.

    look = sample_look(seed=12, split="train")           # pure: no simulator needed
    scene = SceneLook(rs_env)                            # binds a live robosuite env; keeps its nominal look
    scene.apply(look)                                    # after every robosuite reset (rebind after a hard reset)
    frame = add_noise(frame, look.noise_std, rng)        # per frame, from a generator seeded per episode

What a look changes (only what is drawn: physics, object sizes and poses, and the oracle never see it):

- **table**: its visual geoms (the bins of PickPlace tasks too) get one colour: either their own textured
  material tinted (``table_textured``) or a flat colour in place of the texture;
- **objects**: every visual geom of every task object (cube, cans, nuts, the door) a flat colour in place of its
  texture, object ``k`` the ``k``-th colour of the look (door handles and latches a darker shade of it);
- **light**: the direction of the scene's lights (tilt from vertical, azimuth), their intensity and warmth, the
  ambient term and the headlight;
- **camera**: every camera moved by a few mm and turned by a few tenths of a degree to a few degrees, in its
  own frame (the scene stays readable);
- **noise**: Gaussian pixel noise of std ``noise_std`` (0-255 scale) added to every rendered frame.

**The two splits are disjoint** on four stated axes, so "unseen appearance" means something:

=====================  ======================================  ======================================
axis                   ``"train"``                             ``"heldout"``
=====================  ======================================  ======================================
hue (table, objects)   even 30-degree bands: [60k+3, 60k+27]   odd 30-degree bands: [60k+33, 60k+57]
camera shift           0-8 mm                                  10-16 mm
camera turn            0-1.5 degrees                           2-3 degrees
light tilt             5-30 degrees from vertical              35-50 degrees
image noise std        0-3                                     3.5-6
=====================  ======================================  ======================================

(``k = 0..5``; hues in degrees; a 6-degree gap separates any train hue from any held-out hue.) Saturation,
value, light intensity and the table's finish are drawn from the same ranges in both splits.
"""
from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from primo_loop.data.provenance import APPEARANCES, check_appearance  # noqa: F401 - the names, defined once
from primo_loop.errors import check_choice

#: The randomised appearances (``APPEARANCES`` adds "nominal": robosuite's look, unchanged and without noise).
SPLITS: tuple[str, ...] = APPEARANCES[1:]
N_OBJECT_COLOURS = 8  # PickPlace scenes hold 8 objects (4 to move, 4 visual targets)

BAND_DEG, MARGIN_DEG = 30.0, 3.0
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "train": {"cam_shift_mm": (0.0, 8.0), "cam_turn_deg": (0.0, 1.5), "light_tilt_deg": (5.0, 30.0),
              "noise_std": (0.0, 3.0)},
    "heldout": {"cam_shift_mm": (10.0, 16.0), "cam_turn_deg": (2.0, 3.0), "light_tilt_deg": (35.0, 50.0),
                "noise_std": (3.5, 6.0)},
}
_SALT = 0x5EE1  # keeps the look's random stream apart from every other stream drawn from the same seed


def hue_split(hue_deg: float) -> str | None:
    """The split whose hue bands hold ``hue_deg`` (None: in a margin between bands, which no split draws).

    >>> hue_split(15.0), hue_split(45.0), hue_split(0.0), hue_split(375.0)
    ('train', 'heldout', None, 'train')
    """
    h = float(hue_deg) % 360.0
    band, offset = divmod(h, BAND_DEG)
    if offset < MARGIN_DEG or offset > BAND_DEG - MARGIN_DEG:
        return None
    return SPLITS[int(band) % 2]


def _draw_hue(rng: np.random.Generator, split: str) -> float:
    band = 2 * int(rng.integers(6)) + SPLITS.index(split)
    return band * BAND_DEG + float(rng.uniform(MARGIN_DEG, BAND_DEG - MARGIN_DEG))


@dataclass(frozen=True)
class Look:
    """One drawn appearance (all of it JSON-able through :meth:`to_dict`).

    Attributes:
        split, seed: where it was drawn from (``sample_look(seed, split)`` gives it back).
        table_hsv: the table's colour, hue in degrees, saturation and value in [0, 1].
        table_textured: tint the table's own textured material (True) or draw it in a flat colour (False).
        object_hsv: one colour per object slot (object ``k`` takes slot ``k % N_OBJECT_COLOURS``).
        light_tilt_deg, light_azimuth_deg: the lights' direction (tilt from straight down, and its azimuth).
        light_intensity: diffuse intensity of the lights; light_warmth: -1 cool (bluish) .. +1 warm (reddish).
        ambient: the lights' ambient term; headlight: the headlight's diffuse intensity.
        cam_shift_m: every camera's shift in its own frame (metres); cam_turn_axis, cam_turn_deg: its turn.
        noise_std: std of the Gaussian pixel noise on the 0-255 scale.
    """

    split: str
    seed: int
    table_hsv: tuple[float, float, float]
    table_textured: bool
    object_hsv: tuple[tuple[float, float, float], ...]
    light_tilt_deg: float
    light_azimuth_deg: float
    light_intensity: float
    light_warmth: float
    ambient: float
    headlight: float
    cam_shift_m: tuple[float, float, float]
    cam_turn_axis: tuple[float, float, float]
    cam_turn_deg: float
    noise_std: float

    @property
    def hues(self) -> tuple[float, ...]:
        """Every drawn hue (the table's first): the axis on which the splits are disjoint."""
        return (self.table_hsv[0], *(c[0] for c in self.object_hsv))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists), rounded to what a frame can show."""
        def clean(v: Any) -> Any:
            if isinstance(v, (tuple, list)):
                return [clean(x) for x in v]
            return round(v, 6) if isinstance(v, float) else v
        return {k: clean(v) for k, v in asdict(self).items()}


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def sample_look(seed: int, split: str) -> Look:
    """The look of the episode with ``seed`` in ``split`` ("train" or "heldout"); same arguments, same look.

    Raises:
        UnknownNameError: ``split`` is not "train" or "heldout".
    """
    split = check_choice("appearance split", split, SPLITS)
    r = RANGES[split]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, _SALT, SPLITS.index(split)])
    table = (_draw_hue(rng, split), float(rng.uniform(0.15, 0.45)), float(rng.uniform(0.55, 0.9)))
    objects = tuple((_draw_hue(rng, split), float(rng.uniform(0.45, 0.9)), float(rng.uniform(0.45, 0.95)))
                    for _ in range(N_OBJECT_COLOURS))
    return Look(
        split=split, seed=int(seed), table_hsv=table, table_textured=bool(rng.random() < 0.5), object_hsv=objects,
        light_tilt_deg=float(rng.uniform(*r["light_tilt_deg"])), light_azimuth_deg=float(rng.uniform(0.0, 360.0)),
        light_intensity=float(rng.uniform(0.5, 0.9)), light_warmth=float(rng.uniform(-1.0, 1.0)),
        ambient=float(rng.uniform(0.0, 0.2)), headlight=float(rng.uniform(0.25, 0.55)),
        cam_shift_m=tuple(float(x) for x in _unit(rng) * rng.uniform(*r["cam_shift_mm"]) / 1000.0),
        cam_turn_axis=tuple(float(x) for x in _unit(rng)), cam_turn_deg=float(rng.uniform(*r["cam_turn_deg"])),
        noise_std=float(rng.uniform(*r["noise_std"])),
    )


def hsv_to_rgb(hsv: tuple[float, float, float]) -> np.ndarray:
    """(hue in degrees, saturation, value) -> RGB in [0, 1].

    >>> hsv_to_rgb((120.0, 1.0, 1.0)).tolist()
    [0.0, 1.0, 0.0]
    """
    return np.array(colorsys.hsv_to_rgb((hsv[0] % 360.0) / 360.0, hsv[1], hsv[2]))


def noise_rng(seed: int) -> np.random.Generator:
    """The generator of an episode's pixel noise (its own stream: frames depend only on the episode's seed)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, _SALT, 7])


def add_noise(frame: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``frame`` (uint8 [H, W, 3]) plus Gaussian noise of ``std`` (0-255 scale), rounded and clipped to uint8."""
    if std <= 0:
        return frame
    noisy = frame.astype(np.float32) + rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(std)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _quat_mul(_quat_mul(q, np.r_[0.0, v]), q * np.array([1.0, -1.0, -1.0, -1.0]))[1:]


class SceneLook:
    """A live robosuite scene's look: finds the table and object geoms, keeps the nominal values of everything
    a look changes, and applies a look (always from the nominal values: nothing carries over between looks).

    Bind it again after the model is rebuilt (a hard reset).

    Args:
        rs_env: a robosuite env (its ``sim`` and ``model.mujoco_objects`` are read).
    """

    _MODEL_FIELDS = ("geom_rgba", "geom_matid", "mat_rgba", "light_dir", "light_diffuse", "light_ambient",
                     "cam_pos", "cam_quat")

    def __init__(self, rs_env: Any):
        import mujoco

        self._mj = mujoco
        self.model, self.data = rs_env.sim.model._model, rs_env.sim.data._data
        m = self.model
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i) or "" for i in range(m.ngeom)]
        visual = [i for i in range(m.ngeom) if m.geom_group[i] == 1]
        bodies = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[i]) or "" for i in range(m.ngeom)]
        self.table_geoms = [i for i in visual if "table" in names[i] or "table" in bodies[i]  # bins' geoms are unnamed
                            or bodies[i].startswith("bin")]
        self.object_geoms: list[list[tuple[int, bool]]] = []  # per object: (geom id, is a handle or latch)
        for obj in getattr(rs_env.model, "mujoco_objects", []):
            ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in obj.visual_geoms]
            self.object_geoms.append([(i, "handle" in names[i] or "latch" in names[i]) for i in ids if i >= 0])
        self.nominal = {f: np.array(getattr(m, f), copy=True) for f in self._MODEL_FIELDS}
        self.nominal_headlight = np.array(m.vis.headlight.diffuse, copy=True)
        self.nominal_ambient_head = np.array(m.vis.headlight.ambient, copy=True)

    def restore(self) -> None:
        """Put back the nominal look."""
        for f, v in self.nominal.items():
            getattr(self.model, f)[...] = v
        self.model.vis.headlight.diffuse[:] = self.nominal_headlight
        self.model.vis.headlight.ambient[:] = self.nominal_ambient_head
        self._refresh()

    def apply(self, look: Look | None) -> None:
        """Show ``look`` (None: the nominal look)."""
        self.restore()
        if look is None:
            return
        m = self.model
        rgb = hsv_to_rgb(look.table_hsv)
        for g in self.table_geoms:
            mat = m.geom_matid[g]
            if look.table_textured and mat >= 0:
                m.mat_rgba[mat, :3] = rgb
            else:
                m.geom_matid[g] = -1
                m.geom_rgba[g, :3] = rgb
        for k, geoms in enumerate(self.object_geoms):
            base = look.object_hsv[k % len(look.object_hsv)]
            for g, dark in geoms:
                m.geom_matid[g] = -1
                m.geom_rgba[g, :3] = hsv_to_rgb((base[0], base[1], base[2] * (0.45 if dark else 1.0)))
        tilt, az = np.radians(look.light_tilt_deg), np.radians(look.light_azimuth_deg)
        m.light_dir[:] = [np.sin(tilt) * np.cos(az), np.sin(tilt) * np.sin(az), -np.cos(tilt)]
        warmth = 1.0 + 0.1 * look.light_warmth * np.array([1.0, 0.0, -1.0])
        m.light_diffuse[:] = look.light_intensity * warmth
        m.light_ambient[:] = look.ambient
        m.vis.headlight.diffuse[:] = look.headlight
        axis, half = np.asarray(look.cam_turn_axis), np.radians(look.cam_turn_deg) / 2
        turn = np.r_[np.cos(half), np.sin(half) * axis]
        for c in range(m.ncam):
            q = self.nominal["cam_quat"][c] / np.linalg.norm(self.nominal["cam_quat"][c])
            m.cam_pos[c] = self.nominal["cam_pos"][c] + _rotate(q, np.asarray(look.cam_shift_m))
            m.cam_quat[c] = _quat_mul(q, turn)
        self._refresh()

    def _refresh(self) -> None:
        # camera and light poses in the world follow the model at the next kinematics pass; run it now (it
        # recomputes positions from the unchanged qpos: the physical state is untouched) so the first frame shows it
        self._mj.mj_kinematics(self.model, self.data)
        self._mj.mj_camlight(self.model, self.data)
