"""``dataengine demos``: scripted-expert episodes recorded as a LeRobot v3 dataset.

Each kept episode is encoded as soon as it is recorded, by the process that recorded it, with the same writer as
``dataengine curate`` (``so101_dataengine.formats.v3_writer``: lerobot's codec settings, exact stats of the decoded pixels, no PNG
round trip and no per-frame Python path); the driver then lays all episodes out as one dataset. The dataset is
built in a hidden sibling directory and renamed into place only when complete, so an interrupted or failed run
never leaves a partial dataset at ``--out``.
"""

from __future__ import annotations

import collections
import dataclasses
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
from so101_dataengine.base.files import write_atomic
from so101_dataengine.base.preflight import (
    check_episodes,
    check_image_size,
    check_new_output_dir,
    check_positive,
    check_repo_id,
    check_seed,
)
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.base.seeds import DEMO_SEED
from so101_dataengine.formats.episode import record_episode
from so101_dataengine.formats.features import ROBOT_TYPE, so101_features
from so101_dataengine.formats.v3_dataset import ENGINE_META
from so101_dataengine.formats.v3_writer import DatasetLayout, EncodedEpisode, build_info, encode_frames, write_dataset
from so101_dataengine.formats.validate import validate_dataset
from so101_dataengine.scenes.expert import ExpertConfig, ScriptedExpert
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv
from so101_dataengine.scenes.render import get_preset


@dataclass
class DemosConfig:
    """``dataengine demos``: record scripted-expert episodes as a LeRobot v3 dataset."""

    out: Path
    n: int = 400
    """The ACT recipe's count (docs/act_recipe.md): ACT trained on 400 demos reached >= 80 %, on 200 at most 66 %."""
    repo_id: str = "local/so101_pick_place_demos"
    seed: int = DEMO_SEED
    """Attempt k uses scene seed ``seed + k`` (discarded failures count). With ``workers`` > 1, shard j's attempts
    start at ``seed + j * n * max_attempts_per_episode`` (disjoint), so the scenes depend on ``workers``."""
    include_failures: bool = False
    max_attempts_per_episode: int = 3
    """Give up once ``n * this`` attempts have not produced ``n`` kept episodes (per shard with ``workers`` > 1)."""
    vcodec: str = "libsvtav1"
    """lerobot's default codec (AV1); ``h264`` encodes faster."""
    workers: int = 1
    """Record shards in parallel on this many dask workers, then merge them (1: in this process)."""
    scheduler: str | None = None
    """Run the shards on an existing dask cluster instead of an embedded one."""
    scene: PickPlaceConfig = field(default_factory=PickPlaceConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)


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
    from so101_dataengine.lerobot_compat import VALID_VIDEO_CODECS

    check_episodes("--n", config.n)
    check_positive("--workers", config.workers)
    shards = min(config.workers, config.n)  # every attempt of every shard has its own scene seed (``_shards``)
    check_seed("--seed", config.seed, shards * config.n * config.max_attempts_per_episode)
    if config.scene.image_size is not None:
        check_image_size("--image-size", config.scene.image_size)
    if config.vcodec not in VALID_VIDEO_CODECS:
        raise DataEngineError(f"unknown --vcodec {config.vcodec!r}: use one of {', '.join(sorted(VALID_VIDEO_CODECS))}")
    check_repo_id(config.repo_id)
    get_preset(config.scene.render_preset)
    check_scheduler(config.scheduler)
    check_new_output_dir(config.out)


def record_demos(config: DemosConfig, console: Console | None = None) -> DemosSummary:
    """Record ``config.n`` expert episodes into a new dataset at ``config.out``.

    With ``config.workers > 1`` the episodes are split into shards (seeds disjoint) recorded and encoded in parallel
    by dask workers; the files are then laid out as one dataset in shard order.
    """
    console = console or Console(stderr=True)
    validate(config)
    out = Path(config.out).resolve()  # dask workers may run elsewhere: give them absolute paths
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        staging.mkdir()
        shards, summary = _record_sharded(staging, config, console)
        _write(staging / "dataset", shards, config)
        validate_dataset(staging / "dataset", config.repo_id)  # every file there, every episode's ends decode
        os.replace(staging / "dataset", out)  # replaces an empty directory; fails rather than overwrite files
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_summary(console, summary, out)
    return summary


@dataclass(frozen=True)
class _Shard:
    episodes_dir: str
    config: DemosConfig
    progress_file: str
    encoder_threads: int
    """The cores left to each shard's video encoder (all of them when one shard records everything)."""


@dataclass
class _Recorded:
    """What one shard recorded: its kept episodes, encoded, with their provenance, and its counts."""

    encoded: list[EncodedEpisode] = field(default_factory=list)
    provenance: list[dict] = field(default_factory=list)
    """Per kept episode: seed, scene and outcome metrics (``meta/dataengine.json``)."""
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    attempts: int = 0


def shard_plan(config: DemosConfig) -> list[tuple[int, int]]:
    """(first scene seed, episodes) of each shard, in the order the dataset lays them out.

    n is split over the workers; shard j's seeds start at seed + j * n * max_attempts, so no two shards share one.
    Public because an analysis of a demos dataset made without its ``meta/dataengine.json`` (benchmarks/
    payoff_scenes.py) can rebuild its scenes from this when every attempt succeeded (attempts == episodes).
    """
    workers = min(config.workers, config.n)
    stride = config.n * config.max_attempts_per_episode
    return [(config.seed + j * stride, config.n // workers + (j < config.n % workers)) for j in range(workers)]


def _shards(staging: Path, config: DemosConfig) -> list[_Shard]:
    plan = shard_plan(config)
    threads = max(1, (os.cpu_count() or 1) // len(plan))
    return [
        _Shard(str(staging / f"shard-{j:03d}"), dataclasses.replace(config, n=size, seed=first, workers=1),
               str(staging / f"shard-{j:03d}.progress"), threads)
        for j, (first, size) in enumerate(plan)
    ]


def _record_shard_on_worker(shard: _Shard) -> _Recorded:
    """A dask task: record one shard, reporting kept/attempted episodes through a small progress file."""
    progress = Path(shard.progress_file)

    def report(kept: int, attempts: int, successes: int) -> None:
        write_atomic(progress, f"{kept} {attempts} {successes}")

    shutil.rmtree(shard.episodes_dir, ignore_errors=True)  # a retried shard starts over
    return _record_shard(shard, report)


def _record_sharded(staging: Path, config: DemosConfig, console: Console) -> tuple[list[_Recorded], DemosSummary]:
    start = time.perf_counter()
    shards = _shards(staging, config)
    with progress_bar(console, "demos") as progress:
        bar = progress.add_task("demos", total=config.n, status="")

        def show(kept: int, attempts: int, successes: int) -> None:
            progress.update(bar, completed=kept, status=f"success {successes / max(attempts, 1):.0%} of {attempts}")

        if len(shards) == 1:
            recorded = [_record_shard(shards[0], show)]
        else:
            recorded = _run_shards(shards, config, show)
    outcomes: collections.Counter[str] = collections.Counter()
    for shard in recorded:
        outcomes.update(shard.outcomes)
    summary = DemosSummary(sum(len(r.encoded) for r in recorded), sum(r.attempts for r in recorded), dict(outcomes),
                           sum(len(e) for r in recorded for e in r.encoded), time.perf_counter() - start)
    return recorded, summary


def _run_shards(shards: list[_Shard], config: DemosConfig, show) -> list[_Recorded]:
    def poll() -> None:
        counts = [Path(s.progress_file).read_text().split() for s in shards if Path(s.progress_file).is_file()]
        show(*(sum(int(c[i]) for c in counts) for i in range(3)))

    with dask_client(ExecutorConfig(scheduler=config.scheduler, workers=len(shards))) as client:
        futures = client.map(_record_shard_on_worker, shards, pure=False)
        try:
            return wait_all(futures, poll)
        except BaseException:
            client.cancel(futures)  # on a shared cluster the other shards would go on writing into staging
            raise


def _write(root: Path, shards: list[_Recorded], config: DemosConfig) -> None:
    """All shards' episodes as one v3 dataset (exact stats come with the encoded episodes), plus the provenance."""
    encoded = [episode for shard in shards for episode in shard.encoded]
    sample_videos = {key: Path(path) for key, path in encoded[0].videos.items()}
    info = build_info(so101_features(config.scene.image_size), config.scene.fps, sample_videos, ROBOT_TYPE)
    write_dataset(DatasetLayout(root, info), encoded)
    provenance = [episode for shard in shards for episode in shard.provenance]
    meta = {"config": to_jsonable(config),
            "episodes": [{"episode_index": i, **episode} for i, episode in enumerate(provenance)]}
    (root / "meta" / ENGINE_META).write_text(json.dumps(meta, indent=2))


def _record_shard(shard: _Shard, report) -> _Recorded:
    """Record and encode one shard's episodes in this process; ``report(kept, attempts, successes)`` after each."""
    config = shard.config
    env = PickPlaceEnv(config.scene)
    expert = ScriptedExpert(env, config.expert)
    recorded = _Recorded()
    try:
        while len(recorded.encoded) < config.n:
            if recorded.attempts >= config.n * config.max_attempts_per_episode:
                raise DataEngineError(
                    f"only {len(recorded.encoded)} of {config.n} episodes succeeded in {recorded.attempts} attempts: "
                    "check the scene randomisation ranges or pass --include-failures"
                )
            seed = config.seed + recorded.attempts
            recorded.attempts += 1
            episode = record_episode(env, seed, lambda _obs: expert.act(), expert.reset)
            recorded.outcomes[episode.metrics.outcome.value] += 1
            if episode.metrics.outcome is Outcome.SUCCESS or config.include_failures:
                recorded.encoded.append(encode_frames(episode.frames, Path(shard.episodes_dir) / f"seed-{seed}",
                                                      config.scene.fps, config.vcodec, None, shard.encoder_threads))
                recorded.provenance.append({"seed": seed, "scene": episode.scene.to_dict(),
                                            "metrics": episode.metrics.to_dict()})
            report(len(recorded.encoded), recorded.attempts, recorded.outcomes[Outcome.SUCCESS.value])
    finally:
        env.close()
    return recorded


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
