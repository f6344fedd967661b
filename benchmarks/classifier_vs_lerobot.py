"""Our success classifier vs LeRobot's reward classifier (``lerobot.policies.sac.reward_model``), on the same frames.

    python benchmarks/classifier_vs_lerobot.py --train-runs RUN_A --eval-runs RUN_B            # CPU, small
    python benchmarks/classifier_vs_lerobot.py --train-runs RUN_A --eval-runs RUN_B --device cuda --epochs 30

Both are trained on the same labelled frames (``classifier.data``: same episodes, same frame indices, same
episode split) and scored on the same held-out episodes with the same episode rule (mean of the last K frames).
Reported side by side: ROC-AUC, precision at equal recall (ours at its calibrated threshold, LeRobot's at the
threshold giving the same recall; and both at recall 0.90), training seconds, scoring frames/s.

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
from classifier.config import ClassifierTrainConfig, FrameSampling, ModelConfig
from classifier.data import FrameSet, load_frames, resize_frames, rollout_episodes, split_by_episode
from classifier.metrics import calibrate_threshold, confusion, precision_at_recall, roc_auc
from classifier.model import SuccessNet, pick_device
from classifier.train import episode_scores, fit, predict

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
                  seed: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """LeRobot's own loss (``Classifier.forward``) and optimizer preset (AdamW, its lr / weight decay / clip), with
    the same class-balanced sampling as ours. Returns seconds and the normalisation stats used."""
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
    start = time.perf_counter()
    model.train()
    for _epoch in range(epochs):
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
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, mean, std


@torch.inference_mode()
def lerobot_probabilities(model, frames: torch.Tensor, mean, std, device, batch: int = 512) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(frames), batch):
        out.append(model.predict(_lerobot_inputs(frames[start : start + batch].to(device), mean, std))
                   .probabilities.float().cpu())
    return torch.cat(out).numpy()


def held_out(eval_runs: list[Path], sampling: FrameSampling, views) -> tuple[FrameSet, np.ndarray, list[str]]:
    refs = [r for run in eval_runs for r in rollout_episodes(run, {})]
    only_end = FrameSampling(end_frames=sampling.end_frames, early_frames=0, early_fraction=sampling.early_fraction)
    frames = load_frames(refs, views, LEROBOT_SIZE, only_end, 0, workers=2)
    return frames, np.array([r.success for r in refs]), [r.outcome for r in refs]


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-runs", type=Path, nargs="+", required=True)
    parser.add_argument("--eval-runs", type=Path, nargs="+", required=True, help="held-out runs (other policy/seeds)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--image-size", type=int, default=ModelConfig.image_size, help="our network's input size")
    parser.add_argument("--epochs", type=int, default=10, help="both models, same sampling")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lerobot-encoder", type=Path, default=None, help="a local transformers encoder directory")
    parser.add_argument("--score-batch", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    device = pick_device(args.device)
    console = Console(stderr=True)
    config = ClassifierTrainConfig(out=Path("unused"), runs=args.train_runs,
                                   model=ModelConfig(image_size=args.image_size), epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size,
                                   device=str(device))
    refs = [r for run in args.train_runs for r in rollout_episodes(run, {})]
    train_eps, val_eps = split_by_episode(refs, config.val_fraction, config.seed)
    frames128 = load_frames(refs, config.model.views, LEROBOT_SIZE, config.frames, config.seed, workers=2)
    ours_frames = FrameSet(np.stack([resize_frames(frames128.images[:, v], args.image_size)
                                     for v in range(frames128.images.shape[1])], axis=1),
                           frames128.labels, frames128.episode, frames128.end_frame, frames128.frame_size)
    eval_frames, eval_truth, _outcomes = held_out(args.eval_runs, config.frames, config.model.views)
    k = config.frames.end_frames
    eval_tensor = torch.from_numpy(eval_frames.images)

    # ours
    torch.manual_seed(0)
    net = SuccessNet(config.model.backbone, len(config.model.views), args.image_size)
    fitted = fit(net, ours_frames, refs, train_eps, val_eps, config, device, console)
    ours_train_seconds = fitted.seconds
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

    ours_scores = ours_score(eval_tensor).reshape(-1, k).mean(1)

    # LeRobot's
    with tempfile.TemporaryDirectory() as scratch:
        model, lr_config = build_lerobot_classifier(config.model.views, device.type, args.lerobot_encoder,
                                                    Path(scratch))
        torch.manual_seed(0)
        theirs_train_seconds, mean, std = train_lerobot(model, lr_config, frames128, train_eps, args.epochs,
                                                        args.batch_size, device, config.seed)
        theirs_scores = lerobot_probabilities(model, eval_tensor, mean, std, device).reshape(-1, k).mean(1)
        theirs_fps = frames_per_second(lambda f: lerobot_probabilities(model, f, mean, std, device, args.score_batch),
                                       eval_tensor[: args.score_batch * 2], device)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        updated = sum(p.numel() for p in model.parameters() if p.grad is not None)  # its no_grad encoder branches
    ours_fps = frames_per_second(ours_score, eval_tensor[: args.score_batch * 2], device)

    ours_at = confusion(ours_scores, eval_truth, calibration.threshold)
    recall = ours_at.recall if ours_at.recall > 0 else 0.9
    results = {
        "device": str(device), "train_episodes": len(refs), "train_frames": int(len(frames128.labels)),
        "eval_episodes": int(len(eval_truth)), "eval_successes": int(eval_truth.sum()), "epochs": args.epochs,
        "ours": {"backbone": config.model.backbone, "input": args.image_size, "train_seconds": ours_train_seconds,
                 "roc_auc": roc_auc(ours_scores, eval_truth), "threshold": calibration.threshold,
                 "at_threshold": ours_at.to_dict(),
                 "precision_at_recall_0.9": precision_at_recall(ours_scores, eval_truth, 0.9),
                 "frames_per_second": ours_fps, "trainable_parameters": sum(p.numel() for p in net.parameters())},
        "lerobot": {"encoder": str(args.lerobot_encoder or "random-init transformers ResNet-10 (offline)"),
                    "input": LEROBOT_SIZE, "train_seconds": theirs_train_seconds,
                    "roc_auc": roc_auc(theirs_scores, eval_truth),
                    f"precision_at_ours_recall_{recall:.3f}": precision_at_recall(theirs_scores, eval_truth, recall),
                    "precision_at_recall_0.9": precision_at_recall(theirs_scores, eval_truth, 0.9),
                    "frames_per_second": theirs_fps, "trainable_parameters": trainable,
                    "parameters_receiving_gradients": updated},
    }
    results["ratios"] = {"train_seconds_theirs_over_ours": theirs_train_seconds / ours_train_seconds,
                         "scoring_ours_over_theirs": ours_fps / theirs_fps}
    out = args.out or (os.path.join(os.environ["OUT"], "classifier_vs_lerobot.json") if os.environ.get("OUT") else None)
    emit(results, out)


if __name__ == "__main__":
    main()
