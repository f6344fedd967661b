"""Offscreen cameras and the render presets that decide how the scene is compiled for them.

Presets change the compiled model (shadow map, multisampling, light shadows), so they are applied to the
``MjSpec`` before compilation. ``fast`` casts no shadows: on the GPU machine a shadow-casting light made every
view cost ~2.6 ms and blocked batching (see docs/benchmarks.md), and shadows carry no task information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from so101_dataengine.base.errors import DataEngineError

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


def apply_preset(spec: mujoco.MjSpec, preset: RenderPreset, framebuffer: tuple[int, int]) -> None:
    """Edit an uncompiled scene to render with ``preset`` into an offscreen buffer of at least ``framebuffer``
    (width, height) pixels: one image for the reference renderer, a grid of tiles for ``TiledRenderer``."""
    spec.visual.quality.shadowsize = preset.shadow_map_size
    spec.visual.quality.offsamples = preset.multisamples
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, framebuffer[0])
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, framebuffer[1])
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


def tile_grid(views: int) -> tuple[int, int]:
    """(columns, rows) of the most square grid holding ``views`` tiles."""
    columns = math.ceil(math.sqrt(views))
    return columns, math.ceil(views / columns)


class TiledRenderer:
    """Renders many (simulation, camera) views as tiles of ONE offscreen framebuffer with ONE pixel readback.

    The reference ``CameraRenderer`` pays a render call and a readback per view; on the GPU machine that path
    reached ~1,500 views/s while tiles of one buffer reached 23,000-36,000 (shared/device/README.md). The pixels
    are the same: same model, same scene update, same GL pipeline, only the viewport differs (a test compares
    them with the reference renderer). The model's offscreen buffer must hold the grid: see ``build_model``.
    """

    def __init__(self, model: mujoco.MjModel, image_size: int, max_views: int):
        from mujoco.rendering.classic.gl_context import GLContext

        self.model = model
        self.image_size = image_size
        self.columns, self.rows = tile_grid(max_views)
        width, height = self.columns * image_size, self.rows * image_size
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(f"offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight} cannot "
                             f"hold {max_views} tiles of {image_size} px: build the model with framebuffer=({width}, {height})")
        self._gl = GLContext(width, height)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera_ids = {name: model.camera(name).id for name in CAMERA_NAMES}
        self._pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.max_views = max_views

    def render(self, views: list[tuple[mujoco.MjData, str]], before_each=None) -> np.ndarray:
        """Images (len(views), H, W, 3) of each ``(data, camera)`` view, in one new array; ``before_each(i)`` runs
        before view i is drawn (to write that simulation's visual randomisation into the shared model)."""
        if len(views) > self.max_views:
            raise ValueError(f"{len(views)} views > the {self.max_views} this renderer was built for")
        self._gl.make_current()
        size = self.image_size
        for i, (data, camera) in enumerate(views):
            if before_each is not None:
                before_each(i)
            self._camera.fixedcamid = self._camera_ids[camera]
            mujoco.mjv_updateScene(self.model, data, self._option, None, self._camera,
                                   mujoco.mjtCatBit.mjCAT_ALL.value, self._scene)
            column, row = i % self.columns, i // self.columns
            mujoco.mjr_render(mujoco.MjrRect(column * size, row * size, size, size), self._scene, self._context)
        rows = math.ceil(len(views) / self.columns)
        pixels = self._pixels[: rows * size]
        mujoco.mjr_readPixels(pixels, None, mujoco.MjrRect(0, 0, self.columns * size, rows * size), self._context)
        # (rows*H, columns*W, 3), each tile upside down (OpenGL rows run bottom-up) -> (tiles, H, W, 3): one copy
        grid = pixels.reshape(rows, size, self.columns, size, 3)[:, ::-1].transpose(0, 2, 1, 3, 4)
        images = np.empty((rows, self.columns, size, size, 3), dtype=np.uint8)
        np.copyto(images, grid)
        return images.reshape(rows * self.columns, size, size, 3)[: len(views)]

    def close(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._gl.free()
            self._context = None
