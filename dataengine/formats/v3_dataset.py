"""The LeRobot v3 dataset, read: its layout (``meta/info.json``, ``meta/episodes``, the data and video shards) and
the engine's provenance beside it (``meta/dataengine.json``). The one place that knows where those files are and
what a damaged one means; the writer is ``v3_writer``, the exact stats ``dataset_stats``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import parquet_schema, read_json_object, read_parquet

DAMAGED = "write or copy the dataset again (a LeRobot v3 dataset's files are never edited in place)"
"""The fix for a damaged file of a dataset: its files are written once, so a damaged one is replaced, not mended."""
INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")
EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index")
INFO = "info.json"
"""``meta/info.json``: lerobot's description of the dataset (features, fps, counts, path templates)."""
ENGINE_META = "dataengine.json"
"""``meta/dataengine.json``: what curate and demos record of every episode's origin."""
PROVENANCE_FIX = ("write the dataset again with 'dataengine curate' or 'dataengine demos' (or delete "
                  "meta/dataengine.json: the episodes are then identified by their data)")


def info_path(root: Path) -> Path:
    return Path(root) / "meta" / INFO


def is_v3_dataset(root: Path) -> bool:
    """Whether ``root`` holds a dataset's ``meta/info.json`` (a finished one: writers rename it into place last)."""
    return info_path(root).is_file()


def read_info(root: Path) -> dict:
    """``meta/info.json``, checked to hold what every reader here needs; missing or damaged: one error line."""
    path = info_path(root)
    if not path.is_file():
        raise DataEngineError(f"{root} is not a LeRobot v3 dataset: meta/info.json is missing")
    info = read_json_object(path, DAMAGED, INFO_KEYS)
    if not isinstance(info["features"], dict) or not all(isinstance(f, dict) for f in info["features"].values()):
        raise DataEngineError(f"{path} is damaged (its features are not a table of features): {DAMAGED}")
    return info


def episode_files(root: Path) -> list[Path]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DataEngineError(f"{root} has no meta/episodes/*/*.parquet: the dataset was never finalized")
    return files


def read_episodes(root: Path, stats: bool = True) -> list[dict]:
    """Every row of ``meta/episodes/*.parquet`` (its ``stats/...`` columns only with ``stats``), in episode
    order; a file without the columns every episode has is damaged."""
    tables = []
    for path in episode_files(root):
        names = parquet_schema(path, DAMAGED).names
        absent = [c for c in EPISODE_COLUMNS if c not in names]
        if absent:
            raise DataEngineError(f"{path} is damaged (it lacks the columns {', '.join(absent)}): {DAMAGED}")
        tables.append(read_parquet(path, DAMAGED, [c for c in names if stats or not c.startswith("stats/")]))
    rows = pa.concat_tables(tables, promote_options="default").to_pylist()
    return sorted(rows, key=lambda row: row["episode_index"])


def read_provenance(root: Path) -> list[dict]:
    """The per-episode provenance of ``meta/dataengine.json`` (empty without one: not every dataset is ours)."""
    path = root / "meta" / ENGINE_META
    if not path.is_file():
        return []
    episodes = read_json_object(path, PROVENANCE_FIX).get("episodes", [])
    if not isinstance(episodes, list) or not all(isinstance(e, dict) for e in episodes):
        raise DataEngineError(f"{path} is damaged (its episodes are not a list of objects): {PROVENANCE_FIX}")
    return episodes


def video_keys(info: dict) -> list[str]:
    return [k for k, f in info["features"].items() if f.get("dtype") == "video"]


def shard_paths(info: dict, episodes: list[dict]) -> list[str]:
    """Every data and video file (relative to the root) that some episode of ``episodes`` points at, sorted."""
    needed: set[str] = set()
    try:
        for ep in episodes:
            needed.add(info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]))
            for key in video_keys(info):
                needed.add(info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                                     file_index=ep[f"videos/{key}/file_index"]))
    except (KeyError, AttributeError, IndexError, ValueError) as error:
        raise DataEngineError(f"meta/info.json's paths and meta/episodes do not fit ({type(error).__name__}: "
                              f"{error}): {DAMAGED}") from None
    return sorted(needed)


def missing_shards(root: Path, info: dict, episodes: list[dict]) -> list[str]:
    """The files :func:`shard_paths` names that are absent (a partial copy or mirror)."""
    return [p for p in shard_paths(info, episodes) if not (root / p).is_file()]
