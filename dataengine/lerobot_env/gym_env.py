"""The engine's scene as a gymnasium environment in lerobot's conventions, for ``lerobot-eval``.

Nothing is re-implemented: each sub-env is one ``PickPlaceEnv`` (the same MJCF, cameras, render preset, LeRobot
units and seeded scene draw as ``dataengine rollout`` / ``eval``), observed as lerobot's env wrappers observe:
``agent_pos`` (-> ``observation.state``, 6 values in LeRobot units), ``pixels`` (camera -> uint8 HxWx3, ->
``observation.images.<camera>``) and ``scene`` (the episode's seed and look, so a recording names its scenes). The
images are the reference renderer's (``CameraRenderer``), which the batched engine's tiled renderer equals
(``tests/scenes``). An episode ends as the engine's does: ``terminated`` once the simulator's outcome is SUCCESS
(``info["is_success"]``), ``truncated`` after ``episode_length`` steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from so101_dataengine.lerobot_compat.env_plugin import PIXELS, SCENE, SCENE_SHAPE, STATE, encode_scene
from so101_dataengine.scenes.pick_place import (
    DEFAULT_IMAGE_SIZE,
    TASK,
    Observation,
    PickPlaceConfig,
    PickPlaceEnv,
    build_model,
)
from so101_dataengine.scenes.randomization import SceneRandomization
from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key
from so101_dataengine.scenes.so101 import JOINT_NAMES, sim_to_lerobot

SEED_DRAWS = 1 << 31
"""An argument-less ``reset`` (gymnasium's autoreset after an episode) draws its scene seed below this from the
env's own generator."""


class PickPlaceGymEnv(gym.Env):
    """One ``PickPlaceEnv`` behind gymnasium's API; ``reset(seed=s)`` is the engine's scene ``s``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": PickPlaceConfig.fps}

    def __init__(self, image_size: int = DEFAULT_IMAGE_SIZE, episode_length: int = PickPlaceConfig.max_episode_steps,
                 visual_randomization: bool = False, render_preset: str = "fast", render_mode: str = "rgb_array"):
        self.config = PickPlaceConfig(image_size=image_size, max_episode_steps=episode_length,
                                      render_preset=render_preset,
                                      randomization=SceneRandomization(visual=visual_randomization))
        self._model = build_model(self.config)
        self._scene: PickPlaceEnv | None = None
        self.render_mode = render_mode
        self.task = self.task_description = TASK
        low, high = sim_to_lerobot(self._model.actuator_ctrlrange.T)
        self.action_space = gym.spaces.Box(low, high, (len(JOINT_NAMES),), np.float32)
        image = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({
            STATE: gym.spaces.Box(-np.inf, np.inf, (len(JOINT_NAMES),), np.float32),
            PIXELS: gym.spaces.Dict({camera: image for camera in CAMERA_NAMES}),
            SCENE: gym.spaces.Box(0, np.inf, SCENE_SHAPE, np.float32),
        })
        self._seed = 0
        self._last: Observation | None = None

    @property
    def scene(self) -> PickPlaceEnv:
        """The simulated scene, made (with its renderer's OpenGL context) when first used, not with the env:
        gymnasium's ``AsyncVectorEnv`` makes one env in its own process only to read the spaces, then forks the
        sub-env processes (lerobot 0.4.4's default start method), and EGL made before a fork hangs the children's
        first render."""
        if self._scene is None:
            self._scene = PickPlaceEnv(self.config, model=self._model)
        return self._scene

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._seed = int(seed) if seed is not None else int(self.np_random.integers(SEED_DRAWS))
        self._last = self.scene.reset(self._seed)
        return self._observation(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        self._last = self.scene.step(action)
        success = self.scene.tracker.succeeded
        truncated = self.scene.done and not success
        return self._observation(), float(success), success, truncated, {"is_success": success}

    def render(self) -> np.ndarray:
        """The overhead camera's current image (lerobot-eval's videos)."""
        return self._last.images[image_feature_key(CAMERA_NAMES[0])]

    def _observation(self) -> dict:
        return {STATE: self._last.state,
                PIXELS: {camera: self._last.images[image_feature_key(camera)] for camera in CAMERA_NAMES},
                SCENE: encode_scene(self._seed, self.config.randomization.visual)}

    def close(self) -> None:
        if self._scene is not None:
            self._scene.close()
