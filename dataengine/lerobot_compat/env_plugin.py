"""What each lerobot line offers a third-party simulation environment, and the conventions at that boundary.

Read in lerobot's source (0.6.1 and 0.4.4 wheels):

* **Discovery.** lerobot 0.6's ``register_third_party_plugins`` (``lerobot/utils/import_utils.py``), which
  ``lerobot-eval``, ``lerobot-train``, ``lerobot-record`` ... call before parsing their flags, walks
  ``importlib.metadata.distributions()`` and imports every distribution whose metadata ``Name`` starts with
  ``lerobot_env_`` (or ``lerobot_robot_``, ``lerobot_camera_``, ``lerobot_teleoperator_``, ``lerobot_policy_``),
  *by that name, as a module*. The match is a raw ``str.startswith`` on the distribution's name, so only a
  distribution spelled with underscores is found; a module or entry point inside another distribution is not.
  lerobot 0.4.4's version of the function knows the four other prefixes but not ``lerobot_env_``.
* **Registration.** The imported module registers an ``EnvConfig`` subclass with
  ``@EnvConfig.register_subclass(NAME)`` (``lerobot/envs/configs.py``): that is ``--env.type=NAME``. lerobot 0.6's
  ``make_env`` calls ``EnvConfig.create_envs``, whose default ``gym.make``s ``{package_name}/{task}`` (importing
  ``package_name`` if that id is not registered) with ``gym_kwargs`` into a ``SyncVectorEnv`` or, by default for
  more than one env, an ``AsyncVectorEnv`` (forkserver), autoreset ``SAME_STEP``.
* **What lerobot-eval reads** (``lerobot/scripts/lerobot_eval.py``, ``lerobot/envs/utils.py``): observations as
  ``preprocess_observation`` maps them (``pixels`` -> a dict of camera -> uint8 HxWx3 becomes
  ``observation.images.<camera>`` as float CHW in [0, 1]; ``agent_pos`` becomes ``observation.state``; other arrays
  become ``observation.<key>``), ``info["is_success"]`` (or ``info["final_info"]["is_success"]`` when a sub-env
  finished) per step, ``_max_episode_steps`` (gymnasium's ``TimeLimit``), ``task_description`` / ``task``
  attributes, ``metadata["render_fps"]``. ``make_policy(env_cfg=...)`` takes the policy's action feature from the
  config's ``features`` (renamed by ``features_map``); a checkpoint keeps its own input features.
* **Seeds.** Episode k of ``lerobot-eval --seed S`` is reset with seed ``S + k`` (batch b, env i: ``S + b *
  batch_size + i``), the engine's own rule, so one ``--seed`` gives the same scenes as ``dataengine eval --seed``.
* **Recording.** lerobot-eval 0.6 has ``--eval.recording=true``: every sub-env's episodes become a LeRobot v3
  dataset under ``OUTPUT_DIR/recordings/<suite>_<task id>/env_<i>`` (one dataset, no ``env_<i>``, when the batch
  has one env), with one column per key of the config's ``features`` (images only under
  ``observation.images.<camera>``, other keys under their raw observation name, float32), ``action`` and
  ``next.reward`` / ``next.success`` / ``next.done`` per frame. lerobot 0.4.4's lerobot-eval cannot record.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.lerobot_compat import LEROBOT_06, LEROBOT_VERSION

ENV_PLUGINS: bool = LEROBOT_06
"""The installed lerobot discovers ``lerobot_env_*`` distributions and lerobot-eval can record (0.6 only)."""
ENV_PLUGINS_MISSING = (
    f"lerobot {LEROBOT_VERSION} has no environment plugins (its register_third_party_plugins imports "
    "lerobot_robot_/camera_/teleoperator_/policy_ distributions, not lerobot_env_) and its lerobot-eval cannot "
    "record (no --eval.recording): the plugin distribution and recordings need lerobot 0.6 (Python >= 3.12); on "
    "0.4.4, lerobot-eval takes the scene by --env.discover_packages_path=so101_dataengine.lerobot_env"
)

PLUGIN_DISTRIBUTION = "lerobot_env_so101_dataengine"
"""The distribution (and module) lerobot 0.6 discovers: ``plugins/lerobot_env_so101_dataengine`` in this
repository. It only imports ``so101_dataengine.lerobot_env``, which registers the env."""

PIXELS = "pixels"
STATE = "agent_pos"
"""lerobot's observation names for camera images (a dict by camera) and the robot state (-> ``observation.state``)."""
SCENE = "scene"
"""Which scene the episode is: its seed and whether its look was randomised (``encode_scene``), observed so that a
recording says which scene each of its episodes is (lerobot records observations, not seeds)."""
SUCCESS = "next.success"
RECORDING_COLUMNS = (STATE, SCENE, "action", SUCCESS)
"""The non-image columns a recording of the engine's scene has (and the converter reads)."""

SEED_BASE = 1_000_000
"""A seed is observed as two float32 "digits" base one million: lerobot records every non-image feature as
float32, which holds integers exactly only up to 2**24, and evaluation seeds start at 10**9."""
SCENE_SHAPE = (3,)


def recorded_image_key(camera: str) -> str:
    """The column of a camera in a lerobot-eval recording (``_build_raw_frame`` matches exactly this name)."""
    return f"observation.images.{camera}"


def encode_scene(seed: int, visual: bool) -> np.ndarray:
    """(seed // 10**6, seed % 10**6, visual) as float32, which a float32 recording keeps exactly (seeds below
    2**24 x 10**6)."""
    if not 0 <= seed < (1 << 24) * SEED_BASE:
        raise DataEngineError(f"scene seed {seed} is outside 0 .. {(1 << 24) * SEED_BASE - 1}")
    return np.array([*divmod(int(seed), SEED_BASE), float(visual)], dtype=np.float32)


def decode_scene(values: np.ndarray) -> tuple[int, bool]:
    """The inverse of ``encode_scene``: (seed, visual)."""
    high, low, visual = (int(v) for v in np.asarray(values, dtype=np.float64).reshape(SCENE_SHAPE))
    return high * SEED_BASE + low, bool(visual)


_NAMES = {"EnvConfig": "lerobot.envs.configs", "FeatureType": "lerobot.configs.types",
          "PolicyFeature": "lerobot.configs.types", "get_path_arg": "lerobot.configs.parser"}
"""lerobot's names for an env plugin; the same modules on 0.4.4 and 0.6."""


def __getattr__(name: str) -> Any:
    """Resolved on first use: lerobot's env configs import torch, and the recording converter needs none of it."""
    if name not in _NAMES:
        raise AttributeError(name)
    return getattr(importlib.import_module(_NAMES[name]), name)
