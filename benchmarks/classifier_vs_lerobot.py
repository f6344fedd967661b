"""Our success classifier vs LeRobot's reward classifier (``lerobot.policies.sac.reward_model``), on the same frames.

    python benchmarks/classifier_vs_lerobot.py --train-runs RUN_A --eval-runs RUN_B --device cpu
    python benchmarks/classifier_vs_lerobot.py --train-runs RUN_A --eval-runs RUN_B --device cuda

Both are trained on the same labelled frames (``so101_dataengine.classifier.data``: same stored frames, same frame indices and
labels, same episode split, each resized once to its network's input) with the same batch size and class-balanced
sampling, and scored on the same held-out episodes with the same episode rule (mean of the last K frames).
Ours trains as ``dataengine classifier train`` does by default (early stopping on the validation loss, best
epoch's weights kept, threshold calibrated on the validation episodes); LeRobot's has no early stopping and trains
``--lerobot-epochs`` (default: as many epochs as ours ran, so both train the same epochs). Reported side by side:
ROC-AUC, precision at equal recall (ours at its calibrated threshold, LeRobot's at the threshold giving the same
recall; and both at recall 0.90), the score margin (lowest held-out success minus highest failure), each epoch's
seconds, each training run's seconds, scoring frames/s (ours from the stored frames, resize included; LeRobot's
from frames already at its 128 px).

Offline, with no downloads: LeRobot's classifier loads its encoder with ``transformers.AutoModel.from_pretrained(
config.model_name)`` (default ``helper2424/resnet10`` from the Hub). Here ``model_name`` is a local directory holding
a randomly initialised ``transformers`` ResNet-10 (basic blocks, depths 1-1-1-1, widths 64-512: the same shape), saved
with ``save_pretrained``; pass ``--lerobot-encoder DIR`` to use a locally saved pretrained encoder instead. Note that
LeRobot's classifier freezes its encoder and runs each camera's encoder branch (spatial embedding + projection too)
under ``torch.no_grad()``: only its head trains, so with a random encoder it is a random-features classifier.
It needs 128 px inputs (its spatial embedding expects a 4x4 feature map); ours runs at its own input size.
Needs ``transformers`` (``pip install 'lerobot[hilserl]'`` or ``transformers>=4.57,<5``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from benchmarks.report import emit
from so101_dataengine.classifier.config import ClassifierTrainConfig, FrameSampling, ModelConfig
from so101_dataengine.classifier.data import (
    EpisodeRef,
    FrameSet,
    load_frames,
    resize_frames,
    rollout_episodes,
    split_by_episode,
)
from so101_dataengine.classifier.metrics import calibrate_threshold, confusion, precision_at_recall, roc_auc
from so101_dataengine.classifier.model import SuccessNet, pick_device
from so101_dataengine.classifier.train import episode_scores, fit, predict
from so101_dataengine.formats.store import EpisodeStore

LEROBOT_SIZE = 128


def build_lerobot_classifier(views: tuple[str, ...], device: str, encoder_dir: Path | None, scratch: Path):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.sac.reward_model.configuration_classifier import RewardClassifierConfig
    from lerobot.policies.sac.reward_model.modeling_classifier import Classifier
    from transformers import ResNetConfig, ResNetModel

    if encoder_dir is None:
        encoder_dir = scratch / "resnet10_random_init"
        torch.manual_seed(0)
        ResNetModel(ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[1, 1, 1, 1],
                                 layer_type="basic")).save_pretrained(encoder_dir)
    features = {v: PolicyFeature(FeatureType.VISUAL, (3, LEROBOT_SIZE, LEROBOT_SIZE)) for v in views}
    config = RewardClassifierConfig(model_name=str(encoder_dir), num_cameras=len(views), device=device,
                                    input_features=features)
    return Classifier(config).to(device), config


def _lerobot_inputs(frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> list[torch.Tensor]:
    """uint8 (B, V, S, S, 3) -> one normalised (B, 3, S, S) tensor per view (MEAN_STD, as its processor does)."""
    x = frames.permute(1, 0, 4, 2, 3).float() / 255.0
    return [(view - mean) / std for view in x]


def train_lerobot(model, config, frames: FrameSet, train_eps, epochs: int, batch_size: int, device: torch.device,
                  seed: int) -> tuple[list[float], torch.Tensor, torch.Tensor]:
    """LeRobot's own loss (``Classifier.forward``) and optimizer preset (AdamW, its lr / weight decay / clip), with
    the same class-balanced sampling as ours. Returns each epoch's seconds and the normalisation stats used."""
    images = torch.from_numpy(frames.images)
    labels = torch.from_numpy(frames.labels)
    train_idx = torch.from_numpy(np.flatnonzero(np.isin(frames.episode, train_eps)))
    sample = images[train_idx].float() / 255.0
    mean = sample.mean(dim=(0, 1, 2, 3)).view(1, 3, 1, 1).to(device)
    std = sample.std(dim=(0, 1, 2, 3)).view(1, 3, 1, 1).to(device)
    preset = config.get_optimizer_preset()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=preset.lr,
                                  weight_decay=preset.weight_decay)
    train_labels = labels[train_idx]
    positives = float(train_labels.sum())
    weights = torch.where(train_labels > 0.5, 0.5 / positives, 0.5 / (len(train_labels) - positives))
    generator = torch.Generator().manual_seed(seed)
    steps = max(1, int(np.ceil(len(train_idx) / batch_size)))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    epoch_seconds = []
    model.train()
    for _epoch in range(epochs):
        start = time.perf_counter()
        order = train_idx[torch.multinomial(weights, steps * batch_size, True, generator=generator)]
        for step in range(steps):
            batch = order[step * batch_size : (step + 1) * batch_size]
            inputs = _lerobot_inputs(images[batch].to(device), mean, std)
            loss, _ = model({**{k: x for k, x in zip(config.input_features, inputs)},
                             "next.reward": labels[batch].to(device)})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip_norm)
            optimizer.step()
        sync()
        epoch_seconds.append(time.perf_counter() - start)
    return epoch_seconds, mean, std


@torch.inference_mode()
def lerobot_probabilities(model, frames: torch.Tensor, mean, std, device, batch: int = 512) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(frames), batch):
        out.append(model.predict(_lerobot_inputs(frames[start : start + batch].to(device), mean, std))
                   .probabilities.float().cpu())
    return torch.cat(out).numpy()


def stored_frame_size(ref: EpisodeRef) -> int:
    first = EpisodeStore(Path(ref.path)).read(ref.episode_id, frames=np.array([0])).images
    return next(iter(first.values())).shape[1]


def held_out(eval_runs: list[Path], sampling: FrameSampling, views) -> tuple[FrameSet, np.ndarray]:
    """The end frames of every held-out episode at their stored size (as the artifact scores them)."""
    refs = [r for run in eval_runs for r in rollout_episodes(run, {})]
    only_end = FrameSampling(end_frames=sampling.end_frames, early_frames=0, early_fraction=sampling.early_fraction)
    frames = load_frames(refs, views, stored_frame_size(refs[0]), only_end, 0, workers=2)
    return frames, np.array([r.success for r in refs])


def frames_per_second(score, frames: torch.Tensor, device: torch.device, seconds: float = 3.0) -> float:
    score(frames)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        score(frames)
        calls += 1
    sync()
    return calls * len(frames) / (time.perf_counter() - start)


def main() -> None:
    defaults = ClassifierTrainConfig(out=Path("unused"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-runs", type=Path, nargs="+", required=True)
    parser.add_argument("--eval-runs", type=Path, nargs="+", required=True, help="held-out runs (other policy/seeds)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--backbone", default=defaults.model.backbone, help="ours")
    parser.add_argument("--image-size", type=int, default=defaults.model.image_size, help="our network's input size")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="ours: at most, with early stopping")
    parser.add_argument("--patience", type=int, default=defaults.patience, help="ours")
    parser.add_argument("--min-improvement", type=float, default=defaults.min_improvement, help="ours")
    parser.add_argument("--lerobot-epochs", type=int, default=None,
                        help="LeRobot's (it has no early stopping; default: as many as ours ran)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="both, same sampling")
    parser.add_argument("--lerobot-encoder", type=Path, default=None, help="a local transformers encoder directory")
    parser.add_argument("--score-batch", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    device = pick_device(args.device)
    console = Console(stderr=True)
    config = ClassifierTrainConfig(out=Path("unused"), runs=args.train_runs,
                                   model=ModelConfig(backbone=args.backbone, image_size=args.image_size),
                                   epochs=args.epochs, patience=args.patience, min_improvement=args.min_improvement,
                                   batch_size=args.batch_size, device=str(device))
    refs = [r for run in args.train_runs for r in rollout_episodes(run, {})]
    train_eps, val_eps = split_by_episode(refs, config.val_fraction, config.seed)
    # the same stored frames (same episodes, frame indices, labels), each at its network's input size
    ours_frames = load_frames(refs, config.model.views, args.image_size, config.frames, config.seed, workers=2)
    frames128 = load_frames(refs, config.model.views, LEROBOT_SIZE, config.frames, config.seed, workers=2)
    assert np.array_equal(ours_frames.labels, frames128.labels) and np.array_equal(ours_frames.episode,
                                                                                    frames128.episode)
    eval_frames, eval_truth = held_out(args.eval_runs, config.frames, config.model.views)
    k = config.frames.end_frames
    eval_stored = torch.from_numpy(eval_frames.images)
    eval128 = torch.from_numpy(np.stack([resize_frames(eval_frames.images[:, v], LEROBOT_SIZE)
                                         for v in range(eval_frames.images.shape[1])], axis=1))

    # ours: what `dataengine classifier train` runs, early stopping included
    torch.manual_seed(config.seed)
    net = SuccessNet(config.model.backbone, len(config.model.views), args.image_size)
    fitted = fit(net, ours_frames, refs, train_eps, val_eps, config, device, console)
    val_probs = torch.sigmoid(predict(net, torch.from_numpy(ours_frames.images), device)).numpy()
    calibration = calibrate_threshold(episode_scores(val_probs, ours_frames, val_eps),
                                      np.array([refs[e].success for e in val_eps]), config.target_precision)
    net.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    @torch.inference_mode()
    def ours_score(frames: torch.Tensor) -> np.ndarray:
        out = []
        for start in range(0, len(frames), args.score_batch):
            with autocast:
                out.append(torch.sigmoid(net(frames[start : start + args.score_batch].to(device)).float()).cpu())
        return torch.cat(out).numpy()

    ours_scores = ours_score(eval_stored).reshape(-1, k).mean(1)
    ours_fps = frames_per_second(ours_score, eval_stored[: args.score_batch * 2], device)

    # LeRobot's
    lerobot_epochs = args.lerobot_epochs or fitted.epochs
    with tempfile.TemporaryDirectory() as scratch:
        model, lr_config = build_lerobot_classifier(config.model.views, device.type, args.lerobot_encoder,
                                                    Path(scratch))
        torch.manual_seed(config.seed)
        theirs_epoch_seconds, mean, std = train_lerobot(model, lr_config, frames128, train_eps, lerobot_epochs,
                                                        args.batch_size, device, config.seed)
        theirs_scores = lerobot_probabilities(model, eval128, mean, std, device).reshape(-1, k).mean(1)
        theirs_fps = frames_per_second(lambda f: lerobot_probabilities(model, f, mean, std, device, args.score_batch),
                                       eval128[: args.score_batch * 2], device)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        updated = sum(p.numel() for p in model.parameters() if p.grad is not None)  # its no_grad encoder branches

    ours_at = confusion(ours_scores, eval_truth, calibration.threshold)
    recall = ours_at.recall if ours_at.recall > 0 else 0.9
    ours_epoch_seconds = [h["seconds"] for h in fitted.history]
    same = min(len(ours_epoch_seconds), lerobot_epochs)
    results = {
        "device": str(device), "train_episodes": len(refs), "train_frames": int(len(frames128.labels)),
        "eval_episodes": int(len(eval_truth)), "eval_successes": int(eval_truth.sum()),
        "stored_frame_size": int(eval_frames.frame_size), "batch_size": args.batch_size,
        "ours": {"backbone": config.model.backbone, "input": args.image_size, "epochs": fitted.epochs,
                 "best_epoch": fitted.best_epoch, "patience": args.patience,
                 "min_improvement": args.min_improvement,
                 "train_seconds": fitted.seconds, "epoch_seconds": ours_epoch_seconds,
                 "roc_auc": roc_auc(ours_scores, eval_truth), "threshold": calibration.threshold,
                 "at_threshold": ours_at.to_dict(),
                 "precision_at_recall_0.9": precision_at_recall(ours_scores, eval_truth, 0.9),
                 "margin": float(ours_scores[eval_truth].min() - ours_scores[~eval_truth].max()),
                 "frames_per_second": ours_fps, "trainable_parameters": sum(p.numel() for p in net.parameters())},
        "lerobot": {"encoder": str(args.lerobot_encoder or "random-init transformers ResNet-10 (offline)"),
                    "input": LEROBOT_SIZE, "epochs": lerobot_epochs, "train_seconds": sum(theirs_epoch_seconds),
                    "epoch_seconds": theirs_epoch_seconds, "roc_auc": roc_auc(theirs_scores, eval_truth),
                    f"precision_at_ours_recall_{recall:.3f}": precision_at_recall(theirs_scores, eval_truth, recall),
                    "precision_at_recall_0.9": precision_at_recall(theirs_scores, eval_truth, 0.9),
                    "margin": float(theirs_scores[eval_truth].min() - theirs_scores[~eval_truth].max()),
                    "frames_per_second": theirs_fps, "trainable_parameters": trainable,
                    "parameters_receiving_gradients": updated},
    }
    results["ratios"] = {
        f"seconds_first_{same}_epochs_theirs_over_ours": sum(theirs_epoch_seconds[:same]) / sum(
            ours_epoch_seconds[:same]),
        "train_run_seconds_theirs_over_ours": sum(theirs_epoch_seconds) / fitted.seconds,
        "scoring_ours_over_theirs": ours_fps / theirs_fps}
    out = args.out or (os.path.join(os.environ["OUT"], "classifier_vs_lerobot.json") if os.environ.get("OUT") else None)
    emit(results, out)


if __name__ == "__main__":
    main()
