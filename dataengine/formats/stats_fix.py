"""``dataengine stats fix PATH``: recompute the exact stats of any LeRobot v3 dataset and rewrite them atomically.

Published datasets carry lerobot 0.4.4's broken image stats (std ~100x too small through uint8 overflow) or none
at all. The new stats are computed from the data files and every decoded video frame (``so101_dataengine.formats.stats``), then a
copy of ``meta/`` is rewritten and swapped in by rename, so a reader sees the old metadata or the new, never a
mix. Data and video files are never touched. The report lists, per feature and statistic, the largest change.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json_object
from so101_dataengine.formats.dataset_stats import compute_episode_stats, write_stats_into
from so101_dataengine.formats.stats import merge_all, to_lerobot
from so101_dataengine.formats.v3_dataset import read_episodes, read_info


@dataclass(frozen=True)
class StatChange:
    feature: str
    stat: str
    old: list | None
    new: list
    max_abs_change: float | None
    """None when the dataset had no such stat."""


def _flat(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).ravel()


def diff_stats(old: dict, new: dict[str, dict[str, np.ndarray]]) -> list[StatChange]:
    changes = []
    for feature, stats in new.items():
        for stat, value in stats.items():
            before = old.get(feature, {}).get(stat)
            if before is None or _flat(before).shape != _flat(value).shape:
                change = None
            else:
                change = float(np.max(np.abs(_flat(before) - _flat(value)), initial=0.0))
            changes.append(StatChange(feature, stat, None if before is None else _flat(before).tolist(),
                                      _flat(value).tolist(), change))
    return changes


def fix_stats(root: Path, dry_run: bool = False) -> list[StatChange]:
    """Recompute and (unless ``dry_run``) rewrite ``root``'s stats; returns what changed."""
    root = Path(root)
    info = read_info(root)
    if info.get("codebase_version") != "v3.0":
        raise DataEngineError(f"{root} is a LeRobot {info.get('codebase_version')} dataset: stats fix needs v3.0")
    if len(read_episodes(root)) != info.get("total_episodes"):
        raise DataEngineError(f"{root} is incomplete or still being written: meta/episodes and meta/info.json disagree")
    stats_path = root / "meta" / "stats.json"
    try:
        old = read_json_object(stats_path, "") if stats_path.is_file() else {}
    except DataEngineError:
        old = {}  # a corrupt stats.json is exactly what this command replaces
    per_episode = compute_episode_stats(root)
    if dry_run:
        return diff_stats(old, to_lerobot(merge_all(list(per_episode.values()))))
    staging = root / f".meta.staging-{os.getpid()}"
    retired = root / f".meta.old-{os.getpid()}"
    try:
        shutil.copytree(root / "meta", staging)
        new = write_stats_into(staging, per_episode)
        os.rename(root / "meta", retired)
        os.rename(staging, root / "meta")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return diff_stats(old, new)
