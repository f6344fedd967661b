"""The engine's scene as a lerobot environment: ``lerobot-eval --env.type=so101_dataengine`` (lerobot 0.6).

Importing this package registers the gym id ``so101_dataengine/PickPlace-v0`` and the ``EnvConfig``
``so101_dataengine``. lerobot imports it through the ``lerobot_env_so101_dataengine`` distribution
(``plugins/``; why a distribution of its own: ``so101_dataengine.lerobot_compat.env_plugin``), or through
``--env.discover_packages_path=so101_dataengine.lerobot_env``.
"""

import gymnasium as gym

from so101_dataengine.lerobot_env.config import ENV_TYPE, GYM_ID, SO101DataEngineEnv

if GYM_ID not in gym.registry:
    gym.register(id=GYM_ID, entry_point="so101_dataengine.lerobot_env.gym_env:PickPlaceGymEnv")

__all__ = ["ENV_TYPE", "GYM_ID", "SO101DataEngineEnv"]
