"""Binary classification metrics and threshold calibration on numpy arrays (no sklearn dependency)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from so101_dataengine.base.errors import DataEngineError


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half); NaN if a class is empty."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


@dataclass(frozen=True)
class Confusion:
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Confusion:
    predicted, labels = np.asarray(scores) >= threshold, np.asarray(labels).astype(bool)
    return Confusion(threshold, int((predicted & labels).sum()), int((predicted & ~labels).sum()),
                     int((~predicted & ~labels).sum()), int((~predicted & labels).sum()))


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray, target_precision: float) -> Confusion:
    """The lowest threshold (most recall) whose precision on these scores is at least ``target_precision``.

    Candidates are the positives' scores; the threshold is put halfway to the next lower score, so the calibration
    samples are not sitting exactly on it. If even the top score is a failure, the threshold goes just above the
    highest failure's score (precision undefined, recall possibly 0): the caller reports it.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if not labels.any() or labels.all():
        raise DataEngineError("threshold calibration needs successful and failed episodes")
    best = None
    for candidate in np.unique(scores[labels])[::-1]:
        result = confusion(scores, labels, candidate)
        if result.precision >= target_precision:
            best = candidate
    if best is None:
        return confusion(scores, labels, float(np.nextafter(scores[~labels].max(), np.inf)))
    below = scores[scores < best]
    threshold = float((best + below.max()) / 2) if len(below) else float(best)
    return confusion(scores, labels, threshold)


def best_precision_at_recall(scores: np.ndarray, labels: np.ndarray, recall_floor: float) -> Confusion | None:
    """Over all thresholds with recall >= ``recall_floor``, the one with the highest precision (ties: higher
    recall). None without positives."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if not labels.any():
        return None
    candidates = [confusion(scores, labels, t) for t in np.unique(scores[labels])]
    eligible = [c for c in candidates if c.recall >= recall_floor]
    return max(eligible, key=lambda c: (c.precision, c.recall)) if eligible else None


def precision_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """Precision at the highest threshold whose recall reaches ``recall`` (equal-recall comparisons)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    positives = np.sort(scores[labels])[::-1]
    if len(positives) == 0:
        return float("nan")
    needed = int(np.ceil(recall * len(positives)))
    threshold = positives[max(needed, 1) - 1]
    return confusion(scores, labels, threshold).precision


def reliability(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width score bin: count, mean score, observed success rate (the calibration curve)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(members.sum()),
                     "mean_score": float(scores[members].mean()) if members.any() else None,
                     "success_rate": float(labels[members].mean()) if members.any() else None})
    return rows
