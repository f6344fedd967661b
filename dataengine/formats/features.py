"""The LeRobot feature schema of SO-101 pick-and-place datasets (what lerobot's loader and policies expect)."""

from __future__ import annotations

from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key
from so101_dataengine.scenes.so101 import MOTOR_FEATURE_NAMES

ROBOT_TYPE = "so101_follower"
"""lerobot's robot type for the SO-101 follower arm (``lerobot/robots/so_follower``)."""


def so101_features(image_size: int) -> dict[str, dict]:
    """State, action and one video feature per camera, named and shaped as lerobot records a real SO-101."""
    features: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": (len(MOTOR_FEATURE_NAMES),), "names": MOTOR_FEATURE_NAMES},
        "action": {"dtype": "float32", "shape": (len(MOTOR_FEATURE_NAMES),), "names": MOTOR_FEATURE_NAMES},
    }
    for camera in CAMERA_NAMES:
        features[image_feature_key(camera)] = {
            "dtype": "video",
            "shape": (image_size, image_size, 3),
            "names": ["height", "width", "channels"],
        }
    return features
