"""What the review page lists: every episode of the given runs, with what each judge said about it.

Read once when the server starts (each episode's ``meta.json`` and ``classifier.json``: a few milliseconds per
hundred episodes), then sorted, filtered and paged in memory, so thousands of episodes stay fast; frames are read
only when a thumbnail or a clip is asked for. Judges: the classifier (the score recorded at rollout time, or that of
``--classifier``, computed in the background for episodes it has not scored), curation (the decision of each
curated dataset drawn from the run: accepted, or the filter step, rejection code and detail, from the dataset's
``meta/curation/decisions.jsonl``), and the simulator's outcome (privileged truth, which the page can hide).

Curated datasets are those of ``--curated`` and, found without asking, every curated dataset beside a run (in
its parent directory, as ``dataengine cycle`` lays out a round: ``rollout/`` and ``dataset/``) whose decisions
name that run: a directory listing per run, and certain, since the dataset says it judged this very run.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json_object, reading
from so101_dataengine.curation.curate import REPORT_DIR
from so101_dataengine.curation.filters import REJECTION_CODES
from so101_dataengine.curation.report import DECISIONS
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.formats.v3_dataset import ENGINE_META, read_provenance
from so101_dataengine.scenes.outcome import Outcome

SORTS = ("episode", "score", "-score", "uncertain", "disagreement")
"""``uncertain``: closest to the classifier's threshold first; ``disagreement``: classifier vs simulator first."""
PAGE_SIZES = (10, 25, 50, 100, 200)
ACCEPTED, REJECTED = "accepted", "rejected"
"""Curation filters besides the rejection codes: accepted by a curated dataset / rejected, whatever the code."""
_CODE_ORDER = [code for codes in REJECTION_CODES.values() for code in codes]
CURATED_FIX = ("pass a dataset written by 'dataengine curate' as --curated (one written before curate recorded "
               "its decisions: curate it again)")


@dataclass(frozen=True)
class Decision:
    """What one curated dataset decided about one episode: a line of its ``meta/curation/decisions.jsonl``."""

    dataset: str
    """The dataset's directory, as given (``--curated``) or as found beside the run."""
    accepted: bool
    step: str | None
    """The filter step that rejected it (``motion``, ``grip``, ``verdict`` ...); None when accepted."""
    code: str | None
    """The step's stable rejection code (``jerk``, ``lazy_grip``, ``low_score`` ...; docs/curation.md)."""
    detail: str | None
    """The measured value against its limit, for people."""
    reveals_outcome: bool
    """The dataset's verdict was the simulator's outcome (``--use-sim-outcome``), so the decision gives it away:
    the page hides it when blind."""


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
    curation: list[Decision] = field(default_factory=list)
    """One decision per curated dataset that judged this episode."""

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
                "curation": [asdict(d) for d in self.curation]}


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
    curation: str | None = None
    """``accepted``, ``rejected`` or a rejection code: episodes some curated dataset decided so about."""
    page: int = 0
    per_page: int = 50


@dataclass
class Catalog:
    runs: list[Run]
    rows: list[Row]
    scoring: dict = field(default_factory=lambda: {"done": 0, "todo": 0, "error": None})
    """Progress of ``--classifier`` scoring in the background."""
    curated: list[str] = field(default_factory=list)
    """The curated datasets whose decisions the rows carry (``--curated`` ones first, then those found)."""

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
                verdict = store.read_verdict(episode_id)
                if verdict is not None:
                    row.score, row.threshold, row.classifier = verdict.score, verdict.threshold, verdict.classifier
                rows.append(row)
        catalog = cls(runs, rows)
        seen = set()
        for dataset in curated:
            seen.add(Path(dataset).resolve())
            if not catalog._mark_curated(Path(dataset)):
                raise DataEngineError(f"--curated {dataset} decided about no episode of these runs: pass the "
                                      "dataset curated from them")
        for dataset in catalog._beside_runs():
            if dataset.resolve() not in seen:
                seen.add(dataset.resolve())
                catalog._mark_curated(dataset)
        return catalog

    def _beside_runs(self) -> list[Path]:
        """The curated datasets in the runs' parent directories (whether they judged a run, their decisions say)."""
        parents = dict.fromkeys(Path(run.shown).parent for run in self.runs)
        return [child for parent in parents for child in sorted(parent.iterdir())
                if (child / "meta" / REPORT_DIR / DECISIONS).is_file()]

    def _mark_curated(self, dataset: Path) -> bool:
        """Give each episode of our runs that ``dataset`` judged its decision; whether there was any.

        A decision names its run by the directory curate read (resolved); a run that has moved since is still
        recognised by its run id, which the dataset's provenance records beside that directory."""
        path = dataset / "meta" / REPORT_DIR / DECISIONS
        engine = read_json_object(dataset / "meta" / ENGINE_META, CURATED_FIX)
        verdict = (engine.get("config") or {}).get("verdict") or {}
        reveals = bool(verdict.get("enabled", True) and verdict.get("use_sim_outcome"))
        run_ids = {e.get("source_run"): e.get("run_id") for e in read_provenance(dataset)
                   if e.get("source") == "rollout"}
        ours = {str(run.store.root.resolve()): run.index for run in self.runs}
        by_id = {run.run_id: run.index for run in self.runs}
        marked = False
        for line in _decisions(path):
            run = ours.get(line["run"], by_id.get(run_ids.get(line["run"])))
            row = self._by_key.get((run, line["episode"]))
            if row is not None:
                accepted = line["decision"] == ACCEPTED
                row.curation.append(Decision(str(dataset), accepted, None if accepted else line["decision"],
                                             line["code"], line["detail"], reveals))
                marked = True
        if marked:
            self.curated.append(str(dataset))
        return marked

    @functools.cached_property
    def _by_key(self) -> dict[tuple[int, int], Row]:
        return {(r.run, r.episode_id): r for r in self.rows}

    def row(self, run: int, episode_id: int) -> Row:
        """The row of episode ``episode_id`` of run index ``run``; KeyError if there is none."""
        return self._by_key[(run, episode_id)]

    def outcomes(self) -> list[str]:
        return sorted({r.outcome for r in self.rows})

    def rejection_codes(self) -> list[str]:
        """The rejection codes some curated dataset gave our episodes, in the filters' order."""
        codes = {d.code for r in self.rows for d in r.curation if d.code is not None}
        return sorted(codes, key=lambda c: (_CODE_ORDER.index(c) if c in _CODE_ORDER else len(_CODE_ORDER), c))

    def curation_filters(self) -> list[str]:
        """What ``Query.curation`` may be: accepted, rejected, and each rejection code given."""
        return [ACCEPTED, REJECTED, *self.rejection_codes()] if any(r.curation for r in self.rows) else []

    def query(self, q: Query, labels: dict[tuple[str, int], object]) -> tuple[int, list[Row]]:
        """(matching episodes, the rows of page ``q.page``)."""
        def labelled(row: Row) -> bool:
            return (self.runs[row.run].run_id, row.episode_id) in labels

        rows = [r for r in self.rows
                if (q.outcome is None or r.outcome == q.outcome)
                and (q.verdict is None or r.verdict == q.verdict)
                and (q.labelled is None or labelled(r) == q.labelled)
                and (not q.disagreement or r.disagrees)
                and (q.curation is None or any(_decided(d, q.curation) for d in r.curation))]
        rows.sort(key=_sort_key(q.sort))
        start = q.page * q.per_page
        return len(rows), rows[start : start + q.per_page]

    def score_with(self, artifact: Path) -> threading.Thread:
        """Score, in a background thread, every episode this classifier has not scored (in memory only: the
        server writes nothing but the labels file)."""
        from so101_dataengine.classifier.artifact import load_classifier
        from so101_dataengine.classifier.scoring import verdicts_of

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
            try:
                for start in range(0, len(todo), 16):  # small batches: the page shows progress as they finish
                    batch = todo[start : start + 16]
                    for run, rows in itertools.groupby(batch, key=lambda r: r.run):
                        rows = list(rows)
                        verdicts = verdicts_of(classifier, self.runs[run].store, [r.episode_id for r in rows])
                        for row, verdict in zip(rows, verdicts):
                            row.score, row.threshold = verdict.score, verdict.threshold
                    self.scoring["done"] += len(batch)
            except DataEngineError as error:
                self.scoring["error"] = str(error)

        thread = threading.Thread(target=work, name="review-scoring", daemon=True)
        thread.start()
        return thread


def _decided(decision: Decision, wanted: str) -> bool:
    if wanted == ACCEPTED:
        return decision.accepted
    if wanted == REJECTED:
        return not decision.accepted
    return decision.code == wanted


def _decisions(path: Path) -> list[dict]:
    """The lines of a ``decisions.jsonl``, each checked: a broken one is one error line naming it."""
    with reading(path, CURATED_FIX, "not UTF-8 text"):
        text = path.read_text()
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError(f"a JSON object expected, found {type(raw).__name__}")
            if not isinstance(raw.get("run"), str) or not isinstance(raw.get("decision"), str):
                raise ValueError("run and decision must be strings")
            if isinstance(raw.get("episode"), bool) or not isinstance(raw.get("episode"), int):
                raise ValueError(f"episode must be an integer, got {json.dumps(raw.get('episode'))}")
            if (raw["decision"] == ACCEPTED) != (raw.get("code") is None):
                raise ValueError("a rejection needs its code, an acceptance has none")
            if not all(raw.get(key) is None or isinstance(raw[key], str) for key in ("code", "detail")):
                raise ValueError("code and detail must be strings or null")
        except (json.JSONDecodeError, ValueError) as error:
            raise DataEngineError(f"{path} line {number} is not a curation decision ({error}): curate that "
                                  "dataset again (review reads those of --curated and those beside the runs)") from None
        lines.append({**raw, "code": raw.get("code"), "detail": raw.get("detail")})
    return lines


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
