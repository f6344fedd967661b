"""Imported by lerobot 0.6's ``register_third_party_plugins`` because this distribution's name starts with
``lerobot_env_``: registers ``--env.type=so101_dataengine`` (``so101_dataengine.lerobot_env``)."""

from so101_dataengine.lerobot_env import ENV_TYPE, GYM_ID, SO101DataEngineEnv

__all__ = ["ENV_TYPE", "GYM_ID", "SO101DataEngineEnv"]
