"""Everything that reads a LeRobot checkpoint: which types the engine drives, and loading through lerobot's factory.

One place, so a new lerobot release breaks one module. A checkpoint is a ``pretrained_model`` directory
(``config.json``, ``model.safetensors``, the processor pipelines). Its ``type`` picks the config class and the
policy class (``lerobot.policies.factory.get_policy_class``); the processors come from the checkpoint
(``make_pre_post_processors(config, pretrained_path=...)``), never built by hand. Every way this can fail before
any work starts (not a checkpoint, a type the engine cannot drive, inputs the scene does not provide, a config
this lerobot cannot parse) is one ``DataEngineError`` line.

Configs written by another lerobot line carry fields the installed one does not know (0.6.1 writes
``pretrained_revision``), which draccus rejects outright; they are dropped before parsing, so such a checkpoint
loads whenever the fields the installed lerobot does know still mean the same. When it still cannot be parsed,
the error names the line that wrote it (``lerobot_compat.policy_config_writer``) and the installed one.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.lerobot_compat import LEROBOT_VERSION, policy_config_writer
from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key
from so101_dataengine.scenes.so101 import JOINT_NAMES

if TYPE_CHECKING:
    from lerobot.configs.policies import PreTrainedConfig

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGES_KEY = "observation.images"
"""Diffusion's stacked cameras, (B, n_obs_steps, n_cameras, C, H, W), as its ``select_action`` builds them."""


@dataclass(frozen=True)
class Drive:
    """How the engine drives one lerobot policy type."""

    history: bool
    """False: memoryless chunking (``predict_action_chunk`` of the current observation, the first
    ``n_action_steps`` executed). True: Diffusion's ``n_obs_steps`` observation history and generation."""
    language: bool = False
    """The batch carries the task string (``"task"``), which the type's preprocessor tokenizes."""
    horizon_field: str = "chunk_size"
    """The config field that bounds ``n_action_steps``."""
    autocast_bf16: bool = False
    """Run the forward pass under bf16 autocast on CUDA (measured for ACT; the VLAs manage their own dtype)."""
    flow_noise: bool = False
    """The chunk is integrated from Gaussian noise (flow matching), which ``predict_action_chunk(noise=...)``
    accepts, shaped (B, chunk_size, max_action_dim): the engine draws it per slot, seeded with the episode."""


DRIVES: dict[str, Drive] = {
    "act": Drive(history=False, autocast_bf16=True),
    "diffusion": Drive(history=True, horizon_field="horizon"),
    "smolvla": Drive(history=False, language=True, flow_noise=True),
    "pi0": Drive(history=False, language=True, flow_noise=True),
    "pi05": Drive(history=False, language=True, flow_noise=True),
}
"""The lerobot policy types the engine drives; any other type is refused with this list."""


def read_policy_config(checkpoint: Path) -> dict[str, Any]:
    """``config.json`` of a ``pretrained_model`` directory, as written (no lerobot involved)."""
    config_file = Path(checkpoint) / "config.json"
    if not config_file.is_file():
        raise DataEngineError(
            f"{checkpoint} is not a LeRobot checkpoint (no config.json): pass a .../pretrained_model directory"
        )
    try:
        raw = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataEngineError(f"{config_file} is not valid JSON ({e}): the checkpoint is damaged") from e
    if not isinstance(raw, dict):
        raise DataEngineError(f"{config_file} holds no policy config (a JSON object with a 'type')")
    return raw


def drive_of(checkpoint: Path, raw: dict[str, Any]) -> Drive:
    """The checkpoint's type, if the engine can drive it; one error line listing the types it drives otherwise."""
    kind = raw.get("type")
    if kind not in DRIVES:
        raise DataEngineError(
            f"{checkpoint} holds a {kind!r} policy, which the engine cannot drive: it drives "
            f"{', '.join(DRIVES)} checkpoints"
        )
    return DRIVES[kind]


def image_size_of(config: dict[str, Any]) -> int:
    """The square image size the checkpoint was trained on, checked against the scene's cameras and state."""
    features = config.get("input_features") or {}
    if STATE_KEY not in features:  # the scene has it: the checkpoint is what lacks it
        raise DataEngineError(f"the checkpoint's input_features lack {STATE_KEY}, so it is not an SO-101 policy: pass "
                              "a policy trained on an SO-101 dataset (e.g. 'dataengine train --dataset DEMOS')")
    cameras = {image_feature_key(c) for c in CAMERA_NAMES}
    wanted_images = {k for k, f in features.items() if f.get("type") == "VISUAL"}
    others = {k for k in features if k not in wanted_images and k != STATE_KEY}
    missing = sorted((wanted_images - cameras) | others)
    if missing:
        raise DataEngineError(
            f"the policy needs {', '.join(missing)} which the scene does not provide "
            f"(it has {STATE_KEY}, {', '.join(sorted(cameras))})"
        )
    if features[STATE_KEY]["shape"] != [len(JOINT_NAMES)]:
        raise DataEngineError(f"the policy's {STATE_KEY} has shape {features[STATE_KEY]['shape']}, the SO-101 has 6")
    shapes = {tuple(features[k]["shape"]) for k in wanted_images}
    if len(shapes) != 1 or any(s[1] != s[2] or s[0] != 3 for s in shapes):
        raise DataEngineError(f"the policy's cameras must share one square RGB shape, got {sorted(shapes)}")
    return shapes.pop()[1]


def load_config(checkpoint: Path) -> PreTrainedConfig:
    """The checkpoint's lerobot config, parsed by the installed lerobot (draccus) after dropping the fields its
    config class does not know; one error line saying which lerobot wrote it, which is installed, and what to do
    when it still cannot be parsed."""
    from so101_dataengine.lerobot_compat import PreTrainedConfig

    checkpoint = Path(checkpoint)
    raw = read_policy_config(checkpoint)
    drive_of(checkpoint, raw)
    try:
        config_class = PreTrainedConfig.get_choice_class(raw["type"])
    except Exception as e:  # draccus: a type this lerobot does not register
        raise _unparseable(checkpoint, raw, [], e) from e
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(k for k in raw if k != "type" and k not in known)
    with tempfile.TemporaryDirectory(prefix="dataengine-config-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps({k: v for k, v in raw.items() if k not in unknown}))
        try:
            return PreTrainedConfig.from_pretrained(tmp)
        except Exception as e:  # draccus' parsing and decoding errors, the config's own __post_init__ checks
            raise _unparseable(checkpoint, raw, unknown, e) from e


def _unparseable(checkpoint: Path, raw: dict[str, Any], unknown: list[str], error: Exception) -> DataEngineError:
    installed = LEROBOT_VERSION
    writer, same_line = policy_config_writer(raw)
    dropped = f" (fields lerobot {installed} does not know were dropped: {', '.join(unknown)})" if unknown else ""
    advice = ("the config itself is invalid: retrain it ('dataengine train')" if same_line else
              f"run it with {writer} (the engine installs lerobot 0.4.4 on Python 3.11, 0.6.1 on Python >= 3.12), "
              f"or retrain it with lerobot {installed} ('dataengine train')")
    reason = " ".join(str(error).split()) or type(error).__name__
    return DataEngineError(
        f"{checkpoint}/config.json cannot be parsed by the installed lerobot {installed}: {reason}. It was written "
        f"by {writer}{dropped}: {advice}"
    )


def check_vlm(checkpoint: Path, config: dict[str, Any]) -> None:
    """SmolVLA builds its VLM from ``vlm_model_name`` (config, processor, tokenizer) every time it is loaded, its
    weights in the checkpoint or not: a local VLM directory that is gone is one error line, not a traceback."""
    name = config.get("vlm_model_name")
    if isinstance(name, str) and Path(name).is_absolute() and not (Path(name) / "config.json").is_file():
        raise DataEngineError(
            f"{checkpoint} was trained on the VLM directory {name} (vlm_model_name), which is gone: SmolVLA loads "
            "its VLM's config and tokenizer from it; restore it, or point vlm_model_name in config.json and "
            "policy_preprocessor.json (tokenizer_name) at a copy"
        )


def inspect_checkpoint(checkpoint: Path) -> int:
    """Everything about ``checkpoint`` that can fail, checked before any work: a checkpoint, of a type the engine
    drives, whose config this lerobot parses, whose VLM directory (SmolVLA) is there and whose inputs the scene
    provides. Returns its image size."""
    load_config(checkpoint)  # not a checkpoint, a type not driven, an unparseable config: each its own line
    raw = read_policy_config(checkpoint)
    check_vlm(checkpoint, raw)
    return image_size_of(raw)


def policy_type(checkpoint: Path) -> str:
    """The lerobot policy type of a checkpoint the engine drives (e.g. ``act``, ``diffusion``)."""
    raw = read_policy_config(checkpoint)
    drive_of(Path(checkpoint), raw)
    return str(raw["type"])


@dataclass
class LoadedPolicy:
    """A checkpoint loaded through lerobot's factory: the policy (eval mode, on ``device``) and its processors."""

    policy: Any
    preprocess: Any
    postprocess: Any
    config: PreTrainedConfig
    drive: Drive


def load_policy(checkpoint: Path, device: str, edit: Any = None) -> LoadedPolicy:
    """Load ``checkpoint`` with lerobot's own classes on ``device``. ``edit(config)`` may change the config before
    the policy is built (``n_action_steps``, temporal ensembling), as lerobot's own config overrides would."""
    from so101_dataengine.lerobot_compat import get_policy_class, make_pre_post_processors

    checkpoint = Path(checkpoint)
    config = load_config(checkpoint)
    drive = DRIVES[config.type]
    config.device = device
    if edit is not None:
        edit(config, drive)
    policy = get_policy_class(config.type).from_pretrained(checkpoint, config=config).to(device).eval()
    try:
        preprocess, postprocess = make_pre_post_processors(
            config, pretrained_path=str(checkpoint), preprocessor_overrides={"device_processor": {"device": device}},
        )
    except Exception as e:
        raise DataEngineError(
            f"the processors of {checkpoint} (policy_preprocessor.json, policy_postprocessor.json) cannot be loaded "
            f"by lerobot {LEROBOT_VERSION}: {' '.join(str(e).split())}"
        ) from e
    return LoadedPolicy(policy, preprocess, postprocess, config, drive)
