"""``dataengine demos``: scripted-expert episodes recorded as a LeRobot v3 dataset.

The dataset is built in a hidden sibling directory and renamed into place only when complete (stats rewritten,
metadata written), so an interrupted or failed run never leaves a partial dataset at ``--out``.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curation.features import so101_features
from curation.writer import DatasetWriter
from dataengine.config import DemosConfig, to_jsonable
from dataengine.errors import DataEngineError
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
    check_positive("--n", config.n)
    check_repo_id(config.repo_id)
    get_preset(config.scene.render_preset)
    check_new_output_dir(config.out)


def record_demos(config: DemosConfig, console: Console | None = None) -> DemosSummary:
    """Record ``config.n`` expert episodes into a new dataset at ``config.out``."""
    console = console or Console(stderr=True)
    validate(config)
    out = Path(config.out)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        summary = _record_into(staging, config, console)
        if out.exists():
            out.rmdir()  # validated empty above
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _print_summary(console, summary, out)
    return summary


def _record_into(root: Path, config: DemosConfig, console: Console) -> DemosSummary:
    env = PickPlaceEnv(config.scene)
    expert = ScriptedExpert(env, config.expert)
    writer = DatasetWriter(root, config.repo_id, config.scene.fps, so101_features(config.scene.image_size), config.vcodec)
    outcomes: collections.Counter[str] = collections.Counter()
    kept, frames, attempts = [], 0, 0
    start = time.perf_counter()
    columns = (TextColumn("demos"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("demos", total=config.n, status="")
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
                    progress.advance(bar)
                rate = outcomes[Outcome.SUCCESS.value] / attempts
                progress.update(bar, status=f"success {rate:.0%} of {attempts}")
        writer.close()
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
