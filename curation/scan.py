"""The scan: every candidate episode is read once (on dask workers, in chunks) to measure its quality signals and,
with a classifier, to score it. Only the small signals travel back to the driver."""

from __future__ import annotations

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


def scan_chunk(task: ScanTask) -> list[tuple[EpisodeSignals, float | None]]:
    """Signals (and classifier scores) of a chunk of episodes of one run."""
    from so101_dataengine.formats.store import EpisodeStore

    store = EpisodeStore.open(task.run_dir)
    episodes = [store.read(i) for i in task.episode_ids]
    signals = [measure((task.run_index, i), e, task.fps, task.grip, task.motion, task.duplicates.resample)
               for i, e in zip(task.episode_ids, episodes)]
    if task.classifier is None:
        return [(s, None) for s in signals]
    from so101_dataengine.classifier.scoring import classifier_at, verdicts_of

    verdicts = verdicts_of(classifier_at(task.classifier), store, list(task.episode_ids),
                           episodes=dict(zip(task.episode_ids, episodes)))
    return [(s, v.score) for s, v in zip(signals, verdicts)]
