"""Configuration of the success classifier: dataclasses whose defaults are the only defaults (the CLI overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key

DEFAULT_VIEWS: tuple[str, ...] = tuple(image_feature_key(camera) for camera in CAMERA_NAMES)


@dataclass
class ModelConfig:
    """What the network looks at and how big it is."""

    backbone: str = "regnetx_002"
    """Any timm model name; created with ``pretrained=False`` (weights only from a local file, ``--pretrained``).
    RegNetX-200MF: measured (benchmarks/classifier_backbones.py) as precise as resnet10t on held-out episodes at
    ~2.5x less training time per epoch and ~2.5x faster CPU scoring; MobileNetV3/LCNet are faster still but left
    narrower score margins."""
    views: tuple[str, ...] = DEFAULT_VIEWS
    """Camera keys fed to the network, each through the shared backbone; features are concatenated."""
    image_size: int = 64
    """Network input (square): stored frames are resized to this on the device. Small is fast; the cube is ~25 mm
    (at 64 px, 96 px gave no better held-out precision for ~2.5x the training time)."""


@dataclass
class FrameSampling:
    """Which frames of an episode are labelled, and the episode-level rule."""

    end_frames: int = 8
    """K: the last K frames carry the episode's label, and an episode's score is the mean of their success
    probabilities. A success ends after the cube rested 15 steps in the bowl, so these frames all show it there."""
    early_frames: int = 4
    """Frames drawn from the first ``early_fraction`` of every episode, labelled failure (the cube is not in the
    bowl yet): negatives that teach 'the task is not done' rather than 'this is a failed run'."""
    early_fraction: float = 0.4


@dataclass
class ClassifierTrainConfig:
    """``dataengine classifier train``."""

    out: Path
    runs: list[Path] = field(default_factory=list)
    """Rollout runs (episode stores): episodes labelled by the simulator's outcome, or by a human label."""
    demos: list[Path] = field(default_factory=list)
    """LeRobot v3 datasets of expert demos: end frames success, early frames failure."""
    labels: Path | None = None
    """Human labels (JSONL, ``dataengine classifier label``); they win over the simulator's outcome."""
    model: ModelConfig = field(default_factory=ModelConfig)
    frames: FrameSampling = field(default_factory=FrameSampling)
    epochs: int = 40
    patience: int = 6
    """Early stopping: epochs without a better validation loss."""
    min_improvement: float = 0.0
    """Early stopping: a validation loss counts as better (resets the patience) only when it beats the best by
    more than this; the weights kept are still those of the lowest loss."""
    batch_size: int = 64
    """Small batches: more updates per epoch on small labelled sets (hundreds of episodes), so fewer epochs."""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.25
    """Episodes (never frames) held out per class for early stopping and threshold calibration."""
    target_precision: float = 0.99
    """Threshold calibration: false positives pollute curated datasets, false negatives only cost rollouts."""
    seed: int = 0
    device: str | None = None
    """None: cuda when available."""
    pretrained: Path | None = None
    """Local backbone weights (safetensors) to start from; nothing is ever downloaded."""
    init: Path | None = None
    """An existing classifier artifact to fine-tune (its backbone and sizes must match)."""
    workers: int = 2
    """Threads decoding episodes."""


@dataclass
class ClassifierEvalConfig:
    """``dataengine classifier eval``."""

    artifact: Path
    runs: list[Path]
    out: Path
    labels: Path | None = None
    """Human labels replace the simulator's outcome as ground truth where given."""
    recall_floor: float = 0.90
    """Also report the best precision at recall >= this (the issue's target)."""
    device: str | None = None
    workers: int = 2
    batch_episodes: int = 32
    """Episodes decoded and scored together."""
