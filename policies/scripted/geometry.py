"""Orientation math of the scripted policies: rotations, yaw, and the gripper yaw that fits an object.

Pure functions of numpy arrays; the policy (:mod:`policies.scripted.policy`) turns their results into OSC_POSE
actions with the scales below.
"""
from __future__ import annotations

import numpy as np

# pointing down, fingers aligned with the world axes (all our single arms start close to this)
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
POS_SCALE = 0.05  # OSC_POSE: action 1.0 = 5 cm per step
ROT_SCALE = 0.5  # and 0.5 rad per step


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(quat_wxyz: np.ndarray) -> float:
    """Yaw (rotation about world z) of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = quat_wxyz
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def wrap(angle: float, period: float) -> float:
    """Wrap ``angle`` into [-period/2, period/2).

    >>> round(wrap(3.0, np.pi / 2), 4)
    -0.1416
    """
    return float((angle + period / 2) % period - period / 2)


def rot_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle (world frame) of the rotation taking ``current`` to ``target``."""
    r = target @ current.T
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-6:  # angle ~ pi: take the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        n = np.linalg.norm(axis)
    return axis / n * angle


def choose_yaw(object_yaw: float, period: float, avoid: np.ndarray | None) -> float:
    """Gripper yaw matching an object's faces: among the yaws symmetric under ``period`` within a quarter turn
    either way, the smallest turn that keeps the fingers (they close along the gripper's y axis, world y at yaw 0)
    off a neighbour in the unit x/y direction ``avoid`` (None: no neighbour, the smallest turn).

    >>> round(choose_yaw(0.3, np.pi / 2, None), 4)
    0.3
    >>> round(choose_yaw(0.3, np.pi / 2, np.array([0.0, 1.0])), 4)  # fingers would close towards the neighbour
    -1.2708
    """
    base = wrap(object_yaw, period)
    choices = [base + k * period for k in range(-2, 3) if abs(base + k * period) <= np.pi / 2 + 1e-6]
    if avoid is None:
        return min(choices, key=abs)

    def cost(yaw: float) -> float:
        closing = np.array([-np.sin(yaw), np.cos(yaw)])
        return abs(float(closing @ avoid)) + 0.1 * abs(yaw)

    return min(choices, key=cost)
