"""``dataengine classifier train | eval | label``: argparse setup and runners (torch is imported only when run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from so101_dataengine.base.configs import default_of
from so101_dataengine.classifier.config import ClassifierEvalConfig, ClassifierTrainConfig, FrameSampling, ModelConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("classifier", help="train / evaluate / label the visual success classifier")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_train(verbs)
    _add_eval(verbs)
    _add_label(verbs)


def _add_train(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train a success classifier on rollouts, demos and human labels")
    p.add_argument("--runs", type=Path, nargs="*", default=[], help="rollout runs (labels: simulator outcome)")
    p.add_argument("--demos", type=Path, nargs="*", default=[], help="LeRobot v3 demo datasets (end frames success)")
    p.add_argument("--labels", type=Path, default=None, help="human labels file (JSONL); wins over the simulator")
    p.add_argument("--out", type=Path, required=True, help="new artifact directory")
    p.add_argument("--backbone", default=default_of(ModelConfig, "backbone"), help="timm model (%(default)s)")
    p.add_argument("--views", nargs="+", default=list(default_of(ModelConfig, "views")), help="camera keys")
    p.add_argument("--image-size", type=int, default=default_of(ModelConfig, "image_size"),
                   help="network input size (%(default)s)")
    p.add_argument("--end-frames", type=int, default=default_of(FrameSampling, "end_frames"),
                   help="K: last frames labelled and averaged per episode (%(default)s)")
    p.add_argument("--epochs", type=int, default=default_of(ClassifierTrainConfig, "epochs"), help="(%(default)s)")
    p.add_argument("--patience", type=int, default=default_of(ClassifierTrainConfig, "patience"),
                   help="early stopping patience in epochs (%(default)s)")
    p.add_argument("--min-improvement", type=float, default=default_of(ClassifierTrainConfig, "min_improvement"),
                   help="early stopping: validation-loss gain that resets the patience (%(default)s)")
    p.add_argument("--batch-size", type=int, default=default_of(ClassifierTrainConfig, "batch_size"))
    p.add_argument("--lr", type=float, default=default_of(ClassifierTrainConfig, "learning_rate"))
    p.add_argument("--target-precision", type=float, default=default_of(ClassifierTrainConfig, "target_precision"),
                   help="threshold calibration target on held-out episodes (%(default)s)")
    p.add_argument("--val-fraction", type=float, default=default_of(ClassifierTrainConfig, "val_fraction"))
    p.add_argument("--seed", type=int, default=default_of(ClassifierTrainConfig, "seed"))
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--pretrained", type=Path, default=None, help="local backbone weights (.safetensors)")
    p.add_argument("--init", type=Path, default=None, help="fine-tune this classifier artifact")
    p.add_argument("--workers", type=int, default=default_of(ClassifierTrainConfig, "workers"),
                   help="episode decoding threads")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from so101_dataengine.classifier.train import train_classifier

    config = ClassifierTrainConfig(
        out=args.out, runs=args.runs, demos=args.demos, labels=args.labels,
        model=ModelConfig(backbone=args.backbone, views=tuple(args.views), image_size=args.image_size),
        frames=FrameSampling(end_frames=args.end_frames), epochs=args.epochs, patience=args.patience,
        min_improvement=args.min_improvement, batch_size=args.batch_size, learning_rate=args.lr,
        val_fraction=args.val_fraction, target_precision=args.target_precision, seed=args.seed, device=args.device,
        pretrained=args.pretrained, init=args.init, workers=args.workers)
    result = train_classifier(config)
    c = result.calibration
    print(f"classifier {result.version} -> {result.artifact}: threshold {result.threshold:.4f} "
          f"(precision {c['precision']:.3f}, recall {c['recall']:.3f} on {c['on']}; "
          f"{result.fit.epochs} epochs, best {result.fit.best_epoch}, {result.fit.seconds:.0f} s)")


def _add_eval(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("eval", help="measure a classifier on held-out rollout runs (JSON summary + plots)")
    p.add_argument("artifact", type=Path, help="classifier artifact directory")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="held-out rollout runs")
    p.add_argument("--out", type=Path, required=True, help="new directory for summary.json and the plots")
    p.add_argument("--labels", type=Path, default=None, help="human labels replace the simulator's truth")
    p.add_argument("--recall-floor", type=float, default=default_of(ClassifierEvalConfig, "recall_floor"))
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=default_of(ClassifierEvalConfig, "workers"))
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> None:
    from so101_dataengine.classifier.evaluate import evaluate

    evaluate(ClassifierEvalConfig(artifact=args.artifact, runs=args.runs, out=args.out, labels=args.labels,
                                  recall_floor=args.recall_floor, device=args.device, workers=args.workers))


def _add_label(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("label", help="record human success/failure labels of rollout episodes (JSONL file)")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="rollout run directory")
    p.add_argument("--labels", type=Path, required=True,
                   help="labels file (created if missing; only appended to; while another writer, e.g. a review "
                        "page, holds its lock, waits for it)")
    p.add_argument("--episodes", default=None, help="episode ids, e.g. 0,3-5")
    verdict = p.add_mutually_exclusive_group()
    verdict.add_argument("--success", action="store_true")
    verdict.add_argument("--failure", action="store_true")
    p.add_argument("--by", default=None, help="who labelled (recorded)")
    p.set_defaults(run=_run_label)


def _run_label(args: argparse.Namespace) -> None:
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.classifier.labels import add_labels, check_labels_path, parse_episode_ids, read_labels
    from so101_dataengine.formats.store import EpisodeStore

    check_labels_path(args.labels)
    if args.episodes is None:  # show the run's current labels
        run_id = EpisodeStore.open(args.run_dir).manifest["run_id"]
        current = read_labels(args.labels) if args.labels.is_file() else {}
        mine = sorted((k[1], v) for k, v in current.items() if k[0] == run_id)
        print(f"{len(mine)} labelled episodes of run {run_id} in {args.labels}")
        for episode_id, label in mine:
            print(f"  {episode_id}: {'success' if label.success else 'failure'} ({label.source}, {label.by or '-'})")
        return
    if not (args.success or args.failure):
        raise DataEngineError("say --success or --failure for the episodes")
    added = add_labels(args.labels, args.run_dir, parse_episode_ids(args.episodes), args.success, args.by)
    print(f"labelled {len(added)} episodes {'success' if args.success else 'failure'} in {args.labels}")
