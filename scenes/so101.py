"""The SO-101's joints and the boundary between simulator units and LeRobot units.

A policy trained here must speak the same language as one trained on the real arm, so every value that leaves the
simulator (``observation.state``) or enters it (``action``) is in lerobot 0.4.4's ``so_follower`` units:

* the five arm joints in degrees (``MotorNormMode.DEGREES``, the default since lerobot 0.4.4). The real arm's
  0 deg is the middle of its calibrated range; our joint ranges are symmetric about 0 rad, so sim zero = mid-range
  and degrees = radians * 180 / pi.
* the gripper in ``RANGE_0_100`` (0 closed, 100 open): a linear map of the jaw's joint range.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
"""Order of ``observation.state`` and ``action``, as in lerobot's ``so_follower``."""

MOTOR_FEATURE_NAMES: list[str] = [f"{name}.pos" for name in JOINT_NAMES]
"""LeRobot's per-dimension names (``<joint>.pos``)."""

GRIPPER_RANGE_RAD: tuple[float, float] = (-0.174533, 1.7453292)
"""The moving jaw's joint range (Menagerie's so101.xml); its ends map to 0 and 100."""

_ARM = slice(0, 5)
_GRIPPER = 5
_GRIPPER_SPAN = GRIPPER_RANGE_RAD[1] - GRIPPER_RANGE_RAD[0]


def sim_to_lerobot(q: np.ndarray) -> np.ndarray:
    """Joint positions in radians (..., 6) -> LeRobot units (degrees, gripper 0-100), float32."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty_like(q)
    out[..., _ARM] = np.degrees(q[..., _ARM])
    out[..., _GRIPPER] = (q[..., _GRIPPER] - GRIPPER_RANGE_RAD[0]) / _GRIPPER_SPAN * 100.0
    return out.astype(np.float32)


def lerobot_to_sim(a: np.ndarray) -> np.ndarray:
    """LeRobot units (..., 6) -> joint positions in radians, float64 (the inverse of :func:`sim_to_lerobot`)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    out[..., _ARM] = np.radians(a[..., _ARM])
    out[..., _GRIPPER] = a[..., _GRIPPER] / 100.0 * _GRIPPER_SPAN + GRIPPER_RANGE_RAD[0]
    return out
