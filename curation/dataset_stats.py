"""Recompute and rewrite the stats of a LeRobot v3 dataset on disk, exactly (see ``curation.stats``).

Reads ``meta/info.json`` for the features, the data parquet files for numeric features and decodes every video
with PyAV (as lerobot's ``pyav`` backend does) for image features. Writes ``meta/stats.json`` and the
``stats/<feature>/<stat>`` columns of ``meta/episodes/*.parquet``, each atomically (temp file + rename).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.stats import FeatureStats, ImageStats, VectorStats, merge_all, to_lerobot
from dataengine.errors import DataEngineError
from dataengine.files import write_atomic
from dataengine.video import iter_frames


def read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise DataEngineError(f"{root} is not a LeRobot v3 dataset: meta/info.json is missing")
    return json.loads(path.read_text())


def episode_files(root: Path) -> list[Path]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DataEngineError(f"{root} has no meta/episodes/*/*.parquet: the dataset was never finalized")
    return files


def read_episodes(root: Path) -> list[dict]:
    """Every row of ``meta/episodes/*.parquet`` (stats columns included), in episode order."""
    rows = pa.concat_tables([pq.read_table(f) for f in episode_files(root)], promote_options="default").to_pylist()
    return sorted(rows, key=lambda row: row["episode_index"])


def _column_values(table: pa.Table, key: str) -> np.ndarray:
    """A numeric column as (N, dim) float64, without going through Python lists."""
    column = table.column(key).combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return np.asarray(column.flatten(), dtype=np.float64).reshape(len(column), -1)
    return np.asarray(column, dtype=np.float64).reshape(len(column), 1)


def compute_episode_stats(root: Path) -> dict[int, dict[str, FeatureStats]]:
    """Exact stats accumulators of every episode, keyed by episode index."""
    info = read_info(root)
    features = info["features"]
    fps = info["fps"]
    episodes = read_episodes(root)
    per_episode: dict[int, dict[str, FeatureStats]] = defaultdict(dict)

    numeric = [k for k, f in features.items() if f["dtype"] not in ("video", "image", "string")]
    for data_file in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(data_file, columns=numeric)
        episode_index = table.column("episode_index").to_numpy()
        for key in numeric:
            column = _column_values(table, key)
            for ep in np.unique(episode_index):
                stats = per_episode[int(ep)].setdefault(key, VectorStats())
                stats.update(column[episode_index == ep])

    video_keys = [k for k, f in features.items() if f["dtype"] == "video"]
    for key in video_keys:
        by_file: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for ep in episodes:
            by_file[(ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"])].append(ep)
        for (chunk, file), eps in by_file.items():
            path = root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
            if not path.is_file():
                raise DataEngineError(f"video file missing: {path}; the dataset is incomplete")
            windows = [(ep[f"videos/{key}/from_timestamp"] - 0.5 / fps, ep[f"videos/{key}/to_timestamp"] - 0.5 / fps,
                        per_episode[ep["episode_index"]].setdefault(key, ImageStats())) for ep in eps]
            for frame, time in iter_frames(path):  # frame by frame: a 200 MB video file never sits in memory
                for start, end, stats in windows:
                    if start <= time < end:
                        stats.update(frame[None])
    return dict(per_episode)


def _write_episode_stats(meta: Path, per_episode: dict[int, dict[str, dict[str, np.ndarray]]]) -> None:
    for path in sorted((meta / "episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path)
        indices = table.column("episode_index").to_pylist()
        for key in per_episode[indices[0]]:
            for stat in per_episode[indices[0]][key]:
                name = f"stats/{key}/{stat}"
                values = pa.array([per_episode[i][key][stat].tolist() for i in indices])
                if name in table.column_names:
                    values = values.cast(table.schema.field(name).type)
                    table = table.set_column(table.column_names.index(name), name, values)
                else:
                    table = table.append_column(name, values)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())


def write_stats_into(meta: Path, per_episode: dict[int, dict[str, FeatureStats]]) -> dict[str, dict[str, np.ndarray]]:
    """Write exact per-episode and dataset stats into the metadata directory ``meta`` (each file atomically)."""
    dataset_stats = to_lerobot(merge_all(list(per_episode.values())))
    _write_episode_stats(meta, {ep: to_lerobot(stats) for ep, stats in per_episode.items()})
    serialised = {key: {k: v.tolist() for k, v in s.items()} for key, s in dataset_stats.items()}
    write_atomic(meta / "stats.json", json.dumps(serialised, indent=4))
    return dataset_stats


def recompute_stats(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Recompute every feature's stats of the dataset at ``root`` and write them in. Returns the dataset stats."""
    root = Path(root)
    return write_stats_into(root / "meta", compute_episode_stats(root))
