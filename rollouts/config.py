"""``dataengine rollout``'s settings: one dataclass, its defaults the single source of truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.base.seeds import ROLLOUT_SEED
from so101_dataengine.formats.frames import JPEG_QUALITY
from so101_dataengine.scenes.pick_place import PickPlaceConfig


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
    below ``so101_dataengine.base.seeds.EVAL_SEED``, so evaluations never score a policy on its own training scenes."""
    num_envs: int | None = None
    """Environments stepped together per worker (one batched policy call per control step); None: the largest
    that fits the GPU's and the host's memory (``so101_dataengine.rollouts.capacity``)."""
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
    """Quality of the episode store's JPEG frames (``so101_dataengine.formats.frames``)."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    scene: PickPlaceConfig = field(default_factory=lambda: PickPlaceConfig(image_size=None))
    """``image_size`` None: the policy's input size (224 for the scripted policy)."""
