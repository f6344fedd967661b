"""``dataengine classifier train``: labelled frames -> a calibrated classifier artifact.

Episodes (never frames) are split into training and validation; training draws class-balanced batches with
label-preserving augmentation (small crops and shifts, colour jitter) and stops early on the validation loss;
the threshold is calibrated on the validation episodes with the episode-level rule, for the target precision.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import hashlib
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from so101_dataengine.base.configs import to_jsonable
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.preflight import (
    check_image_size,
    check_new_output_dir,
    check_positive,
    check_positive_finite,
)
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.classifier.artifact import ArtifactConfig, load_classifier, save_artifact
from so101_dataengine.classifier.config import ClassifierTrainConfig
from so101_dataengine.classifier.data import (
    EpisodeRef,
    FrameSet,
    check_classes,
    check_labels_known,
    demo_episodes,
    load_frames,
    rollout_episodes,
    split_by_episode,
)
from so101_dataengine.classifier.labels import read_labels
from so101_dataengine.classifier.metrics import calibrate_threshold, roc_auc
from so101_dataengine.classifier.model import SuccessNet, load_backbone_weights, pick_device
from so101_dataengine.formats.store import EpisodeStore


@dataclass
class FitResult:
    epochs: int
    best_epoch: int
    val_loss: float
    val_auc: float
    seconds: float
    frames_seen: int
    history: list[dict]
    """Per epoch: wall seconds (training steps and the validation pass), validation loss and episode ROC-AUC."""


@dataclass
class TrainResult:
    artifact: Path
    version: str
    threshold: float
    calibration: dict
    fit: FitResult
    episodes: dict


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Label-preserving augmentation of float images ``(N, 3, S, S)`` in 0..255: a random crop of 88-100 % of
    the side, shifted by up to 4 %, resized back (bilinear), then brightness, contrast and saturation jitter of
    +-15 %. The cube and bowl stay in view, so success stays success."""
    n, device = x.shape[0], x.device

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.rand(n, *shape, generator=generator, device="cpu").to(device) * (high - low) + low

    scale = uniform(0.88, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = uniform(-0.04, 0.04, 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = x * uniform(0.85, 1.15, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.85, 1.15, 1, 1, 1) + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * uniform(0.85, 1.15, 1, 1, 1) + gray
    return x.clamp(0, 255)


def _prepared(net: SuccessNet, frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Frames ``(B, V, S, S, 3)`` uint8 -> normalised network input, augmented when a generator is given."""
    b, v, s, _, _ = frames.shape
    x = frames.reshape(b * v, s, s, 3).permute(0, 3, 1, 2).float()
    if generator is not None:
        x = augment(x, generator)
    x = (x - net.mean) / net.std
    return x.contiguous(memory_format=torch.channels_last)


def _balanced_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of the two classes' mean BCE: a validation loss that a majority class cannot dominate."""
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    parts = [losses[labels == c].mean() for c in (0.0, 1.0) if (labels == c).any()]
    return torch.stack(parts).mean()


@torch.inference_mode()
def predict(net: SuccessNet, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Logits of prepared-size uint8 frames (no augmentation)."""
    net.eval()
    out = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    for start in range(0, len(images), batch_size):
        with autocast:
            out.append(net.logits(_prepared(net, images[start : start + batch_size].to(device), None)).float())
    return torch.cat(out).cpu()


def episode_scores(probabilities: np.ndarray, frames: FrameSet, episodes: list[int]) -> np.ndarray:
    """The episode-level rule on held frames: the mean probability of each episode's end frames."""
    return np.array([probabilities[(frames.episode == e) & frames.end_frame].mean() for e in episodes])


def fit(net: SuccessNet, frames: FrameSet, refs: list[EpisodeRef], train_eps: list[int], val_eps: list[int],
        config: ClassifierTrainConfig, device: torch.device, console: Console) -> FitResult:
    """Train ``net`` in place (ending with the best validation-loss weights)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    in_train = np.isin(frames.episode, train_eps)
    in_val = np.isin(frames.episode, val_eps)
    images = torch.from_numpy(frames.images)
    if device.type == "cuda":
        images = images.to(device)
    labels = torch.from_numpy(frames.labels)
    train_idx = torch.from_numpy(np.flatnonzero(in_train))
    val_idx = torch.from_numpy(np.flatnonzero(in_val))
    train_labels = labels[train_idx]
    positives = float(train_labels.sum())
    if positives == 0 or positives == len(train_labels):
        raise DataEngineError("the training frames hold only one class: add episodes of the other class")
    weights = torch.where(train_labels > 0.5, 0.5 / positives, 0.5 / (len(train_labels) - positives))
    net.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    steps = max(1, int(np.ceil(len(train_idx) / config.batch_size)))
    best = (float("inf"), 0, copy.deepcopy(net.state_dict()), float("nan"))
    start, epoch, seen, history = time.perf_counter(), 0, 0, []
    # patience counts from the last epoch whose validation loss beat the best by more than min_improvement: once the
    # loss only creeps down, training stops (the weights kept are still those of the lowest loss)
    last_gain = 0
    val_labels = labels[val_idx]
    with progress_bar(console, "classifier train") as progress:
        bar = progress.add_task("train", total=config.epochs, status="")
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            net.train()
            order = train_idx[torch.multinomial(weights, steps * config.batch_size, True, generator=generator)]
            for step in range(steps):
                batch = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = _prepared(net, images[batch.to(images.device)].to(device), generator)
                with autocast:
                    logits = net.logits(x).float()
                loss = F.binary_cross_entropy_with_logits(logits, labels[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen += len(batch)
            val_logits = predict(net, images[val_idx.to(images.device)], device)
            val_loss = float(_balanced_loss(val_logits, val_labels))
            probabilities = torch.sigmoid(val_logits).numpy()
            all_probs = np.zeros(len(frames.labels), dtype=np.float32)
            all_probs[val_idx.numpy()] = probabilities
            val_auc = roc_auc(episode_scores(all_probs, frames, val_eps), [refs[e].success for e in val_eps])
            if val_loss < best[0] - config.min_improvement:
                last_gain = epoch
            if val_loss < best[0]:
                best = (val_loss, epoch, copy.deepcopy(net.state_dict()), val_auc)
            history.append({"seconds": time.perf_counter() - epoch_start, "val_loss": val_loss, "val_auc": val_auc})
            progress.update(bar, completed=epoch, status=f"loss {loss.item():.3f}  val {val_loss:.3f}  "
                                                         f"val episode AUC {val_auc:.3f}  best epoch {best[1]}")
            if epoch - last_gain >= config.patience:
                break
    net.load_state_dict(best[2])
    return FitResult(epoch, best[1], best[0], best[3], time.perf_counter() - start, seen, history)


def collect_episodes(config: ClassifierTrainConfig) -> list[EpisodeRef]:
    labels = read_labels(config.labels) if config.labels else {}
    refs: list[EpisodeRef] = []
    for run in config.runs:
        refs += rollout_episodes(run, labels)
    for dataset in config.demos:
        refs += demo_episodes(dataset)
    if labels:
        check_labels_known(labels, refs, config.labels)
    check_classes(refs)
    return refs


def _initial_net(config: ClassifierTrainConfig) -> SuccessNet:
    torch.manual_seed(config.seed)  # the random initial weights too: one seed, one classifier
    net = SuccessNet(config.model.backbone, len(config.model.views), config.model.image_size)
    if config.init is not None:
        previous = load_classifier(config.init, device="cpu")
        theirs, ours = previous.config.model, config.model
        if (theirs.backbone, tuple(theirs.views), theirs.image_size) != (ours.backbone, tuple(ours.views),
                                                                           ours.image_size):
            raise DataEngineError(
                f"--init {config.init} is a {theirs.backbone} classifier of {', '.join(theirs.views)} at "
                f"{theirs.image_size} px, but this training asks for {ours.backbone} of {', '.join(ours.views)} at "
                f"{ours.image_size} px: use the same --backbone/--views/--image-size, or train from scratch")
        net.load_state_dict(previous.net.state_dict())
    elif config.pretrained is not None:
        load_backbone_weights(net, config.pretrained, config.model.backbone)
    return net


def _provenance(config: ClassifierTrainConfig, refs: list[EpisodeRef], train_eps: list[int], val_eps: list[int],
                frames: FrameSet) -> dict:
    runs = []
    for run in config.runs:
        manifest = EpisodeStore.open(run).manifest
        members = [r for r in refs if r.kind == "rollout" and r.origin == manifest["run_id"]]
        runs.append({"path": str(Path(run).resolve()), "run_id": manifest["run_id"], "policy": manifest.get("policy"),
                     "seed": manifest.get("seed"), "episodes": len(members),
                     "outcomes": dict(collections.Counter(r.outcome for r in members))})
    labels = None
    if config.labels:
        labels = {"path": str(Path(config.labels).resolve()),
                  "sha256": hashlib.sha256(Path(config.labels).read_bytes()).hexdigest(),
                  "used": sum(r.label_source == "human" for r in refs)}
    return {
        "runs": runs,
        "demos": [{"path": str(Path(d).resolve()), "episodes": sum(r.path == str(Path(d).resolve()) for r in refs)}
                  for d in config.demos],
        "labels_file": labels,
        "label_sources": dict(collections.Counter(r.label_source for r in refs)),
        "episodes": {"train": len(train_eps), "val": len(val_eps),
                     "train_success": sum(refs[e].success for e in train_eps),
                     "val_success": sum(refs[e].success for e in val_eps)},
        "val_episodes": [refs[e].key for e in val_eps],
        "frames": {"total": int(len(frames.labels)), "success": int(frames.labels.sum())},
    }


def check_options(config: ClassifierTrainConfig) -> None:
    """Every number the user gave, before any episode is decoded: torch refuses a NaN learning rate only when the
    optimizer is built, after every frame is loaded, and a negative patience or minimum improvement would silently
    turn early stopping into 'stop after the first epoch' or 'never count a gain'."""
    if not config.runs and not config.demos:
        raise DataEngineError("nothing to train on: pass --runs RUN ... and/or --demos DATASET ...")
    for name, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size),
                        ("--end-frames", config.frames.end_frames), ("--patience", config.patience)):
        check_positive(name, value)
    check_image_size("--image-size", config.model.image_size, minimum=1)  # frames are resized to it, any size fits
    check_positive_finite("--lr", config.learning_rate)
    if not (math.isfinite(config.min_improvement) and config.min_improvement >= 0):
        raise DataEngineError(f"--min-improvement must be a finite validation-loss gain >= 0 (e.g. 0.001), "
                              f"got {config.min_improvement}")
    if not 0 < config.target_precision <= 1 or not 0 < config.val_fraction < 1:
        raise DataEngineError("--target-precision must be in (0, 1] and --val-fraction in (0, 1)")


def train_classifier(config: ClassifierTrainConfig, console: Console | None = None) -> TrainResult:
    console = console or Console(stderr=True)
    check_options(config)
    device = pick_device(config.device)
    check_new_output_dir(config.out)
    net = _initial_net(config)
    refs = collect_episodes(config)
    train_eps, val_eps = split_by_episode(refs, config.val_fraction, config.seed)
    with progress_bar(console, "classifier frames") as progress:
        bar = progress.add_task("load", total=len(refs), status="decoding episodes")
        frames = load_frames(refs, config.model.views, config.model.image_size, config.frames, config.seed,
                             config.workers, on_episode=lambda: progress.advance(bar))
    result = fit(net, frames, refs, train_eps, val_eps, config, device, console)
    probabilities = torch.sigmoid(predict(net, torch.from_numpy(frames.images), device)).numpy()
    val_scores = episode_scores(probabilities, frames, val_eps)
    val_labels = np.array([refs[e].success for e in val_eps])
    calibration = calibrate_threshold(val_scores, val_labels, config.target_precision)
    provenance = _provenance(config, refs, train_eps, val_eps, frames)
    training = {
        **provenance,
        "fit": dataclasses.asdict(result),
        "calibration": {**calibration.to_dict(), "target_precision": config.target_precision,
                        "on": f"{len(val_eps)} held-out episodes"},
        "device": str(device),
        "created": time.time(),
        "config": to_jsonable(config),
    }
    artifact_config = ArtifactConfig(config.model, config.frames, frames.frame_size, calibration.threshold,
                                     config.target_precision)
    version = save_artifact(net.cpu(), artifact_config, training, config.out)
    return TrainResult(Path(config.out), version, calibration.threshold, training["calibration"], result,
                       provenance["episodes"])
