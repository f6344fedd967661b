"""``dataengine curate``: finished rollout runs (+ an optional base dataset) -> one curated LeRobot v3 dataset.

1. check the inputs (finished, intact runs; a base of the same fps and features; a new output);
2. scan every episode once on dask (quality signals, classifier scores);
3. filter (``so101_dataengine.curation.filters``), counting what each step rejects and why;
4. write the accepted episodes with the fast writer (``so101_dataengine.formats.v3_writer``; encoding parallel over episodes),
   the base's episodes first, exact stats, per-episode provenance;
5. validate (every file present, lerobot loads it offline), write the report, and rename into place.

Everything is built in a hidden staging directory beside ``--out``; a failure or Ctrl-C leaves nothing at ``--out``
and the inputs are only ever read. One curate per ``--out`` at a time (an flock on ``.NAME.lock`` beside it); the
staging directory a killed curate left is removed by the next one.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from so101_dataengine.base.configs import to_jsonable
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig, check_scheduler, dask_client, wait_all
from so101_dataengine.base.locks import exclusive_lock
from so101_dataengine.base.preflight import (
    check_at_least,
    check_image_size,
    check_new_output_dir,
    check_positive,
    check_repo_id,
)
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.curation.config import CurateConfig, check_filters
from so101_dataengine.curation.filters import Candidate, StepReport, apply_filters, purity_and_yield
from so101_dataengine.curation.inputs import (
    base_image_size,
    check_base_compatible,
    open_finished_run,
    rollout_features,
    run_fps,
)
from so101_dataengine.curation.scan import ScanTask, scan_chunk
from so101_dataengine.formats.features import ROBOT_TYPE
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.formats.v3_dataset import ENGINE_META, is_v3_dataset, read_info, read_provenance
from so101_dataengine.formats.v3_writer import (
    BaseDataset,
    DatasetLayout,
    EncodeTask,
    build_info,
    encode_episode,
    write_dataset,
)
from so101_dataengine.formats.validate import validate_dataset

REPORT_DIR = "curation"
"""Under ``meta/``: report.html, its PNG figures and summary.json."""
SCAN_CHUNK = 8
MIN_WRITE_SIZE = 8
"""The smallest ``--image-size`` frames are resized to at write time (nothing is rendered at that size)."""


@dataclass
class CurateSummary:
    out: Path
    candidates: int
    accepted: int
    base_episodes: int
    steps: list[dict]
    measured: dict
    frames_written: int
    seconds: dict[str, float] = field(default_factory=dict)
    classifier: dict | None = None


@dataclass
class _Verdict:
    """Who judges success: the classifier, or (explicitly) the simulator."""

    threshold: float | None
    describe: dict | None
    version: str | None


def _validate(config: CurateConfig) -> None:
    from so101_dataengine.lerobot_compat import VALID_VIDEO_CODECS

    if not config.runs:
        raise DataEngineError("curate needs at least one --runs RUN")
    if config.out is None:
        raise DataEngineError("curate needs --out PATH for the new dataset")
    check_repo_id(config.repo_id)
    if config.vcodec not in VALID_VIDEO_CODECS - {"auto"}:
        raise DataEngineError(f"unknown --vcodec {config.vcodec!r}: use libsvtav1 (lerobot's default) or h264")
    if config.image_size is not None:
        check_image_size("--image-size", config.image_size, MIN_WRITE_SIZE)
    if config.workers is not None:
        check_positive("--workers", config.workers)
    check_at_least("[curate] gallery", config.gallery, 0, "episodes shown per side in the report")
    check_filters(config)
    check_scheduler(config.scheduler)
    verdict = config.verdict
    if verdict.enabled and config.classifier is None and not verdict.use_sim_outcome:
        raise DataEngineError(
            "curate needs a success verdict: pass --classifier ARTIFACT (or --use-sim-outcome for a "
            "simulation-only dataset, or switch the verdict off with [curate.verdict] enabled = false)"
        )
    if verdict.enabled and config.classifier is not None and verdict.use_sim_outcome:
        raise DataEngineError("--classifier and --use-sim-outcome exclude each other: choose one verdict")
    if config.classifier is not None and not Path(config.classifier).exists():
        raise DataEngineError(f"classifier artifact {config.classifier} does not exist")
    if config.base is not None and not is_v3_dataset(Path(config.base)):
        raise DataEngineError(f"base {config.base} is not a LeRobot v3 dataset (no meta/info.json)")
    check_new_output_dir(config.out)


def _load_verdict(config: CurateConfig) -> _Verdict:
    if not config.verdict.enabled:
        return _Verdict(None, None, None)
    if config.classifier is None:
        return _Verdict(0.5, {"kind": "simulator outcome (privileged; simulation-only)"}, "sim-outcome")
    from so101_dataengine.classifier.artifact import load_classifier

    classifier = load_classifier(config.classifier)
    threshold = config.verdict.threshold if config.verdict.threshold is not None else float(classifier.threshold)
    return _Verdict(threshold, classifier.describe(), str(classifier.version))


def curate(config: CurateConfig, console: Console | None = None) -> CurateSummary:
    console = console or Console(stderr=True)
    start = time.perf_counter()
    _validate(config)
    out = Path(config.out).resolve()
    with exclusive_lock(out.parent / f".{out.name}.lock", f"curate into {out}", "--out", wait=False):
        check_new_output_dir(out)  # again, now that no other curate can be writing it
        for leftover in out.parent.glob(f".{out.name}.partial-*"):  # a killed curate's: no live one holds the lock
            shutil.rmtree(leftover, ignore_errors=True)
        return _curate(config, out, console, start)


def _curate(config: CurateConfig, out: Path, console: Console, start: float) -> CurateSummary:
    stores = [open_finished_run(Path(run).resolve()) for run in config.runs]
    fps_values = {run_fps(s) for s in stores}
    if len(fps_values) > 1:
        raise DataEngineError(f"the runs have different fps ({sorted(fps_values)}): curate runs of one fps together")
    fps = fps_values.pop()
    base_info = read_info(Path(config.base)) if config.base else None
    image_size = config.image_size or (base_image_size(base_info) if base_info else None) or _stored_size(stores)
    features = rollout_features(stores, image_size)
    if base_info is not None:
        check_base_compatible(base_info, features, fps, Path(config.base))
    verdict = _load_verdict(config)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    seconds: dict[str, float] = {}
    try:
        staging.mkdir()
        with dask_client(ExecutorConfig(scheduler=config.scheduler, workers=config.workers)) as client:
            t = time.perf_counter()
            candidates = _scan(client, stores, fps, config, console)
            seconds["scan"] = time.perf_counter() - t
            if config.verdict.enabled and config.verdict.use_sim_outcome:
                for c in candidates:
                    c.score = 1.0 if c.outcome == "SUCCESS" else 0.0
            accepted, reports = apply_filters(candidates, config, verdict.threshold)
            _print_steps(console, reports, len(candidates))  # before the error below, which points at the counts
            if not accepted and config.base is None:
                raise DataEngineError(
                    f"no episode of {len(candidates)} passed the filters: see the counts above, loosen a filter in "
                    "[curate] or curate better rollouts"
                )
            t = time.perf_counter()
            base = BaseDataset.load(Path(config.base).resolve()) if config.base else None
            encoded = _encode(client, stores, accepted, staging / "episodes", fps, image_size, config, console)
            seconds["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        dataset = staging / "dataset"
        cameras = {k: Path(v) for k, v in encoded[0].videos.items()} if encoded else None
        info = base.info if base else build_info(features, fps, cameras, ROBOT_TYPE)
        layout = DatasetLayout(dataset, info, base, [_provenance(stores, c, verdict) for c in accepted])
        write_dataset(layout, encoded)
        _write_engine_meta(dataset, config, stores, accepted, verdict, base)
        seconds["write"] = time.perf_counter() - t
        t = time.perf_counter()
        frames = validate_dataset(dataset, config.repo_id)
        seconds["validate"] = time.perf_counter() - t
        summary = CurateSummary(out, len(candidates), len(accepted), len(base.episodes) if base else 0,
                                [step_summary(r) for r in reports], purity_and_yield(candidates, accepted),
                                sum(len(e) for e in encoded), seconds, verdict.describe)
        summary.seconds["total"] = time.perf_counter() - start
        from so101_dataengine.curation.report import write_report

        write_report(dataset / "meta" / REPORT_DIR, summary, candidates, accepted, reports, stores,
                     verdict.threshold, config.gallery)
        os.replace(dataset, out)  # replaces an empty directory; fails rather than overwrite files
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_summary(console, summary, frames)
    return summary


def _stored_size(stores: list[EpisodeStore]) -> int:
    return int(stores[0].manifest["scene"]["image_size"])


def _scan(client, stores: list[EpisodeStore], fps: int, config: CurateConfig, console: Console) -> list[Candidate]:
    tasks = [ScanTask(r, str(store.root), tuple(ids[i : i + SCAN_CHUNK]), fps, config.grip, config.motion,
                      config.duplicates, str(Path(config.classifier).resolve()) if config.classifier else None)
             for r, store in enumerate(stores) for ids in [store.completed_ids()] for i in range(0, len(ids), SCAN_CHUNK)]
    futures = client.map(functools.partial(_reporting, scan_chunk), tasks, pure=False)
    total = sum(len(t.episode_ids) for t in tasks)
    with progress_bar(console, "scan") as progress:
        bar = progress.add_task("scan", total=total, status="")
        results = _raise_reported(wait_all(futures, lambda: progress.update(
            bar, completed=sum(len(t.episode_ids) for t, f in zip(tasks, futures) if f.done()), status="")))
    candidates = []
    for result in results:
        for signals, score in result:
            run, episode_id = signals.key
            candidates.append(Candidate(signals, stores[run].read_meta(episode_id), score))
    return candidates


def _encode(client, stores, accepted: list[Candidate], tmp: Path, fps: int, image_size: int, config: CurateConfig,
            console: Console) -> list:
    def resize(store: EpisodeStore) -> int | None:  # only when the stored frames are not already that size
        return image_size if image_size != _stored_size([store]) else None

    tasks = [EncodeTask(str(stores[c.key[0]].root), c.key[1], str(tmp / f"{n:06d}"), fps, config.vcodec,
                        resize(stores[c.key[0]])) for n, c in enumerate(accepted)]
    futures = client.map(functools.partial(_reporting, encode_episode), tasks, pure=False)
    with progress_bar(console, "write") as progress:
        bar = progress.add_task("write", total=len(tasks), status="")
        return _raise_reported(wait_all(futures, lambda: progress.update(bar, completed=sum(f.done() for f in futures),
                                                                           status="")))


@dataclass(frozen=True)
class _Reported:
    """A user error (a damaged input file) met on a worker, carried back as a value: raised on the driver it is one
    error line, where raised on the worker dask would also log its traceback."""

    message: str


def _reporting(task_function, task):
    try:
        return task_function(task)
    except DataEngineError as error:
        return _Reported(str(error))


def _raise_reported(results: list) -> list:
    for result in results:
        if isinstance(result, _Reported):
            raise DataEngineError(result.message)
    return results


def _provenance(stores: list[EpisodeStore], c: Candidate, verdict: _Verdict) -> dict:
    """The ``dataengine/...`` columns of one curated episode in ``meta/episodes``: where it came from."""
    store = stores[c.key[0]]
    policy = c.meta.get("policy", {})
    return {
        "dataengine/source": "rollout",
        "dataengine/source_run": str(store.root),
        "dataengine/run_id": store.manifest.get("run_id"),
        "dataengine/source_episode": c.key[1],
        "dataengine/seed": c.meta.get("seed"),
        "dataengine/policy_kind": policy.get("kind"),
        "dataengine/policy_sha256": policy.get("sha256"),
        "dataengine/classifier_version": verdict.version,
        "dataengine/score": c.score,
        "dataengine/sim_outcome": c.outcome,
    }


def _write_engine_meta(dataset: Path, config: CurateConfig, stores, accepted, verdict: _Verdict, base) -> None:
    """``meta/dataengine.json``: the curate config and, per episode, its provenance (base episodes first)."""
    episodes = []
    if base is not None:
        by_index = {e.get("episode_index"): e for e in read_provenance(base.root)}
        for row in base.episodes:
            episodes.append({"episode_index": row["episode_index"], "source": "base", "source_dataset": str(base.root),
                             **{k: v for k, v in by_index.get(row["episode_index"], {}).items() if k != "episode_index"}})
    for c in accepted:
        entry = {k.removeprefix("dataengine/"): v for k, v in _provenance(stores, c, verdict).items()}
        episodes.append({"episode_index": len(episodes), **entry, "scene": c.meta.get("scene"),
                         "metrics": c.meta.get("metrics")})
    meta = {"config": to_jsonable(config), "verdict": verdict.describe, "episodes": episodes}
    (dataset / "meta" / ENGINE_META).write_text(json.dumps(meta, indent=2))


def step_summary(report: StepReport) -> dict:
    """One step in ``summary.json``: what it saw, rejected, and how many per rejection code."""
    reasons = collections.Counter(r.code for r in report.rejected.values())
    return {"name": report.name, "enabled": report.enabled, "seen": report.seen, "rejected": len(report.rejected),
            "reasons": dict(reasons)}


def _print_steps(console: Console, reports: list[StepReport], total: int) -> None:
    table = Table(title=f"curation filters ({total} rollout episodes)")
    for column in ("step", "in", "rejected", "out", "main reasons"):
        table.add_column(column)
    for r in reports:
        reasons = collections.Counter(step_summary(r)["reasons"]).most_common(2)
        table.add_row(r.name if r.enabled else f"{r.name} (off)", str(r.seen), str(len(r.rejected)),
                      str(r.seen - len(r.rejected)), ", ".join(f"{k} {v}" for k, v in reasons))
    console.print(table)


def _print_summary(console: Console, s: CurateSummary, frames: int) -> None:
    table = Table(title=f"dataengine curate -> {s.out}", show_header=False)
    rows = [("accepted rollouts", f"{s.accepted} of {s.candidates}"), ("base episodes", str(s.base_episodes)),
            ("dataset frames", str(frames))]
    if s.measured.get("purity") is not None or s.measured.get("yield") is not None:
        fmt = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        rows.append(("purity / yield (sim outcome)", f"{fmt(s.measured['purity'])} / {fmt(s.measured['yield'])}"))
    if s.seconds.get("encode"):
        rows.append(("write frames/s", f"{s.frames_written / s.seconds['encode']:,.0f} (encode, parallel)"))
    rows.append(("seconds", ", ".join(f"{k} {v:.1f}" for k, v in s.seconds.items())))
    rows.append(("report", str(s.out / "meta" / REPORT_DIR / "report.html")))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
