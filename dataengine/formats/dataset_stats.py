"""Recompute and rewrite the stats of a LeRobot v3 dataset on disk, exactly (see ``so101_dataengine.formats.stats``).

Reads ``meta/info.json`` for the features, the data parquet files for numeric features and decodes every video
with PyAV (as lerobot's ``pyav`` backend does) for image features. Writes ``meta/stats.json`` and the
``stats/<feature>/<stat>`` columns of ``meta/episodes/*.parquet``, each atomically (temp file + rename).
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_parquet, reading, write_atomic
from so101_dataengine.formats.stats import FeatureStats, ImageStats, VectorStats, merge_all, to_lerobot
from so101_dataengine.formats.v3_dataset import DAMAGED, check_complete, read_episodes, read_info, video_keys
from so101_dataengine.lerobot_compat.video import iter_frames


class EpisodeImageStats:
    """Exact image stats of each episode one video file holds, fed that file's decoded frames one at a time.

    The one place that decides which episode a decoded frame belongs to, so ``dataengine stats fix`` (which writes
    the stats) and publish's verification (which checks them in its single decode of every frame) can never
    disagree: a frame at time ``t`` belongs to the episode whose ``[from_timestamp, to_timestamp)`` holds
    ``t + 0.5 / fps`` (half a frame of slack for the container's rounding of timestamps)."""

    def __init__(self, key: str, episodes: list[dict], fps: int):
        self.key = key
        """The camera feature the file is a video of."""
        half = 0.5 / fps
        ordered = sorted(episodes, key=lambda ep: ep[f"videos/{key}/from_timestamp"])
        self._starts = [ep[f"videos/{key}/from_timestamp"] - half for ep in ordered]
        self._ends = [ep[f"videos/{key}/to_timestamp"] - half for ep in ordered]
        self._stats = [ImageStats() for _ in ordered]
        self.by_episode: dict[int, ImageStats] = {int(ep["episode_index"]): s for ep, s in zip(ordered, self._stats)}
        """Each episode's accumulator, by episode index."""

    def add(self, frame: np.ndarray, time: float) -> None:
        """One decoded frame (H, W, 3) uint8 at ``time`` seconds; a frame outside every episode counts for none."""
        slot = bisect.bisect_right(self._starts, time) - 1
        if slot >= 0 and time < self._ends[slot]:
            self._stats[slot].update(frame[None])


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
    check_complete(root, info, episodes)
    per_episode: dict[int, dict[str, FeatureStats]] = defaultdict(dict)

    numeric = [k for k, f in features.items() if f["dtype"] not in ("video", "image", "string")]
    for data_file in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        table = read_parquet(data_file, DAMAGED, numeric)
        episode_index = table.column("episode_index").to_numpy()
        for key in numeric:
            column = _column_values(table, key)
            for ep in np.unique(episode_index):
                stats = per_episode[int(ep)].setdefault(key, VectorStats())
                stats.update(column[episode_index == ep])

    for key in video_keys(info):
        by_file: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for ep in episodes:
            by_file[(ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"])].append(ep)
        for (chunk, file), eps in by_file.items():
            path = root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
            accumulator = EpisodeImageStats(key, eps, fps)
            with reading(path, DAMAGED, "a video that does not decode", also=(av.FFmpegError,)):
                for frame, time in iter_frames(path):  # frame by frame: a 200 MB video file never sits in memory
                    accumulator.add(frame, time)
            for index, stats in accumulator.by_episode.items():
                per_episode[index][key] = stats
            short = [(ep, accumulator.by_episode[ep["episode_index"]].frames) for ep in eps
                     if accumulator.by_episode[ep["episode_index"]].frames != ep["length"]]
            if short:
                ep, found = short[0]
                raise DataEngineError(f"{path} is damaged (it decodes {found} of episode {ep['episode_index']}'s "
                                      f"{ep['length']} frames: cut short or re-encoded): {DAMAGED}")
    return dict(per_episode)


def dataset_stats(per_episode: dict[int, dict[str, FeatureStats]]) -> dict[str, dict[str, np.ndarray]]:
    """The whole dataset's stats, merged exactly from its episodes' (what ``meta/stats.json`` holds)."""
    return to_lerobot(merge_all(list(per_episode.values())))


def _serialised(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    """``stats`` as ``meta/stats.json`` holds them (and as ``json.loads`` gives them back)."""
    return {key: {k: v.tolist() for k, v in s.items()} for key, s in stats.items()}


def _episode_tables(meta: Path, per_episode: dict[int, dict[str, dict[str, np.ndarray]]]
                    ) -> Iterator[tuple[Path, pa.Table, pa.Table]]:
    """Each ``meta/episodes`` file, its table as read and the same table with the ``stats/...`` columns set to
    ``per_episode`` (cast to the types already there, so values that did not change compare equal)."""
    for path in sorted((meta / "episodes").glob("chunk-*/file-*.parquet")):
        read = table = read_parquet(path, DAMAGED)
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
        yield path, read, table


def _by_episode(per_episode: dict[int, dict[str, FeatureStats]]) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    return {ep: to_lerobot(stats) for ep, stats in per_episode.items()}


def stats_are_current(meta: Path, stats_json: dict, per_episode: dict[int, dict[str, FeatureStats]]) -> bool:
    """Whether the metadata directory ``meta`` (whose ``stats.json`` parsed to ``stats_json``) already holds exactly
    these stats, per episode and merged: rewriting it then would change nothing but the files' bytes (parquet
    writers differ), which breaks every manifest and mirror that hashed them."""
    if stats_json != _serialised(dataset_stats(per_episode)):
        return False
    return all(read.equals(updated) for _, read, updated in _episode_tables(meta, _by_episode(per_episode)))


def write_stats_into(meta: Path, per_episode: dict[int, dict[str, FeatureStats]]) -> dict[str, dict[str, np.ndarray]]:
    """Write exact per-episode and dataset stats into the metadata directory ``meta`` (each file atomically)."""
    for path, read, table in _episode_tables(meta, _by_episode(per_episode)):
        if read.equals(table):
            continue  # an unchanged file keeps its bytes, and every hash taken of it
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())
    stats = dataset_stats(per_episode)
    write_atomic(meta / "stats.json", json.dumps(_serialised(stats), indent=4))
    return stats


def recompute_stats(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Recompute every feature's stats of the dataset at ``root`` and write them in. Returns the dataset stats."""
    root = Path(root)
    return write_stats_into(root / "meta", compute_episode_stats(root))
