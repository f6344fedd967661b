"""Which backbone and input size to train by default: candidates side by side on the same frames and held-out episodes.

    python benchmarks/classifier_backbones.py --train-runs RUN_A --eval-runs RUN_B \\
        --candidates resnet10t:64 mobilenetv3_small_050:64 lcnet_050:64 --device cpu

Every candidate is trained by ``so101_dataengine.classifier.train.fit`` (what ``dataengine classifier train`` runs) on the same
labelled frames and episode split, with the same early stopping (``--epochs``, ``--patience``,
``--min-improvement``; defaults: ``ClassifierTrainConfig``), calibrated on the same validation episodes, and scored
on the same held-out episodes with the episode rule. Reported per candidate: epochs run and best epoch, seconds per
epoch and for the whole fit, held-out ROC-AUC, precision/recall at the calibrated threshold, precision at recall
0.90, the score margin (lowest held-out success minus highest held-out failure: > 0 separates them all; the wider,
the more room the threshold has), and scoring frames/s from stored uint8 frames.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from benchmarks.classifier_vs_lerobot import frames_per_second, held_out
from benchmarks.report import emit
from so101_dataengine.classifier.config import ClassifierTrainConfig, ModelConfig
from so101_dataengine.classifier.data import load_frames, rollout_episodes, split_by_episode
from so101_dataengine.classifier.metrics import calibrate_threshold, confusion, precision_at_recall, roc_auc
from so101_dataengine.classifier.model import SuccessNet, pick_device
from so101_dataengine.classifier.train import episode_scores, fit, predict


def parse_candidate(text: str) -> tuple[str, int]:
    backbone, _, size = text.rpartition(":")
    if not backbone or not size.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write BACKBONE:SIZE, e.g. mobilenetv3_small_050:64")
    return backbone, int(size)


def main() -> None:
    defaults = ClassifierTrainConfig(out=Path("unused"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-runs", type=Path, nargs="+", required=True)
    parser.add_argument("--eval-runs", type=Path, nargs="+", required=True, help="held-out runs (other policy/seeds)")
    parser.add_argument("--candidates", type=parse_candidate, nargs="+", required=True, help="BACKBONE:SIZE ...")
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--min-improvement", type=float, default=defaults.min_improvement)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seeds", type=int, nargs="+", default=[defaults.seed],
                        help="training seeds (initial weights, batches, augmentation); the episode split stays fixed")
    parser.add_argument("--score-batch", type=int, default=256)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    console = Console(stderr=True)
    refs = [r for run in args.train_runs for r in rollout_episodes(run, {})]
    train_eps, val_eps = split_by_episode(refs, defaults.val_fraction, defaults.seed)
    eval_frames, truth = held_out(args.eval_runs, defaults.frames, defaults.model.views)
    eval_images = torch.from_numpy(eval_frames.images)
    k = defaults.frames.end_frames
    frames_by_size = {}
    results = {"device": str(device), "train_episodes": len(refs), "eval_episodes": len(truth),
               "eval_successes": int(truth.sum()), "stored_frame_size": eval_frames.frame_size, "max_epochs": args.epochs,
               "patience": args.patience, "min_improvement": args.min_improvement, "candidates": []}
    for (backbone, size), seed in ((c, s) for c in args.candidates for s in args.seeds):
        if size not in frames_by_size:
            frames_by_size[size] = load_frames(refs, defaults.model.views, size, defaults.frames, defaults.seed, 2)
        frames = frames_by_size[size]
        config = ClassifierTrainConfig(out=Path("unused"), runs=args.train_runs,
                                       model=ModelConfig(backbone=backbone, image_size=size), epochs=args.epochs,
                                       patience=args.patience, min_improvement=args.min_improvement,
                                       batch_size=args.batch_size, seed=seed, device=str(device))
        torch.manual_seed(seed)
        net = SuccessNet(backbone, len(config.model.views), size)
        fitted = fit(net, frames, refs, train_eps, val_eps, config, device, console)
        probabilities = torch.sigmoid(predict(net, torch.from_numpy(frames.images), device)).numpy()
        calibration = calibrate_threshold(episode_scores(probabilities, frames, val_eps),
                                          np.array([refs[e].success for e in val_eps]), config.target_precision)
        net.eval()

        @torch.inference_mode()
        def score(images: torch.Tensor) -> np.ndarray:
            return np.concatenate([torch.sigmoid(net(images[s : s + args.score_batch].to(device)).float()).cpu()
                                   .numpy() for s in range(0, len(images), args.score_batch)])

        scores = score(eval_images).reshape(-1, k).mean(1)
        at = confusion(scores, truth, calibration.threshold)
        results["candidates"].append({
            "backbone": backbone, "input": size, "seed": seed, "parameters": sum(p.numel() for p in net.parameters()),
            "epochs": fitted.epochs, "best_epoch": fitted.best_epoch,
            "seconds_per_epoch": float(np.mean([h["seconds"] for h in fitted.history])),
            "fit_seconds": fitted.seconds, "val_losses": [round(h["val_loss"], 4) for h in fitted.history],
            "val_loss": fitted.val_loss, "threshold": calibration.threshold, "roc_auc": roc_auc(scores, truth),
            "at_threshold": at.to_dict(), "precision_at_recall_0.9": precision_at_recall(scores, truth, 0.9),
            "margin": float(scores[truth].min() - scores[~truth].max()),
            "frames_per_second": frames_per_second(score, eval_images[: args.score_batch * 2], device),
        })
        console.print(results["candidates"][-1])
    out = args.out or (os.path.join(os.environ["OUT"], "classifier_backbones.json") if os.environ.get("OUT") else None)
    emit(results, out)


if __name__ == "__main__":
    main()
