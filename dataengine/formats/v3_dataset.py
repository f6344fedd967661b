"""The LeRobot v3 dataset, read: its layout (``meta/info.json``, ``meta/stats.json``, ``meta/episodes``, the data and
video shards) and the engine's provenance beside it (``meta/dataengine.json``). The one place that knows where those
files are and what a damaged one means: each reader checks the types of what its callers use, so a cut, mistyped or
foreign file is one error line naming it and its fix, never a ``TypeError`` deep in a caller (or, for what only
lerobot reads, a traceback in a lerobot-train subprocess). The writer is ``v3_writer``, the exact stats
``dataset_stats``.
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
STATS = "stats.json"
"""``meta/stats.json``: every feature's statistics, which lerobot normalises the policy's inputs and outputs with."""
ENGINE_META = "dataengine.json"
"""``meta/dataengine.json``: what curate and demos record of every episode's origin."""
PROVENANCE_FIX = ("write the dataset again with 'dataengine curate' or 'dataengine demos' (or delete "
                  "meta/dataengine.json: the episodes are then identified by their data)")
PROVENANCE_TYPES: dict[str, type] = {"episode_index": int, "episode_id": int, "source_episode": int, "seed": int,
                                     "run_id": str, "source_run": str, "metrics": dict}
"""The type of each per-episode provenance field a reader uses (publish, diff, curate --base, classifier --demos),
where present and not null."""
CAMERA_DTYPES = ("video", "image")


def stats_fix(root: Path | str) -> str:
    """The fix for missing, damaged, incomplete or inexact stats: the command that computes them again."""
    return f"run 'dataengine stats fix {root}' to compute exact stats"


def info_path(root: Path) -> Path:
    return Path(root) / "meta" / INFO


def is_v3_dataset(root: Path) -> bool:
    """Whether ``root`` holds a dataset's ``meta/info.json`` (a finished one: writers rename it into place last)."""
    return info_path(root).is_file()


def _is_count(value: object, least: int = 0) -> bool:
    """A whole number (JSON's ``true`` is not one) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _info_problem(info: dict) -> str | None:
    """What in a parsed ``meta/info.json`` is not of the type lerobot and the engine read it as (None: nothing)."""
    if not _is_count(info["fps"], 1):
        return f"fps is {info['fps']!r}, not a whole number of frames per second"
    for key in ("total_episodes", "total_frames"):
        if not _is_count(info[key]):
            return f"{key} is {info[key]!r}, not a count"
    for key in ("codebase_version", "data_path"):
        if not isinstance(info[key], str):
            return f"{key} is {info[key]!r}, not a string"
    features = info["features"]
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        return "its features are not a table of features"
    for key, feature in features.items():
        shape = feature.get("shape")
        if not isinstance(feature.get("dtype"), str):
            return f"feature {key!r} has no dtype"
        if not (isinstance(shape, list) and shape and all(_is_count(side, 1) for side in shape)):
            return f"the shape of feature {key!r} is {shape!r}, not a list of sizes"
        names = feature.get("names")
        if feature["dtype"] in CAMERA_DTYPES and not (isinstance(names, list) and len(names) == len(shape)
                                                      and {"height", "width"} <= set(names)):
            return f"the names of camera feature {key!r} are {names!r}, not its height, width and channels"
    if video_keys(info) and not isinstance(info.get("video_path"), str):
        return f"video_path is {info.get('video_path')!r}, not the path template of its videos"
    return None


def read_info(root: Path) -> dict:
    """``meta/info.json``, checked to hold what every reader here needs, of the types they read it as; missing or
    damaged: one error line."""
    path = info_path(root)
    if not path.is_file():
        raise DataEngineError(f"{root} is not a LeRobot v3 dataset: meta/info.json is missing")
    info = read_json_object(path, DAMAGED, INFO_KEYS)
    problem = _info_problem(info)
    if problem is not None:
        raise DataEngineError(f"{path} is damaged ({problem}): {DAMAGED}")
    return info


def _is_numbers(value: object) -> bool:
    """A number, or a non-empty (nested) list of numbers: one statistic of one feature."""
    if isinstance(value, list):
        return bool(value) and all(_is_numbers(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_stats(root: Path) -> dict[str, dict]:
    """``meta/stats.json``: per feature, a table of statistics, each numbers; missing or damaged (cut, another
    shape, a value that is no number), one error line whose fix, ``dataengine stats fix``, writes it again."""
    path = Path(root) / "meta" / STATS
    fix = stats_fix(root)
    if not path.is_file():
        raise DataEngineError(f"{path} is missing: {fix}")
    stats = read_json_object(path, fix)
    for key, table in stats.items():
        if not isinstance(table, dict):
            raise DataEngineError(f"{path} is damaged (the stats of {key!r} are a {type(table).__name__}, not a "
                                  f"table of statistics): {fix}")
        wrong = next((name for name, value in table.items() if not _is_numbers(value)), None)
        if wrong is not None:
            raise DataEngineError(f"{path} is damaged (the {wrong} of {key!r} is {str(table[wrong])[:40]!r}, not "
                                  f"numbers): {fix}")
    return stats


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


def _episode_problem(episode: dict) -> str | None:
    """Which field of one episode's provenance is not of its :data:`PROVENANCE_TYPES` type (None: none)."""
    for key, kind in PROVENANCE_TYPES.items():
        value = episode.get(key)
        if value is not None and not (isinstance(value, kind) and not isinstance(value, bool)):
            return f"{key} is {str(value)[:40]!r}, not {'a whole number' if kind is int else f'a {kind.__name__}'}"
    outcome = (episode.get("metrics") or {}).get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        return f"metrics.outcome is {outcome!r}, not an outcome's name"
    return None


def _read_engine_meta(root: Path) -> dict | None:
    """``meta/dataengine.json`` (None without one: not every dataset is ours), its episodes a list of objects whose
    fields have their types and its config an object."""
    path = Path(root) / "meta" / ENGINE_META
    if not path.is_file():
        return None
    meta = read_json_object(path, PROVENANCE_FIX)
    episodes = meta.get("episodes", [])
    if not isinstance(episodes, list) or not all(isinstance(e, dict) for e in episodes):
        raise DataEngineError(f"{path} is damaged (its episodes are not a list of objects): {PROVENANCE_FIX}")
    for position, episode in enumerate(episodes):
        problem = _episode_problem(episode)
        if problem is not None:
            raise DataEngineError(f"{path} is damaged (episode {episode.get('episode_index', position)}'s "
                                  f"{problem}): {PROVENANCE_FIX}")
    if not isinstance(meta.get("config", {}), dict):
        raise DataEngineError(f"{path} is damaged (its config is not an object): {PROVENANCE_FIX}")
    return meta


def read_provenance(root: Path) -> list[dict]:
    """The per-episode provenance of ``meta/dataengine.json`` (empty without one: not every dataset is ours)."""
    meta = _read_engine_meta(root)
    return [] if meta is None else meta.get("episodes", [])


def recorded_repo_id(root: Path) -> str | None:
    """The repo id curate or demos recorded in ``meta/dataengine.json`` (None without the file)."""
    meta = _read_engine_meta(root)
    if meta is None:
        return None
    repo_id = meta.get("config", {}).get("repo_id")
    if not isinstance(repo_id, str):
        raise DataEngineError(f"{Path(root) / 'meta' / ENGINE_META} is damaged (no config.repo_id): {PROVENANCE_FIX}")
    return repo_id


def recorded_outcomes(root: Path) -> list[str] | None:
    """Each episode's outcome (``metrics.outcome``, e.g. ``SUCCESS``) as demos or curate recorded it, in episode
    order (None without ``meta/dataengine.json``); a file that misses an episode's outcome, or describes other
    episodes than the dataset's, is damaged."""
    meta = _read_engine_meta(root)
    if meta is None:
        return None
    provenance, path = meta.get("episodes", []), Path(root) / "meta" / ENGINE_META
    by_index = {e.get("episode_index", i): e for i, e in enumerate(provenance)}
    total = read_info(root)["total_episodes"]
    if sorted(by_index) != list(range(total)) or len(provenance) != total:
        raise DataEngineError(f"{path} is damaged (it describes {len(provenance)} episodes, the dataset has {total}): "
                              f"{PROVENANCE_FIX}")
    missing = [i for i in range(total) if "outcome" not in (by_index[i].get("metrics") or {})]
    if missing:
        raise DataEngineError(f"{path} is damaged (episode {missing[0]} has no metrics.outcome): {PROVENANCE_FIX}")
    return [by_index[i]["metrics"]["outcome"] for i in range(total)]


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


def check_complete(root: Path, info: dict, episodes: list[dict]) -> None:
    """Every file :func:`shard_paths` names is there; else one error line listing the first few missing."""
    missing = missing_shards(root, info, episodes)
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise DataEngineError(f"{root} is incomplete: {len(missing)} file(s) its episodes point at are missing "
                              f"({', '.join(missing[:3])}{more}): copy the complete dataset")


def check_readable(root: Path) -> dict:
    """Read, before lerobot does, every file lerobot's loader opens (``info.json``, ``stats.json``, meta/episodes,
    ``meta/tasks.parquet``, the footer of each data file) and check that every data and video file is there: what
    lerobot would fail on in a training subprocess is one error line here. Returns ``info.json``. (Whether each
    video frame decodes is for the decode that uses it: publish's, the frame cache's.)"""
    root = Path(root)
    info = read_info(root)
    read_stats(root)
    episodes = read_episodes(root, stats=False)
    parquet_schema(root / "meta" / "tasks.parquet", DAMAGED)
    check_complete(root, info, episodes)
    for path in shard_paths(info, episodes):
        if path.endswith(".parquet"):
            parquet_schema(root / path, DAMAGED)
    return info
