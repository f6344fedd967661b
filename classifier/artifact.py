"""The classifier artifact: ``model.safetensors`` + ``classifier.json`` in one directory, and scoring with it.

No pickles: weights are safetensors, everything else is JSON (backbone, views, sizes, episode rule, calibrated
threshold, training provenance and metrics). ``version`` is a short hash of both files, so every curated dataset
can say which classifier chose its episodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.classifier.config import FrameSampling, ModelConfig
from so101_dataengine.classifier.model import SuccessNet, load_weights, pick_device

WEIGHTS = "model.safetensors"
CONFIG = "classifier.json"
FORMAT = 1
SCORE_BATCH_FRAMES = 4096
"""Frames per forward pass when scoring (large batches keep the GPU busy; small inputs keep memory low)."""


@dataclass
class ArtifactConfig:
    """What ``classifier.json`` holds besides the training record."""

    model: ModelConfig
    frames: FrameSampling
    frame_size: int
    """Size of the stored frames it was trained on; episodes of another size are refused (a silent resize from
    another resolution changes what the network sees)."""
    threshold: float
    target_precision: float

    def to_json(self, training: dict) -> dict:
        return {"format": FORMAT, "backbone": self.model.backbone, "views": list(self.model.views),
                "image_size": self.model.image_size, "frame_size": self.frame_size,
                "end_frames": self.frames.end_frames, "early_frames": self.frames.early_frames,
                "early_fraction": self.frames.early_fraction,
                "episode_rule": episode_rule(self.frames.end_frames),
                "threshold": self.threshold, "target_precision": self.target_precision, "training": training}


def episode_rule(k: int) -> str:
    return f"mean success probability of the episode's last {k} frames (all views of a frame scored together)"


class SuccessClassifier:
    """A loaded artifact: ``score_episodes`` gives episode-level success probabilities; ``threshold`` decides."""

    def __init__(self, net: SuccessNet, config: ArtifactConfig, training: dict, version: str, path: Path | None,
                 device: str | None = None):
        self.config = config
        self.training = training
        self.version = version
        self.path = path
        self.device = pick_device(device)
        self.net = net.to(self.device).eval().to(memory_format=torch.channels_last)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def end_frames(self) -> int:
        return self.config.frames.end_frames

    def describe(self) -> dict:
        c = self.config
        return {"path": str(self.path) if self.path else None, "version": self.version,
                "backbone": c.model.backbone, "views": list(c.model.views), "image_size": c.model.image_size,
                "frame_size": c.frame_size, "episode_rule": episode_rule(c.frames.end_frames),
                "threshold": c.threshold, "target_precision": c.target_precision, "training": self.training}

    # -- scoring -------------------------------------------------------------------------------------------
    def end_frames_of(self, images: dict[str, np.ndarray], name: str) -> np.ndarray:
        """The last K frames of one episode as ``(K, V, H, W, 3)`` uint8 (episodes shorter than K: all frames,
        the first one repeated in front)."""
        missing = [v for v in self.config.model.views if v not in images]
        if missing:
            raise DataEngineError(f"{name} has no {', '.join(missing)} (it has {', '.join(sorted(images))}): "
                                  f"this classifier needs {', '.join(self.config.model.views)}")
        views = [images[v] for v in self.config.model.views]
        size = views[0].shape[1]
        if any(v.shape[1:3] != (self.config.frame_size, self.config.frame_size) for v in views):
            raise DataEngineError(
                f"{name} has {size} px frames but this classifier was trained on {self.config.frame_size} px frames: "
                f"train a classifier on {size} px rollouts, or roll out with --image-size {self.config.frame_size}"
            )
        k = self.end_frames
        stacked = np.stack([v[-k:] for v in views], axis=1)
        if len(stacked) < k:
            stacked = np.concatenate([np.repeat(stacked[:1], k - len(stacked), axis=0), stacked])
        return stacked

    @torch.inference_mode()
    def score_frames(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Success probability of each frame: ``(N, V, H, W, 3)`` uint8 -> ``(N,)`` float32, batched on the device
        (bf16 autocast on CUDA)."""
        frames = torch.as_tensor(frames)
        on_cuda = self.device.type == "cuda"
        out = []
        for start in range(0, len(frames), SCORE_BATCH_FRAMES):
            batch = frames[start : start + SCORE_BATCH_FRAMES].to(self.device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else nullcontext():
                logits = self.net(batch)
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def score_episodes(self, episodes: Sequence) -> np.ndarray:
        """Episode-level success probability (see ``episode_rule``) of ``so101_dataengine.formats.store.StoredEpisode``s."""
        if not episodes:
            return np.zeros(0, dtype=np.float32)
        frames = np.concatenate([self.end_frames_of(e.images, f"episode {e.meta.get('episode_id', '?')}")
                                 for e in episodes])
        return self.score_frames(frames).reshape(len(episodes), self.end_frames).mean(axis=1)


# -- files --------------------------------------------------------------------------------------------------
def _version(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:12]


def save_artifact(net: SuccessNet, config: ArtifactConfig, training: dict, out: Path) -> str:
    """Write the artifact directory atomically (built beside ``out``, renamed into place); returns its version."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}-{uuid.uuid4().hex}")
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, tmp / WEIGHTS, metadata={"format": "dataengine-success-classifier"})
        (tmp / CONFIG).write_text(json.dumps(config.to_json(training), indent=2))
        if out.exists():
            out.rmdir()  # an empty directory made by the output check
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _version(out)


def read_artifact_config(path: Path) -> tuple[ArtifactConfig, dict]:
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise DataEngineError(f"{path} is not a classifier artifact (needs {WEIGHTS} and {CONFIG}): "
                              f"pass the directory written by 'dataengine classifier train'")
    try:
        raw = json.loads((path / CONFIG).read_text())
        if raw.get("format") != FORMAT:
            raise DataEngineError(f"{path / CONFIG} has format {raw.get('format')!r}, this version reads {FORMAT}: "
                                  f"re-train the classifier")
        model = ModelConfig(backbone=raw["backbone"], views=tuple(raw["views"]), image_size=int(raw["image_size"]))
        frames = FrameSampling(end_frames=int(raw["end_frames"]), early_frames=int(raw["early_frames"]),
                               early_fraction=float(raw["early_fraction"]))
        config = ArtifactConfig(model, frames, int(raw["frame_size"]), float(raw["threshold"]),
                                float(raw["target_precision"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataEngineError(f"{path / CONFIG} is damaged ({type(error).__name__}: {error}): re-train or restore it")
    return config, raw.get("training", {})


def load_classifier(path: Path, device: str | None = None) -> SuccessClassifier:
    """Load an artifact directory; a config that does not match its weights is one clear error."""
    path = Path(path)
    config, training = read_artifact_config(path)
    net = SuccessNet(config.model.backbone, len(config.model.views), config.model.image_size)
    weights = load_weights(path / WEIGHTS, "re-train or restore it")
    check_weights_fit(net, weights, f"{path}: its {CONFIG} says {config.model.backbone} with "
                                    f"{len(config.model.views)} views, but {WEIGHTS}")
    net.load_state_dict(weights)
    return SuccessClassifier(net, config, training, _version(path), path, device)


def check_weights_fit(net: torch.nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    """Raise one line naming the first mismatching tensors when ``weights`` are not ``net``'s."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("other shapes", shapes)) if keys)
        raise DataEngineError(f"{what} holds another model's weights ({detail}): the files come from different "
                              f"classifiers; re-train or restore the artifact")
