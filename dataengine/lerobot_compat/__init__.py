"""The one place that knows which lerobot is installed: 0.4.4 (Python 3.11) or 0.6.x (Python >= 3.12).

Why one place: lerobot 0.6 reorganised its dataset package (``datasets/utils.py`` split into ``io_utils``,
``feature_utils`` and ``dataset_metadata``; per-sample reads moved from ``LeRobotDataset`` into a
``DatasetReader``; ``meta/info.json`` became a ``DatasetInfo`` dataclass), decodes with PyAV itself instead of
torchvision's removed ``VideoReader``, and writes ``pretrained_revision`` into policy configs. Everything else in
the engine imports lerobot's names from here (``from so101_dataengine.lerobot_compat import LeRobotDataset``) and
calls the few adapted functions below, so a lerobot release changes this package and nothing else.

Names are resolved on first use, not at import: importing lerobot loads torch (seconds), and the CLI must answer
``--help`` and bad input without it. They are looked up again on every access (cheap once imported), so a test's
``monkeypatch`` of lerobot's own module is seen.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

__all__ = ["LEROBOT_VERSION", "LEROBOT_06", "ReadSide", "codec_options", "create_dataset", "dataset_reader_class",
           "decode_video_frames_pyav", "empty_dataset_info", "hub_unreachable_errors", "install_video_fallback",
           "lerobot_home_bindings", "policy_config_writer", "read_side", "write_info"]

LEROBOT_VERSION: str = version("lerobot")
"""The installed lerobot, from its distribution metadata (no lerobot import)."""
LEROBOT_06: bool = tuple(int(part) for part in LEROBOT_VERSION.split(".")[:2]) >= (0, 6)
"""True on the 0.6 line (its module layout); False on 0.4.4."""
LINES = ("lerobot <= 0.5", "lerobot >= 0.6")
"""The two lines by ``LEROBOT_06``; the engine installs 0.4.4 on Python 3.11 and 0.6.1 on Python >= 3.12."""

_NAMES: dict[str, tuple[str, str]] = {
    # name: (module on lerobot 0.4.4, module on lerobot 0.6)
    "LeRobotDataset": ("lerobot.datasets.lerobot_dataset", "lerobot.datasets.lerobot_dataset"),
    "LeRobotDatasetMetadata": ("lerobot.datasets.lerobot_dataset", "lerobot.datasets.dataset_metadata"),
    "CODEBASE_VERSION": ("lerobot.datasets.lerobot_dataset", "lerobot.datasets.dataset_metadata"),
    "DEFAULT_FEATURES": ("lerobot.datasets.utils", "lerobot.utils.constants"),
    "get_hf_features_from_features": ("lerobot.datasets.utils", "lerobot.datasets.feature_utils"),
    "write_stats": ("lerobot.datasets.utils", "lerobot.datasets.io_utils"),
    "write_tasks": ("lerobot.datasets.utils", "lerobot.datasets.io_utils"),
    "is_valid_version": ("lerobot.datasets.utils", "lerobot.datasets.utils"),
    "get_safe_version": ("lerobot.datasets.utils", "lerobot.datasets.utils"),
    "VALID_VIDEO_CODECS": ("lerobot.datasets.video_utils", "lerobot.configs.video"),
    "FrameTimestampError": ("lerobot.datasets.video_utils", "lerobot.datasets.video_utils"),
    "concatenate_video_files": ("lerobot.datasets.video_utils", "lerobot.datasets.video_utils"),
    "get_video_info": ("lerobot.datasets.video_utils", "lerobot.datasets.video_utils"),
    "HF_LEROBOT_HOME": ("lerobot.utils.constants", "lerobot.utils.constants"),
    "PreTrainedConfig": ("lerobot.configs.policies", "lerobot.configs.policies"),
    "get_policy_class": ("lerobot.policies.factory", "lerobot.policies.factory"),
    "make_pre_post_processors": ("lerobot.policies.factory", "lerobot.policies.factory"),
    "populate_queues": ("lerobot.policies.utils", "lerobot.policies.utils"),
    "ACTTemporalEnsembler": ("lerobot.policies.act.modeling_act", "lerobot.policies.act.modeling_act"),
}
"""Every lerobot name the engine uses, by where each lerobot line keeps it."""


def __getattr__(name: str) -> Any:
    if name == "decode_video_frames_pyav":  # PyAV and torch load with it: only when asked for
        from so101_dataengine.lerobot_compat.pyav import decode_video_frames_pyav

        return decode_video_frames_pyav
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "PreTrainedConfig":
        importlib.import_module("lerobot.policies")  # registers every policy's config class with draccus
    return getattr(importlib.import_module(_NAMES[name][LEROBOT_06]), name)


def lerobot_home_bindings(home: Path) -> list[tuple[str, Path]]:
    """Every module-level copy of lerobot's cache root (``$HF_LEROBOT_HOME``, read once at import) as
    ("module.NAME", value for ``home``): rebinding them all points lerobot at ``home`` inside one process (tests do,
    with monkeypatch). 0.6 adds the revision-safe Hub snapshot cache ``home/hub``."""
    home = Path(home)
    if not LEROBOT_06:
        return [("lerobot.utils.constants.HF_LEROBOT_HOME", home),
                ("lerobot.datasets.lerobot_dataset.HF_LEROBOT_HOME", home)]
    return [(f"{module}.{name}", value) for module in ("lerobot.utils.constants", "lerobot.datasets.dataset_metadata")
            for name, value in (("HF_LEROBOT_HOME", home), ("HF_LEROBOT_HUB_CACHE", home / "hub"))] + [
        ("lerobot.datasets.lerobot_dataset.HF_LEROBOT_HUB_CACHE", home / "hub")]


def hub_unreachable_errors() -> tuple[type[Exception], ...]:
    """What the Hub client raises when no answer comes at all (refused, timed out, no route, DNS): requests' errors
    under huggingface-hub 0.x (lerobot 0.4.4's), httpx's transport errors under 1.x (lerobot 0.6's)."""
    if LEROBOT_06:
        import httpx

        return (httpx.TransportError,)
    from requests.exceptions import RequestException

    return (RequestException,)


def policy_config_writer(raw: dict) -> tuple[str, bool]:
    """Which lerobot line wrote a checkpoint's ``config.json`` (it records no version), and whether that is the
    installed line: only 0.6 writes ``pretrained_revision`` (0.4.4 and 0.5.1 do not)."""
    newer = "pretrained_revision" in raw
    return LINES[newer], newer == LEROBOT_06


def install_video_fallback() -> bool:
    """On lerobot 0.4.4 without ``torchvision.io.VideoReader`` (torchvision >= 0.26 removed it), route its
    ``pyav`` decoding through ``decode_video_frames_pyav``; True if installed. lerobot 0.6 needs nothing."""
    import torchvision

    if LEROBOT_06 or hasattr(torchvision.io, "VideoReader"):
        return False
    from lerobot.datasets import video_utils

    video_utils.decode_video_frames_torchvision = __getattr__("decode_video_frames_pyav")
    return True


def empty_dataset_info(fps: int, features: dict, robot_type: str) -> dict:
    """lerobot's ``meta/info.json`` for a new video dataset with ``features``, as a plain dict (0.6 builds a
    ``DatasetInfo``; the engine edits and writes dicts)."""
    utils = importlib.import_module("lerobot.datasets.feature_utils" if LEROBOT_06 else "lerobot.datasets.utils")
    info = utils.create_empty_dataset_info(__getattr__("CODEBASE_VERSION"), fps, features, True, robot_type)
    return info.to_dict() if LEROBOT_06 else info


def write_info(info: dict, root: Path) -> None:
    """Write ``info`` as ``root/meta/info.json`` through lerobot's own writer (on 0.6 through ``DatasetInfo``,
    which checks fps and sizes as lerobot's loader will)."""
    if LEROBOT_06:
        from lerobot.datasets.io_utils import write_info as write
        from lerobot.datasets.utils import DatasetInfo

        write(DatasetInfo.from_dict(json.loads(json.dumps(info))), Path(root))
    else:
        from lerobot.datasets.utils import write_info as write

        write(info, Path(root))


def create_dataset(repo_id: str, fps: int, features: dict, root: Path, robot_type: str, vcodec: str,
                   streaming: bool = False) -> Any:
    """A new video dataset written by lerobot's own recording API (``add_frame / save_episode / finalize``), by
    default on its classic path (frames staged as images, encoded at ``save_episode``), with ``streaming`` encoded
    as frames arrive; 0.6 takes the codec as an encoder config."""
    create = __getattr__("LeRobotDataset").create
    common = dict(repo_id=repo_id, fps=fps, features=features, root=root, robot_type=robot_type, use_videos=True,
                  streaming_encoding=streaming)
    if LEROBOT_06:
        from lerobot.configs.video import RGBEncoderConfig

        return create(**common, rgb_encoder=RGBEncoderConfig(vcodec=vcodec))
    return create(**common, vcodec=vcodec)


def codec_options(vcodec: str) -> dict[str, str]:
    """lerobot's default encoder options for ``vcodec``, thread settings left out. 0.6 also passes SVT-AV1
    ``fast-decode=0``, which is SVT-AV1's own default, so it is left out too: both lines encode alike."""
    if not LEROBOT_06:
        from lerobot.datasets.video_utils import _get_codec_options

        return _get_codec_options(vcodec)
    from lerobot.configs.video import RGBEncoderConfig

    options = RGBEncoderConfig(vcodec=vcodec).get_codec_options(as_strings=True)
    if options.get("svtav1-params") == "fast-decode=0":
        del options["svtav1-params"]
    return options


def dataset_reader_class() -> type:
    """The class whose ``_query_videos(query_timestamps, ep_idx)`` and ``_query_hf_dataset(query_indices)`` make
    every sample: ``LeRobotDataset`` on 0.4.4, its ``DatasetReader`` on 0.6 (what the frame cache replaces)."""
    if LEROBOT_06:
        from lerobot.datasets.dataset_reader import DatasetReader

        return DatasetReader
    return __getattr__("LeRobotDataset")


@dataclass(frozen=True)
class ReadSide:
    """What a reader (``dataset_reader_class()``) knows about the dataset it reads, under one set of names."""

    root: Path
    meta: Any
    """``LeRobotDatasetMetadata``: ``episodes``, ``video_keys``, ``fps``."""
    tolerance_s: float
    episode_subset: bool
    """Only some episodes are loaded: row numbers are not dataset indices."""
    uint8: bool
    """Frames are wanted as raw uint8 (0.6's ``return_uint8``), not float in [0, 1]."""


def read_side(reader: Any) -> ReadSide:
    """``reader``'s dataset, whichever lerobot made it."""
    if LEROBOT_06:
        return ReadSide(Path(reader.root), reader._meta, reader._tolerance_s,
                        reader._absolute_to_relative_idx is not None, bool(reader._return_uint8))
    return ReadSide(Path(reader.root), reader.meta, reader.tolerance_s, reader._absolute_to_relative_idx is not None,
                    False)
