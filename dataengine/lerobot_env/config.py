"""``--env.type=so101_dataengine``: the lerobot ``EnvConfig`` of the engine's scene.

Its fields are the scene's (image size, episode length, visual randomisation, render preset); its ``features``
say what ``PickPlaceGymEnv`` observes, so ``make_policy`` and ``lerobot-eval --eval.recording`` see the engine's
cameras (``observation.images.overhead`` / ``.wrist``), state and action (6 values, LeRobot units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.lerobot_compat.env_plugin import (
    SCENE,
    SCENE_SHAPE,
    STATE,
    EnvConfig,
    FeatureType,
    PolicyFeature,
    get_path_arg,
    recorded_image_key,
)
from so101_dataengine.rollouts.lerobot_policy import ACTION_KEY, STATE_KEY, image_size_of, read_policy_config
from so101_dataengine.scenes.pick_place import DEFAULT_IMAGE_SIZE, PickPlaceConfig
from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key
from so101_dataengine.scenes.so101 import JOINT_NAMES

ENV_TYPE = "so101_dataengine"
PACKAGE = "so101_dataengine.lerobot_env"
"""Imported by lerobot when the gym id is not registered yet; registers it (``__init__``)."""
GYM_TASK = "PickPlace-v0"
GYM_ID = f"{ENV_TYPE}/{GYM_TASK}"
"""gymnasium's namespace allows no dots, so the id is not lerobot's default ``{package_name}/{task}``."""


def policy_image_size() -> int:
    """The image size of the policy that will act (``--policy.path`` on lerobot's command line, read the way
    lerobot's own ``EvalPipelineConfig`` reads it), checked against the scene as ``dataengine rollout`` checks it;
    ``DEFAULT_IMAGE_SIZE`` without one."""
    path = get_path_arg("policy")
    if path is None:
        return DEFAULT_IMAGE_SIZE
    if not Path(path).is_dir():
        raise DataEngineError(f"--policy.path {path} is not a local checkpoint directory, so the scene cannot read "
                              "its camera size: pass --env.image_size=N (the size it was trained on)")
    return image_size_of(read_policy_config(Path(path)))


@EnvConfig.register_subclass(ENV_TYPE)
@dataclass
class SO101DataEngineEnv(EnvConfig):
    """The engine's pick-and-place scene; ``lerobot-eval --seed S`` evaluates episode k on the engine's scene
    ``S + k``."""

    task: str | None = GYM_TASK
    fps: int = PickPlaceConfig.fps
    image_size: int | None = None
    """Square camera images; None: the size of the ``--policy.path`` checkpoint (as ``dataengine rollout``)."""
    episode_length: int = PickPlaceConfig.max_episode_steps
    visual_randomization: bool = False
    render_preset: str = "fast"
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_size is None:
            self.image_size = policy_image_size()
        if self.fps != PickPlaceConfig.fps:
            raise DataEngineError(f"--env.fps {self.fps}: the scene is simulated at {PickPlaceConfig.fps} Hz")
        image = PolicyFeature(type=FeatureType.VISUAL, shape=(self.image_size, self.image_size, 3))
        self.features = {ACTION_KEY: PolicyFeature(type=FeatureType.ACTION, shape=(len(JOINT_NAMES),)),
                         STATE: PolicyFeature(type=FeatureType.STATE, shape=(len(JOINT_NAMES),)),
                         SCENE: PolicyFeature(type=FeatureType.ENV, shape=SCENE_SHAPE),
                         **{recorded_image_key(camera): image for camera in CAMERA_NAMES}}
        self.features_map = {ACTION_KEY: ACTION_KEY, STATE: STATE_KEY, SCENE: f"observation.{SCENE}",
                             **{recorded_image_key(camera): image_feature_key(camera) for camera in CAMERA_NAMES}}

    @property
    def package_name(self) -> str:
        return PACKAGE

    @property
    def gym_id(self) -> str:
        return GYM_ID

    @property
    def gym_kwargs(self) -> dict:
        return {"image_size": self.image_size, "episode_length": self.episode_length,
                "visual_randomization": self.visual_randomization, "render_preset": self.render_preset,
                "max_episode_steps": self.episode_length}
