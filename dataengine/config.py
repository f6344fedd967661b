"""Configuration of the engine's commands: dataclasses whose defaults are the single source of truth.

Stage-specific settings live beside their stage (``scenes.pick_place.PickPlaceConfig``,
``scenes.expert.ExpertConfig``); the command configs here compose them. Every run saves its full config as JSON
beside its outputs (:func:`to_jsonable`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataengine.executors import ExecutorConfig
from dataengine.seeds import DEMO_SEED, ROLLOUT_SEED
from scenes.expert import ExpertConfig
from rollouts.frames import JPEG_QUALITY
from scenes.pick_place import PickPlaceConfig


@dataclass
class DemosConfig:
    """``dataengine demos``: record scripted-expert episodes as a LeRobot v3 dataset."""

    out: Path
    n: int = 400
    """The ACT recipe's count (docs/act_recipe.md): ACT trained on 400 demos reached >= 80 %, on 200 at most 66 %."""
    repo_id: str = "local/so101_pick_place_demos"
    seed: int = DEMO_SEED
    """Attempt k uses scene seed ``seed + k`` (discarded failures count). With ``workers`` > 1, shard j's attempts
    start at ``seed + j * n * max_attempts_per_episode`` (disjoint), so the scenes depend on ``workers``."""
    include_failures: bool = False
    max_attempts_per_episode: int = 3
    """Give up once ``n * this`` attempts have not produced ``n`` kept episodes (per shard with ``workers`` > 1)."""
    vcodec: str = "libsvtav1"
    """lerobot's default codec (AV1); ``h264`` encodes faster."""
    workers: int = 1
    """Record shards in parallel on this many dask workers, then merge them (1: in this process)."""
    scheduler: str | None = None
    """Run the shards on an existing dask cluster instead of an embedded one."""
    scene: PickPlaceConfig = field(default_factory=PickPlaceConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)


def default_of(config_class: type, name: str):
    """The default of one field of a config dataclass, so a command-line flag can show it without repeating it."""
    field_ = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return field_.default_factory() if field_.default is dataclasses.MISSING else field_.default


def to_jsonable(value):
    """Dataclasses, paths, enums and numpy values as plain JSON types."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class RolloutConfig:
    """``dataengine rollout``: run a policy over ``n`` seeded episodes into an episode store."""

    policy: str
    """``act`` (the newest ACT the engine trained), ``scripted``, or a path to a ``pretrained_model`` directory."""
    n: int = 1000
    out: Path | None = None
    """Run directory; default ``<workspace>/rollouts/run-<time>``."""
    seed: int = ROLLOUT_SEED
    """Episode k uses scene seed ``seed + k``. Far from the demo seeds (0, 1, ...) so rollouts see new scenes, and
    below ``dataengine.seeds.EVAL_SEED``, so evaluations never score a policy on its own training scenes."""
    num_envs: int | None = None
    """Environments stepped together per worker (one batched policy call per control step); None: the largest
    that fits the GPU's and the host's memory (``rollouts.capacity``)."""
    lanes: int | None = None
    """Threads per worker stepping physics and encoding video; None: the worker's share of the cores, minus one."""
    chunk_size: int | None = None
    """Episodes per dask task: the unit of scheduling and retry (resume is per episode); None: ``num_envs``."""
    resume: bool = False
    device: str | None = None
    temporal_ensemble_coeff: float | None = None
    """Set (e.g. 0.01) for ACT temporal ensembling: a policy call every step; else chunk execution."""
    n_action_steps: int | None = None
    """Actions executed per chunk (default: the checkpoint's)."""
    classifier: Path | None = None
    """A success classifier artifact: each chunk's episodes are scored as soon as they are stored, on the worker's
    GPU, and the run's summary says how many it accepts (and, in simulation, how precisely)."""
    jpeg_quality: int = JPEG_QUALITY
    """Quality of the episode store's JPEG frames (``rollouts.frames``)."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    scene: PickPlaceConfig = field(default_factory=lambda: PickPlaceConfig(image_size=None))
    """``image_size`` None: the policy's input size (224 for the scripted policy)."""
