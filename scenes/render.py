"""Offscreen cameras and the render presets that decide how the scene is compiled for them.

Presets change the compiled model (shadow map, multisampling, light shadows), so they are applied to the
``MjSpec`` before compilation. ``fast`` casts no shadows: on the GPU machine a shadow-casting light made every
view cost ~2.6 ms and blocked batching (see docs/benchmarks.md), and shadows carry no task information.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from dataengine.errors import DataEngineError

CAMERA_NAMES: tuple[str, ...] = ("overhead", "wrist")
"""Scene cameras; each becomes the LeRobot feature ``observation.images.<name>``."""


def image_feature_key(camera: str) -> str:
    """LeRobot feature key of a camera (``observation.images.<camera>``)."""
    return f"observation.images.{camera}"


@dataclass(frozen=True)
class RenderPreset:
    """How the scene is lit and sampled for offscreen rendering."""

    shadows: bool
    shadow_map_size: int
    multisamples: int


RENDER_PRESETS: dict[str, RenderPreset] = {
    "fast": RenderPreset(shadows=False, shadow_map_size=0, multisamples=0),
    "pretty": RenderPreset(shadows=True, shadow_map_size=2048, multisamples=4),
}


def get_preset(name: str) -> RenderPreset:
    """Look a preset up by name, with a one-line error listing the valid names."""
    try:
        return RENDER_PRESETS[name]
    except KeyError:
        raise DataEngineError(
            f"unknown render preset {name!r}: use one of {', '.join(sorted(RENDER_PRESETS))}"
        ) from None


def apply_preset(spec: mujoco.MjSpec, preset: RenderPreset, image_size: int) -> None:
    """Edit an uncompiled scene so that it renders with ``preset`` at up to ``image_size`` pixels."""
    spec.visual.quality.shadowsize = preset.shadow_map_size
    spec.visual.quality.offsamples = preset.multisamples
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, image_size)
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, image_size)
    for light in spec.lights:
        light.castshadow = preset.shadows


class CameraRenderer:
    """Renders the scene's named cameras into uint8 HxWx3 arrays, one ``mujoco.Renderer`` call per camera.

    This is the reference path: simple and exact. Batched/tiled rendering for many environments must produce the
    same images (checked by a test against this class).
    """

    def __init__(self, model: mujoco.MjModel, image_size: int, cameras: tuple[str, ...] = CAMERA_NAMES):
        self.cameras = cameras
        self._renderer = mujoco.Renderer(model, height=image_size, width=image_size)

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Every camera's current image, keyed by LeRobot feature name."""
        images = {}
        for camera in self.cameras:
            self._renderer.update_scene(data, camera=camera)
            images[image_feature_key(camera)] = self._renderer.render().copy()
        return images

    def close(self) -> None:
        self._renderer.close()
