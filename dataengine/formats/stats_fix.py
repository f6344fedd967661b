"""``dataengine stats fix PATH``: recompute the exact stats of any LeRobot v3 dataset and rewrite them atomically.

Published datasets carry lerobot 0.4.4's broken image stats (std ~100x too small through uint8 overflow) or none
at all. The new stats are computed from the data files and every decoded video frame (``so101_dataengine.formats.stats``), then a
copy of ``meta/`` is rewritten and swapped in by rename, so a reader sees the old metadata or the new, never a
mix; when it already holds exactly these stats it is left as it is (rewriting would change the files' bytes for
nothing). Data and video files are never touched. The report lists, per feature and statistic, the largest change.
A published registry version is refused: it is immutable (its manifest hashes these files), so the fix is a
corrected copy published as a new version.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json_object
from so101_dataengine.formats.dataset_stats import (
    compute_episode_stats,
    dataset_stats,
    stats_are_current,
    write_stats_into,
)
from so101_dataengine.formats.v3_dataset import read_episodes, read_info
from so101_dataengine.publish.tags import is_dataset_tag


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


def _old_values(old: dict, feature: str, stat: str) -> np.ndarray | None:
    """A stat as the old ``stats.json`` holds it, None when it is absent or not numbers (a hand-edited ``"bad"``,
    a feature that is not a table): such a value is replaced like a missing one."""
    stats = old.get(feature)
    try:
        return _flat(stats[stat]) if isinstance(stats, dict) and stat in stats else None
    except (TypeError, ValueError):
        return None


def diff_stats(old: dict, new: dict[str, dict[str, np.ndarray]]) -> list[StatChange]:
    changes = []
    for feature, stats in new.items():
        for stat, value in stats.items():
            before, after = _old_values(old, feature, stat), _flat(value)
            comparable = before is not None and before.shape == after.shape
            change = float(np.max(np.abs(before - after), initial=0.0)) if comparable else None
            changes.append(StatChange(feature, stat, None if before is None else before.tolist(), after.tolist(),
                                      change))
    return changes


def _published_version(root: Path) -> Path | None:
    """The registry version ``root`` is or lies in (``REGISTRY/OWNER/NAME/versions/ds-...``), links followed: lerobot's
    cache ``OWNER/NAME`` is a link to the newest one. None outside a registry."""
    resolved = Path(root).resolve()
    return next((p for p in (resolved, *resolved.parents) if p.parent.name == "versions" and is_dataset_tag(p.name)),
                None)


def _check_writable_dataset(root: Path) -> None:
    """Refuse, before the long recomputation, what ``fix_stats`` must not or cannot rewrite: a published version
    (immutable: its files are hard links shared with other versions, hashed in its manifest) and a ``stats.json``
    that is not a file."""
    version = _published_version(root)
    if version is not None:
        raise DataEngineError(f"{root} is the published version {version} and is never rewritten: copy it "
                              f"(cp -r {version} NEW_DIR), run 'dataengine stats fix NEW_DIR' and publish NEW_DIR "
                              "as a new version")
    stats_path = root / "meta" / "stats.json"
    if (stats_path.exists() or stats_path.is_symlink()) and not stats_path.is_file():
        raise DataEngineError(f"{stats_path} is not a file: remove it, then run 'dataengine stats fix {root}' again "
                              "(it writes a new one)")


def _swap_in_stats(root: Path, per_episode: dict) -> None:
    """Rewrite a copy of ``meta/`` and rename it into place, so a reader sees the old metadata or the new."""
    staging = root / f".meta.staging-{os.getpid()}"
    retired = root / f".meta.old-{os.getpid()}"
    try:
        shutil.copytree(root / "meta", staging)
        write_stats_into(staging, per_episode)
        os.rename(root / "meta", retired)
        os.rename(staging, root / "meta")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def fix_stats(root: Path, dry_run: bool = False) -> list[StatChange]:
    """Recompute and (unless ``dry_run``) rewrite ``root``'s stats; returns what changed. ``meta/`` is left as it is
    when it already holds these exact stats."""
    root = Path(root)
    info = read_info(root)
    if info.get("codebase_version") != "v3.0":
        raise DataEngineError(f"{root} is a LeRobot {info.get('codebase_version')} dataset: stats fix needs v3.0")
    if len(read_episodes(root)) != info.get("total_episodes"):
        raise DataEngineError(f"{root} is incomplete or still being written: meta/episodes and meta/info.json disagree")
    if not dry_run:
        _check_writable_dataset(root)
    stats_path = root / "meta" / "stats.json"
    try:
        old = read_json_object(stats_path, "") if stats_path.is_file() else {}
    except DataEngineError:
        old = {}  # a corrupt stats.json is exactly what this command replaces
    per_episode = compute_episode_stats(root)
    if not dry_run and not stats_are_current(root / "meta", old, per_episode):
        _swap_in_stats(root, per_episode)
    return diff_stats(old, dataset_stats(per_episode))
