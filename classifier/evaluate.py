"""``dataengine classifier eval``: a classifier on rollout episodes it never saw, against the simulator's truth.

Writes ``summary.json`` (precision, recall, ROC-AUC, the confusion by failure type, the best precision at the
recall floor, the reliability table, every episode's score), ``reliability.png`` (the calibration curve) and
``scores.png`` (score histogram per outcome, with the threshold).
"""

from __future__ import annotations

import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic
from so101_dataengine.base.preflight import check_new_output_dir
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.classifier.artifact import SuccessClassifier, load_classifier
from so101_dataengine.classifier.config import ClassifierEvalConfig
from so101_dataengine.classifier.labels import read_labels
from so101_dataengine.classifier.metrics import best_precision_at_recall, confusion, reliability, roc_auc
from so101_dataengine.classifier.scoring import verdicts_of
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.scenes.outcome import Outcome


@dataclass(frozen=True)
class ScoredEpisode:
    run_id: str
    episode_id: int
    outcome: str
    success: bool
    """Ground truth: a human label where given, else the simulator's outcome."""
    score: float


def _check_unseen(clf: SuccessClassifier, stores: list[EpisodeStore]) -> None:
    seen = {run["run_id"] for run in clf.training.get("runs", [])}
    for store in stores:
        if store.manifest["run_id"] in seen:
            raise DataEngineError(f"run {store.root} was used to train classifier {clf.version}: evaluate on "
                                  f"held-out runs (another policy or seed), e.g. a new 'dataengine rollout'")


def score_runs(clf: SuccessClassifier, stores: list[EpisodeStore], labels: dict, batch_episodes: int, workers: int,
               console: Console) -> list[ScoredEpisode]:
    """Score every episode of the runs, ``batch_episodes`` at a time, decoding in ``workers`` threads."""
    runs = [(store, store.completed_ids()) for store in stores]
    if not any(ids for _, ids in runs):
        raise DataEngineError("the runs hold no finished episodes to evaluate")
    scored: list[ScoredEpisode] = []
    with progress_bar(console, "classifier eval") as progress, ThreadPoolExecutor(max(1, workers)) as pool:
        bar = progress.add_task("eval", total=sum(len(ids) for _, ids in runs), status="")
        for store, ids in runs:
            run_id = store.manifest["run_id"]
            for start in range(0, len(ids), batch_episodes):
                batch = ids[start : start + batch_episodes]
                verdicts = verdicts_of(clf, store, batch, read_all=pool.map, batch_episodes=batch_episodes)
                for episode_id, verdict in zip(batch, verdicts):
                    outcome = store.read_meta(episode_id)["metrics"]["outcome"]
                    human = labels.get((run_id, episode_id))
                    success = human.success if human else outcome == Outcome.SUCCESS.value
                    scored.append(ScoredEpisode(run_id, episode_id, outcome, success, verdict.score))
                progress.update(bar, advance=len(batch))
    return scored


def summarize(clf: SuccessClassifier, scored: list[ScoredEpisode], recall_floor: float) -> dict:
    scores = np.array([s.score for s in scored])
    truth = np.array([s.success for s in scored])
    at_threshold = confusion(scores, truth, clf.threshold)
    by_outcome = {}
    for outcome in Outcome:
        members = [s for s in scored if s.outcome == outcome.value]
        accepted = sum(s.score >= clf.threshold for s in members)
        by_outcome[outcome.value] = {"episodes": len(members), "predicted_success": accepted,
                                     "predicted_failure": len(members) - accepted,
                                     "mean_score": float(np.mean([s.score for s in members])) if members else None}
    best = best_precision_at_recall(scores, truth, recall_floor)
    return {
        "classifier": {k: v for k, v in clf.describe().items() if k != "training"},
        "episodes": len(scored),
        "successes": int(truth.sum()),
        "threshold": clf.threshold,
        "precision": at_threshold.precision,
        "recall": at_threshold.recall,
        "roc_auc": roc_auc(scores, truth),
        "confusion": at_threshold.to_dict(),
        "by_outcome": by_outcome,
        f"best_precision_at_recall_{recall_floor:g}": best.to_dict() if best else None,
        "reliability": reliability(scores, truth),
        "scores": [s.__dict__ for s in scored],
    }


def write_plots(summary: dict, scored: list[ScoredEpisode], threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["reliability"] if r["count"]]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    ax.plot([r["mean_score"] for r in rows], [r["success_rate"] for r in rows], "o-", label="classifier")
    for r in rows:
        ax.annotate(str(r["count"]), (r["mean_score"], r["success_rate"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
    ax.axvline(threshold, color="black", lw=1, ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="episode score (mean of end frames)", ylabel="observed success rate", xlim=(0, 1), ylim=(0, 1),
           title=f"reliability ({summary['episodes']} episodes; counts per bin)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 41)
    groups = collections.defaultdict(list)
    for s in scored:
        groups[s.outcome].append(s.score)
    ax.hist([groups[o] for o in sorted(groups)], bins=bins, stacked=True, label=sorted(groups))
    ax.axvline(threshold, color="black", lw=1, ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="episode score", ylabel="episodes", yscale="log", title="episode scores by simulator outcome")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)


def evaluate(config: ClassifierEvalConfig, console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    clf = load_classifier(config.artifact, config.device)
    stores = [EpisodeStore.open(run) for run in config.runs]
    _check_unseen(clf, stores)
    labels = read_labels(config.labels) if config.labels else {}
    check_new_output_dir(config.out)
    start = time.perf_counter()
    scored = score_runs(clf, stores, labels, config.batch_episodes, config.workers, console)
    summary = summarize(clf, scored, config.recall_floor)
    summary["runs"] = [{"path": str(s.root.resolve()), "run_id": s.manifest["run_id"], "policy": s.manifest["policy"],
                        "seed": s.manifest["seed"]} for s in stores]
    summary["seconds"] = time.perf_counter() - start
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_plots(summary, scored, clf.threshold, out)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    print_summary(console, summary, out)
    return summary


def print_summary(console: Console, s: dict, out: Path) -> None:
    table = Table(title=f"classifier {s['classifier']['version']} on {s['episodes']} held-out episodes -> {out}",
                  show_header=False)
    c = s["confusion"]
    for name, value in (("threshold", f"{s['threshold']:.4f}"), ("precision", f"{s['precision']:.3f}"),
                        ("recall", f"{s['recall']:.3f}"), ("ROC-AUC", f"{s['roc_auc']:.4f}"),
                        ("TP / FP / TN / FN", f"{c['tp']} / {c['fp']} / {c['tn']} / {c['fn']}")):
        table.add_row(name, value)
    for outcome, row in s["by_outcome"].items():
        if row["episodes"]:
            table.add_row(f"  {outcome}", f"{row['predicted_success']} of {row['episodes']} accepted")
    console.print(table)
