"""The one way the engine scores stored episodes with a success classifier.

Four stages score episodes: a rollout with ``--classifier`` (its workers score what they just stored), curation's
scan (it scores what the rollout did not), ``classifier eval`` and the review page. They share this path so that a
verdict means the same everywhere: the same episode rule (the last frames only, so only those are decoded), the
same batching, and the same reuse rule (a verdict recorded beside the episode by this very classifier version is
taken as it is, never one by another classifier).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

from so101_dataengine.classifier.artifact import SuccessClassifier, load_classifier
from so101_dataengine.formats.store import EpisodeStore, StoredEpisode
from so101_dataengine.formats.verdict import Verdict

SCORE_BATCH_EPISODES = 64
"""Episodes decoded and scored at once (64 x 8 frames x 2 views of 224 px: ~150 MB)."""


@functools.cache
def classifier_at(artifact: str) -> SuccessClassifier:
    """One loaded classifier per process and artifact: loading is the expensive part, and a dask worker scores
    many chunks of episodes with the same artifact."""
    return load_classifier(Path(artifact))


def verdicts_of(classifier: SuccessClassifier, store: EpisodeStore, episode_ids: list[int], *,
                episodes: dict[int, StoredEpisode] | None = None, record: bool = False,
                read_all: Callable[[Callable, Iterable], Iterable] = map,
                batch_episodes: int = SCORE_BATCH_EPISODES) -> list[Verdict]:
    """The classifier's verdict on each of ``episode_ids`` of ``store``, in that order.

    A verdict recorded beside the episode by this classifier version is reused; the others are scored in batches,
    from ``episodes`` where the caller has already read them (curation reads every frame for its signals) and
    otherwise by decoding only the last frames the episode rule looks at (``read_all``: ``map``, or a thread
    pool's ``map`` to decode in parallel). ``record`` writes the new verdicts beside their episodes: the rollout
    does, so curation need not score again; readers that must leave the run untouched (curate, eval, review) don't.
    """
    verdicts: dict[int, Verdict] = {}
    for episode_id in episode_ids:
        recorded = store.read_verdict(episode_id)
        if recorded is not None and recorded.classifier == classifier.version:
            verdicts[episode_id] = recorded
    todo = [i for i in episode_ids if i not in verdicts]
    last, have = slice(-classifier.end_frames, None), episodes or {}
    for start in range(0, len(todo), batch_episodes):
        batch = todo[start : start + batch_episodes]
        read = list(read_all(lambda i: have[i] if i in have else store.read(i, frames=last), batch))
        for episode_id, score in zip(batch, classifier.score_episodes(read)):
            verdicts[episode_id] = Verdict(classifier.version, float(score), classifier.threshold)
            if record:
                store.write_verdict(episode_id, verdicts[episode_id])
    return [verdicts[i] for i in episode_ids]
