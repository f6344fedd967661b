"""``dataengine demos``: scripted-expert episodes recorded as a LeRobot v3 dataset.

The dataset is built in a hidden sibling directory and renamed into place only when complete (stats rewritten,
metadata written), so an interrupted or failed run never leaves a partial dataset at ``--out``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from curation.features import so101_features
from curation.dataset_stats import recompute_stats
from curation.validate import validate_dataset
from curation.writer import DatasetWriter
from dataengine.config import DemosConfig, to_jsonable
from dataengine.errors import DataEngineError
from dataengine.executors import ExecutorConfig, dask_client, wait_all
from dataengine.files import write_atomic
from dataengine.progress import progress_bar
from dataengine.preflight import check_new_output_dir, check_positive, check_repo_id
from rollouts.episode import record_episode
from scenes.expert import ScriptedExpert
from scenes.outcome import Outcome
from scenes.pick_place import PickPlaceEnv
from scenes.render import get_preset

ENGINE_META = "dataengine.json"
"""Per-dataset provenance written into ``meta/``: the run's config and, per episode, seed, scene and outcome."""


@dataclass(frozen=True)
class DemosSummary:
    episodes: int
    attempts: int
    outcomes: dict[str, int]
    frames: int
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.outcomes.get(Outcome.SUCCESS.value, 0) / self.attempts


def validate(config: DemosConfig) -> None:
    from lerobot.datasets.video_utils import VALID_VIDEO_CODECS

    check_positive("--n", config.n)
    check_positive("--workers", config.workers)
    if config.vcodec not in VALID_VIDEO_CODECS:
        raise DataEngineError(f"unknown --vcodec {config.vcodec!r}: use one of {', '.join(sorted(VALID_VIDEO_CODECS))}")
    check_repo_id(config.repo_id)
    get_preset(config.scene.render_preset)
    check_new_output_dir(config.out)


def record_demos(config: DemosConfig, console: Console | None = None) -> DemosSummary:
    """Record ``config.n`` expert episodes into a new dataset at ``config.out``.

    With ``config.workers > 1`` the episodes are split into shards recorded in parallel by dask workers (each a
    dataset of its own, seeds disjoint), then merged with lerobot's ``aggregate_datasets`` and given exact stats.
    """
    console = console or Console(stderr=True)
    validate(config)
    out = Path(config.out).resolve()  # dask workers may run elsewhere: give them absolute paths
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        staging.mkdir()
        summary = _record_sharded(staging, config, console)
        validate_dataset(staging / "dataset", config.repo_id)  # every file there, every episode's ends decode
        os.replace(staging / "dataset", out)  # replaces an empty directory; fails rather than overwrite files
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_summary(console, summary, out)
    return summary


@dataclass(frozen=True)
class _Shard:
    root: str
    config: DemosConfig
    progress_file: str


def _shards(staging: Path, config: DemosConfig) -> list[_Shard]:
    """Split n over the workers; shard j's seeds start at seed + j * n * max_attempts, so no two shards share one."""
    workers = min(config.workers, config.n)
    sizes = [config.n // workers + (j < config.n % workers) for j in range(workers)]
    stride = config.n * config.max_attempts_per_episode
    return [
        _Shard(str(staging / f"shard-{j:03d}"),
               dataclasses.replace(config, n=size, seed=config.seed + j * stride, workers=1),
               str(staging / f"shard-{j:03d}.progress"))
        for j, size in enumerate(sizes)
    ]


def _record_shard(shard: _Shard) -> DemosSummary:
    """A dask task: record one shard, reporting kept/attempted episodes through a small progress file."""
    progress = Path(shard.progress_file)

    def report(kept: int, attempts: int, successes: int) -> None:
        write_atomic(progress, f"{kept} {attempts} {successes}")

    shutil.rmtree(shard.root, ignore_errors=True)  # a retried shard starts over (lerobot refuses existing roots)
    return _record_into(Path(shard.root), shard.config, report, exact_stats=False)


def _record_sharded(staging: Path, config: DemosConfig, console: Console) -> DemosSummary:
    start = time.perf_counter()
    with progress_bar(console, "demos") as progress:
        bar = progress.add_task("demos", total=config.n, status="")

        def show(kept: int, attempts: int, successes: int) -> None:
            progress.update(bar, completed=kept, status=f"success {successes / max(attempts, 1):.0%} of {attempts}")

        if config.workers == 1:
            summaries = [_record_into(staging / "dataset", config, show)]
        else:
            shards = _shards(staging, config)
            summaries = _run_shards(shards, config, show)
            _merge_shards([Path(s.root) for s in shards], staging / "dataset", config)
    outcomes: collections.Counter[str] = collections.Counter()
    for summary in summaries:
        outcomes.update(summary.outcomes)
    return DemosSummary(sum(s.episodes for s in summaries), sum(s.attempts for s in summaries), dict(outcomes),
                        sum(s.frames for s in summaries), time.perf_counter() - start)


def _run_shards(shards: list[_Shard], config: DemosConfig, show) -> list[DemosSummary]:
    def poll() -> None:
        counts = [Path(s.progress_file).read_text().split() for s in shards if Path(s.progress_file).is_file()]
        show(*(sum(int(c[i]) for c in counts) for i in range(3)))

    with dask_client(ExecutorConfig(scheduler=config.scheduler, workers=len(shards))) as client:
        futures = client.map(_record_shard, shards, pure=False)
        wait_all(futures, poll)
        return client.gather(futures)


def _merge_shards(roots: list[Path], out: Path, config: DemosConfig) -> None:
    """lerobot's own aggregation (data, videos, episode indices), then exact stats and the merged provenance."""
    from lerobot.datasets.aggregate import aggregate_datasets

    aggregate_datasets(repo_ids=[config.repo_id] * len(roots), aggr_repo_id=config.repo_id, roots=roots, aggr_root=out)
    recompute_stats(out)
    episodes = []
    for root in roots:
        for episode in json.loads((root / "meta" / ENGINE_META).read_text())["episodes"]:
            episodes.append({**episode, "episode_index": len(episodes)})
    meta = {"config": to_jsonable(config), "episodes": episodes}
    (out / "meta" / ENGINE_META).write_text(json.dumps(meta, indent=2))


def _record_into(root: Path, config: DemosConfig, report, exact_stats: bool = True) -> DemosSummary:
    """Record one dataset in this process; ``report(kept, attempts, successes)`` after every episode."""
    env = PickPlaceEnv(config.scene)
    expert = ScriptedExpert(env, config.expert)
    try:
        writer = DatasetWriter(root, config.repo_id, config.scene.fps, so101_features(config.scene.image_size),
                               config.vcodec)
    except BaseException:
        env.close()
        raise
    outcomes: collections.Counter[str] = collections.Counter()
    kept, frames, attempts = [], 0, 0
    start = time.perf_counter()
    try:
        while len(kept) < config.n:
            if attempts >= config.n * config.max_attempts_per_episode:
                raise DataEngineError(
                    f"only {len(kept)} of {config.n} episodes succeeded in {attempts} attempts: "
                    "check the scene randomisation ranges or pass --include-failures"
                )
            seed = config.seed + attempts
            attempts += 1
            episode = record_episode(env, seed, lambda _obs: expert.act(), expert.reset)
            outcomes[episode.metrics.outcome.value] += 1
            if episode.metrics.outcome is Outcome.SUCCESS or config.include_failures:
                writer.add_episode(episode.frames)
                kept.append({"episode_index": len(kept), "seed": seed, "scene": episode.scene.to_dict(),
                             "metrics": episode.metrics.to_dict()})
                frames += len(episode.frames)
            report(len(kept), attempts, outcomes[Outcome.SUCCESS.value])
        writer.close(exact_stats)
    except BaseException:
        writer.abort()
        raise
    finally:
        env.close()
    meta = {"config": to_jsonable(config), "episodes": kept}
    (root / "meta" / ENGINE_META).write_text(json.dumps(meta, indent=2))
    return DemosSummary(len(kept), attempts, dict(outcomes), frames, time.perf_counter() - start)


def _print_summary(console: Console, summary: DemosSummary, out: Path) -> None:
    table = Table(title=f"dataengine demos -> {out}")
    table.add_column("episodes")
    table.add_column("attempts")
    table.add_column("success rate")
    table.add_column("frames")
    table.add_column("seconds")
    table.add_row(str(summary.episodes), str(summary.attempts), f"{summary.success_rate:.1%}", str(summary.frames),
                  f"{summary.seconds:.1f}")
    console.print(table)
    failures = {k: v for k, v in summary.outcomes.items() if k != Outcome.SUCCESS.value}
    if failures:
        console.print("failures: " + ", ".join(f"{k} {v}" for k, v in sorted(failures.items())))
