"""What the review page lists: every episode of the given runs, with what each judge said about it.

Read once when the server starts (each episode's ``meta.json`` and ``classifier.json``: a few milliseconds per
hundred episodes), then sorted, filtered and paged in memory, so thousands of episodes stay fast; frames are read
only when a thumbnail or a clip is asked for. Judges: the classifier (the score recorded at rollout time, or that of
``--classifier``, computed in the background for episodes it has not scored), curation (accepted into a curated
dataset, or not), and the simulator's outcome (privileged truth, which the page can hide).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.formats.v3_dataset import ENGINE_META
from so101_dataengine.scenes.outcome import Outcome

SORTS = ("episode", "score", "-score", "uncertain", "disagreement")
"""``uncertain``: closest to the classifier's threshold first; ``disagreement``: classifier vs simulator first."""
PAGE_SIZES = (10, 25, 50, 100, 200)


@dataclass
class Row:
    """One episode as the page lists it."""

    run: int
    """Index of its run in the command line (URLs name runs by index, never by path)."""
    episode_id: int
    seed: int
    length: int
    outcome: str
    score: float | None = None
    threshold: float | None = None
    classifier: str | None = None
    curated: str | None = None
    """``accepted into NAME`` / ``not accepted by NAME`` for runs a ``--curated`` dataset drew from."""

    @property
    def verdict(self) -> bool | None:
        return None if self.score is None or self.threshold is None else self.score >= self.threshold

    @property
    def disagrees(self) -> bool:
        return self.verdict is not None and self.verdict != (self.outcome == Outcome.SUCCESS.value)

    def to_json(self) -> dict:
        return {"run": self.run, "episode": self.episode_id, "seed": self.seed, "length": self.length,
                "outcome": self.outcome, "score": self.score, "threshold": self.threshold,
                "classifier": self.classifier, "verdict": self.verdict, "disagrees": self.disagrees,
                "curated": self.curated}


@dataclass
class Run:
    index: int
    store: EpisodeStore
    shown: str
    """The run's directory as the user gave it (relative paths stay relative on the page and in commands)."""
    run_id: str
    policy: dict
    fps: int


@dataclass
class Query:
    sort: str = "episode"
    outcome: str | None = None
    verdict: bool | None = None
    labelled: bool | None = None
    disagreement: bool = False
    page: int = 0
    per_page: int = 50


@dataclass
class Catalog:
    runs: list[Run]
    rows: list[Row]
    scoring: dict = field(default_factory=lambda: {"done": 0, "todo": 0, "error": None})
    """Progress of ``--classifier`` scoring in the background."""

    @classmethod
    def load(cls, run_dirs: list[Path], curated: list[Path] = ()) -> "Catalog":
        if not run_dirs:
            raise DataEngineError("review needs at least one rollout run: dataengine review RUN [RUN ...]")
        runs, rows = [], []
        for index, run_dir in enumerate(run_dirs):
            if not Path(run_dir).is_dir():
                raise DataEngineError(f"rollout run {run_dir} does not exist: pass a 'dataengine rollout' --out")
            store = EpisodeStore.open(Path(run_dir).absolute())  # files are served whatever the working directory
            manifest = store.manifest
            run = Run(index, store, str(run_dir), str(manifest["run_id"]), manifest.get("policy") or {},
                      int(manifest["scene"]["fps"]))
            if any(r.run_id == run.run_id for r in runs):
                raise DataEngineError(f"rollout run {run_dir} is given twice (run id {run.run_id}): pass it once")
            runs.append(run)
            for episode_id in store.completed_ids():
                meta = store.read_meta(episode_id)
                row = Row(index, episode_id, int(meta["seed"]), int(meta["length"]), meta["metrics"]["outcome"])
                score = store.read_score(episode_id)
                if score is not None:
                    row.score, row.threshold, row.classifier = score["score"], score["threshold"], score["classifier"]
                rows.append(row)
        catalog = cls(runs, rows)
        for dataset in curated:
            catalog._mark_curated(Path(dataset))
        return catalog

    def _mark_curated(self, dataset: Path) -> None:
        """Which episodes of our runs the curated dataset took (its ``meta/dataengine.json`` provenance)."""
        engine = read_json(dataset / "meta" / ENGINE_META,
                           "pass a dataset written by 'dataengine curate' (--curated DATASET)")
        taken = {(e.get("run_id"), e.get("source_episode")) for e in engine.get("episodes", [])
                 if e.get("source") == "rollout"}
        drawn_from = {run_id for run_id, _ in taken}
        if not drawn_from & {run.run_id for run in self.runs}:
            raise DataEngineError(f"--curated {dataset} took no episode of these runs: pass the dataset curated "
                                  "from them")
        for row in self.rows:
            run_id = self.runs[row.run].run_id
            if run_id in drawn_from:
                accepted = (run_id, row.episode_id) in taken
                row.curated = f"{'accepted into' if accepted else 'not accepted by'} {dataset.name}"

    @functools.cached_property
    def _by_key(self) -> dict[tuple[int, int], Row]:
        return {(r.run, r.episode_id): r for r in self.rows}

    def row(self, run: int, episode_id: int) -> Row:
        """The row of episode ``episode_id`` of run index ``run``; KeyError if there is none."""
        return self._by_key[(run, episode_id)]

    def outcomes(self) -> list[str]:
        return sorted({r.outcome for r in self.rows})

    def query(self, q: Query, labels: dict[tuple[str, int], object]) -> tuple[int, list[Row]]:
        """(matching episodes, the rows of page ``q.page``)."""
        def labelled(row: Row) -> bool:
            return (self.runs[row.run].run_id, row.episode_id) in labels

        rows = [r for r in self.rows
                if (q.outcome is None or r.outcome == q.outcome)
                and (q.verdict is None or r.verdict == q.verdict)
                and (q.labelled is None or labelled(r) == q.labelled)
                and (not q.disagreement or r.disagrees)]
        rows.sort(key=_sort_key(q.sort))
        start = q.page * q.per_page
        return len(rows), rows[start : start + q.per_page]

    def score_with(self, artifact: Path) -> threading.Thread:
        """Score, in a background thread, every episode this classifier has not scored (in memory only: the
        server writes nothing but the labels file)."""
        from so101_dataengine.classifier.artifact import load_classifier

        classifier = load_classifier(artifact)
        todo = []
        for row in self.rows:
            if row.classifier == classifier.version:
                continue
            row.score = row.threshold = None
            row.classifier = classifier.version
            todo.append(row)
        self.scoring.update(todo=len(todo), done=0)

        def work() -> None:
            last = slice(-classifier.end_frames, None)
            try:
                for start in range(0, len(todo), 16):
                    batch = todo[start : start + 16]
                    episodes = [self.runs[r.run].store.read(r.episode_id, frames=last) for r in batch]
                    for row, score in zip(batch, classifier.score_episodes(episodes)):
                        row.score, row.threshold = float(score), classifier.threshold
                    self.scoring["done"] += len(batch)
            except DataEngineError as error:
                self.scoring["error"] = str(error)

        thread = threading.Thread(target=work, name="review-scoring", daemon=True)
        thread.start()
        return thread


def _sort_key(sort: str):
    if sort not in SORTS:
        raise ValueError(sort)

    def unscored_last(row: Row, value: float) -> tuple:
        return (row.score is None, value, row.run, row.episode_id)

    if sort == "score":
        return lambda r: unscored_last(r, r.score if r.score is not None else 0.0)
    if sort == "-score":
        return lambda r: unscored_last(r, -r.score if r.score is not None else 0.0)
    if sort == "uncertain":
        return lambda r: unscored_last(r, abs(r.score - r.threshold)
                                       if r.score is not None and r.threshold is not None else 0.0)
    if sort == "disagreement":
        return lambda r: (not r.disagrees, r.run, r.episode_id)
    return lambda r: (r.run, r.episode_id)
