"""Seeded scene distributions: where the cube and bowl start and, optionally, how the scene looks.

Positions are in metres in the robot's base frame (x forward, y left, table top at z = 0). The defaults keep both
objects inside the region a top-down grasp reaches comfortably (0.13-0.29 m in front of the shoulder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.scenes.render import CAMERA_NAMES


@dataclass
class SceneRandomization:
    """The distribution ``reset(seed)`` draws from."""

    cube_x: tuple[float, float] = (0.15, 0.27)
    cube_y: tuple[float, float] = (-0.13, 0.13)
    bowl_x: tuple[float, float] = (0.15, 0.27)
    bowl_y: tuple[float, float] = (-0.14, 0.14)
    min_separation: float = 0.13
    """Cube-to-bowl centre distance at least this (m), so the cube never starts in or against the bowl."""
    visual: bool = False
    """Randomise lighting, table/cube/bowl colours and camera poses (small jitter)."""
    camera_jitter: float = 0.01
    """Largest camera position offset per axis (m) when ``visual`` is on."""


@dataclass(frozen=True)
class SceneSample:
    """One draw: the initial scene of an episode (recorded with it)."""

    cube_xy: tuple[float, float]
    cube_yaw: float
    bowl_xy: tuple[float, float]
    colors: dict[str, tuple[float, float, float]]
    light_scale: float
    light_offset: np.ndarray
    camera_offsets: np.ndarray

    def to_dict(self) -> dict:
        return {
            "cube_xy": list(self.cube_xy),
            "cube_yaw": self.cube_yaw,
            "bowl_xy": list(self.bowl_xy),
            "colors": {k: list(v) for k, v in self.colors.items()},
            "light_scale": self.light_scale,
            "light_offset": self.light_offset.tolist(),
            "camera_offsets": self.camera_offsets.tolist(),
        }


_RECOLORED = {"table": (0.62, 0.5, 0.38), "cube": (0.85, 0.15, 0.12)}


def sample_scene(rng: np.random.Generator, cfg: SceneRandomization) -> SceneSample:
    """Draw one initial scene. Geometry is drawn first, so turning ``visual`` on keeps the same object poses."""
    for _ in range(1000):
        cube = (rng.uniform(*cfg.cube_x), rng.uniform(*cfg.cube_y))
        bowl = (rng.uniform(*cfg.bowl_x), rng.uniform(*cfg.bowl_y))
        if np.hypot(cube[0] - bowl[0], cube[1] - bowl[1]) >= cfg.min_separation:
            break
    else:
        raise DataEngineError(
            f"cube and bowl ranges leave no room for min_separation {cfg.min_separation} m: widen the ranges"
        )
    yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
    if not cfg.visual:
        return SceneSample(cube, yaw, bowl, {}, 1.0, np.zeros(3), np.zeros((len(CAMERA_NAMES), 3)))
    colors = {
        name: tuple(float(c) for c in np.clip(np.array(base) + rng.uniform(-0.12, 0.12, 3), 0, 1))
        for name, base in _RECOLORED.items()
    }
    return SceneSample(
        cube,
        yaw,
        bowl,
        colors,
        light_scale=float(rng.uniform(0.7, 1.3)),
        light_offset=rng.uniform(-0.2, 0.2, 3),
        camera_offsets=rng.uniform(-cfg.camera_jitter, cfg.camera_jitter, (len(CAMERA_NAMES), 3)),
    )
