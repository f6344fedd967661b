"""The scan: every candidate episode is read once (on dask workers, in chunks) to measure its quality signals and,
with a classifier, to score it. Only the small signals travel back to the driver."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from so101_dataengine.curation.config import DuplicateFilter, GripFilter, MotionFilter
from so101_dataengine.curation.signals import EpisodeSignals, measure


@dataclass(frozen=True)
class ScanTask:
    run_index: int
    run_dir: str
    episode_ids: tuple[int, ...]
    fps: int
    grip: GripFilter
    motion: MotionFilter
    duplicates: DuplicateFilter
    classifier: str | None = None


@functools.cache
def _classifier(path: str):
    """One classifier per worker process (loading it is the expensive part)."""
    from so101_dataengine.classifier.artifact import load_classifier

    return load_classifier(path)


def scan_chunk(task: ScanTask) -> list[tuple[EpisodeSignals, float | None]]:
    """Signals (and classifier scores) of a chunk of episodes of one run."""
    from so101_dataengine.formats.store import EpisodeStore

    store = EpisodeStore.open(task.run_dir)
    episodes = [store.read(i) for i in task.episode_ids]
    signals = [measure((task.run_index, i), e, task.fps, task.grip, task.motion, task.duplicates.resample)
               for i, e in zip(task.episode_ids, episodes)]
    if task.classifier is None:
        return [(s, None) for s in signals]
    classifier = _classifier(task.classifier)
    recorded = [store.read_score(i) for i in task.episode_ids]  # scored during the rollout by the same classifier?
    todo = [k for k, r in enumerate(recorded) if r is None or r["classifier"] != classifier.version]
    scores = [None if k in todo else r["score"] for k, r in enumerate(recorded)]
    for k, score in zip(todo, classifier.score_episodes([episodes[k] for k in todo])):
        scores[k] = score
    return [(s, float(score)) for s, score in zip(signals, scores)]
