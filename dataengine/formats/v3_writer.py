"""A fast LeRobot v3 writer: episodes (stored rollouts, or expert demos in memory) -> a finished dataset, without
lerobot's per-frame path.

lerobot's ``add_frame / save_episode`` validates and buffers every frame in Python, writes one parquet file per
episode through ``datasets``, and re-muxes the growing video file after every episode. Here:

* every episode is one task (dask, parallel over episodes): read it from the episode store, resize its frames
  once (optional; swscale, fused with the RGB -> YUV conversion), encode each camera with lerobot's own codec
  settings (``_get_codec_options``: GOP 2, CRF 30, SVT-AV1 preset 12), decode the written file back and keep
  exact pixel histograms of what the trainer will decode (``so101_dataengine.formats.stats``);
* the driver then concatenates the episode videos into lerobot's files (stream copy, lerobot's
  ``concatenate_video_files``, one pass per file), writes the data, episode, task and info metadata once, and the
  exact stats.

Layout (lerobot 0.4.4, ``lerobot/datasets/utils.py``): ``data/chunk-XXX/file-XXX.parquet``,
``videos/<key>/chunk-XXX/file-XXX.mp4`` (episodes back to back, located by from/to timestamps),
``meta/info.json``, ``meta/episodes/chunk-000/file-000.parquet``, ``meta/tasks.parquet``, ``meta/stats.json``.
A base dataset's files are copied as they are (same indices) and the new files are numbered after them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.formats.episode import EpisodeFrames
from so101_dataengine.formats.stats import FeatureStats, ImageStats, VectorStats, merge_all, to_lerobot
from so101_dataengine.lerobot_compat.video import iter_frames

VIDEO_MB = 200
"""lerobot's ``DEFAULT_VIDEO_FILE_SIZE_IN_MB``: a video file is closed once it would grow past this."""
DATA_FRAMES_PER_FILE = 1_000_000
"""Frames per data parquet file (~100 MB of lerobot's limit at ~100 bytes per frame)."""
CHUNKS_SIZE = 1000
STATE_KEYS = ("observation.state", "action")


@dataclass(frozen=True)
class EncodeTask:
    """One episode to encode: picklable, so a dask worker can run it."""

    run_dir: str
    episode_id: int
    out_dir: str
    fps: int
    vcodec: str
    image_size: int | None
    encoder_threads: int = 1


@dataclass
class EncodedEpisode:
    """An episode ready to be placed in the dataset: its vectors, encoded camera files and exact stats."""

    task: str
    states: np.ndarray
    actions: np.ndarray
    videos: dict[str, str]
    durations: dict[str, float]
    image_stats: dict[str, ImageStats]

    def __len__(self) -> int:
        return len(self.states)


LEROBOT_CODEC_OPTIONS = {"libsvtav1": {"g": "2", "crf": "30", "preset": "12"}, "h264": {"g": "2", "crf": "30"},
                         "hevc": {"g": "2", "crf": "30"}}
"""lerobot 0.4.4's encoder settings (``video_utils._get_codec_options`` defaults; a test keeps them equal). Kept
here so encoding workers need not import lerobot (torch, datasets: seconds per worker)."""


def _codec_options(vcodec: str, threads: int) -> dict[str, str]:
    options = dict(LEROBOT_CODEC_OPTIONS[vcodec])
    if vcodec == "libsvtav1":
        options["svtav1-params"] = f"lp={threads}"
    else:
        options["threads"] = str(threads)
    return options


def encode_video(frames: np.ndarray, path: Path, fps: int, vcodec: str, size: int | None, threads: int = 1) -> None:
    """(T, H, W, 3) uint8 RGB -> an MP4 with lerobot's codec settings, resized to ``size`` x ``size`` if given."""
    height, width = (size, size) if size else frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(vcodec, fps, options=_codec_options(vcodec, threads))
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width, height
        stream.time_base = Fraction(1, fps)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def video_duration(path: Path) -> float:
    """Seconds, as lerobot's ``get_video_duration_in_s`` measures them (the stream's duration x time base)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration / av.time_base)


def encode_frames(frames: EpisodeFrames, out: Path, fps: int, vcodec: str, image_size: int | None,
                  threads: int = 1) -> EncodedEpisode:
    """One in-memory episode -> encoded camera files in ``out`` + exact stats of the pixels the trainer will decode."""
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise; keep its errors
    out.mkdir(parents=True, exist_ok=True)
    videos, durations, image_stats = {}, {}, {}
    for key, images in frames.images.items():
        path = out / f"{key}.mp4"
        encode_video(images, path, fps, vcodec, image_size, threads)
        stats = ImageStats()
        for frame, _time in iter_frames(path):
            stats.update(frame[None])
        videos[key], durations[key], image_stats[key] = str(path), video_duration(path), stats
    return EncodedEpisode(frames.task, np.asarray(frames.states, np.float32), np.asarray(frames.actions, np.float32),
                          videos, durations, image_stats)


def encode_episode(task: EncodeTask) -> EncodedEpisode:
    """A dask task: one stored episode -> :func:`encode_frames`."""
    from so101_dataengine.formats.store import EpisodeStore

    episode = EpisodeStore.open(Path(task.run_dir)).read(task.episode_id)
    frames = EpisodeFrames(episode.states, episode.actions, episode.images, episode.meta["task"])
    return encode_frames(frames, Path(task.out_dir), task.fps, task.vcodec, task.image_size, task.encoder_threads)


# -- assembling the dataset ---------------------------------------------------------------------------------


def next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


@dataclass
class BaseDataset:
    """An existing v3 dataset whose episodes come first in the output, unchanged."""

    root: Path
    info: dict
    episodes: list[dict]
    tasks: list[str]
    episode_stats: dict[int, dict[str, FeatureStats]]

    @classmethod
    def load(cls, root: Path) -> "BaseDataset":
        from so101_dataengine.base.files import read_parquet
        from so101_dataengine.formats.dataset_stats import compute_episode_stats
        from so101_dataengine.formats.v3_dataset import DAMAGED, read_episodes, read_info

        info = read_info(root)
        tasks = read_parquet(root / "meta" / "tasks.parquet", DAMAGED).to_pandas()
        if "task_index" not in tasks:
            raise DataEngineError(f"{root / 'meta' / 'tasks.parquet'} is damaged (no task_index column): {DAMAGED}")
        ordered = sorted(zip(tasks["task_index"], tasks.index))
        return cls(root, info, read_episodes(root), [t for _, t in ordered], compute_episode_stats(root))

    def last_file(self, column: str) -> tuple[int, int] | None:
        """Highest (chunk, file) the base uses for data (``column="data"``) or a video key."""
        pairs = [(e[f"{column}/chunk_index"], e[f"{column}/file_index"]) for e in self.episodes]
        return max(pairs) if pairs else None


@dataclass
class DatasetLayout:
    """What the assembler needs to know about the output dataset."""

    root: Path
    info: dict
    """info.json as lerobot writes it (features with video info filled in); totals are set on writing."""
    base: BaseDataset | None = None
    provenance: list[dict] = field(default_factory=list)
    """One dict per new episode (its ``dataengine/...`` columns in the episode metadata)."""


def _copy_base(layout: DatasetLayout) -> None:
    base = layout.base
    for sub in ("data", "videos"):
        if (base.root / sub).is_dir():
            shutil.copytree(base.root / sub, layout.root / sub, dirs_exist_ok=True)


def _write_row_group_per_episode(table: pa.Table, lengths: list[int], path: Path) -> None:
    """``table`` (episodes of ``lengths`` frames, back to back) as one parquet row group per episode, as lerobot 0.6
    writes its data files: a reader fetches one episode's rows without decoding its neighbours'."""
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for length in lengths:
            writer.write_table(table.slice(start, length))
            start += length


def _write_data(layout: DatasetLayout, episodes: list[EncodedEpisode], first_episode: int, first_index: int,
                task_index: dict[str, int]) -> list[tuple[int, int]]:
    """Data parquet files for the new episodes; returns each episode's (chunk, file)."""
    from so101_dataengine.lerobot_compat import get_hf_features_from_features

    features = {k: {**f, "shape": tuple(f["shape"])} for k, f in layout.info["features"].items()}  # as load_info
    schema = get_hf_features_from_features(features).arrow_schema
    fps = layout.info["fps"]
    last = layout.base.last_file("data") if layout.base else None
    chunk, file = next_file(*last) if last else (0, 0)
    placement, batch, batch_frames = [], [], 0

    def flush() -> None:
        nonlocal chunk, file, batch, batch_frames
        if not batch:
            return
        columns: dict[str, list] = {name: [] for name in schema.names}
        index = first_index + sum(len(e) for e in episodes[: batch[0]])
        for i in batch:
            episode, frames = episodes[i], len(episodes[i])
            columns["observation.state"].append(episode.states)
            columns["action"].append(episode.actions)
            columns["timestamp"].append(np.arange(frames, dtype=np.float32) / fps)
            columns["frame_index"].append(np.arange(frames))
            columns["episode_index"].append(np.full(frames, first_episode + i))
            columns["index"].append(np.arange(index, index + frames))
            columns["task_index"].append(np.full(frames, task_index[episode.task]))
            index += frames
        arrays = []
        for name in schema.names:
            values = np.concatenate(columns[name])
            field_type = schema.field(name).type
            if values.ndim == 2:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), field_type.value_type),
                                                                values.shape[1]).cast(field_type))
            else:
                arrays.append(pa.array(values, field_type))
        path = layout.root / layout.info["data_path"].format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_row_group_per_episode(pa.Table.from_arrays(arrays, schema=schema), [len(episodes[i]) for i in batch],
                                     path)
        placement.extend([(chunk, file)] * len(batch))
        chunk, file = next_file(chunk, file)
        batch, batch_frames = [], 0

    for i, episode in enumerate(episodes):
        if batch and batch_frames + len(episode) > DATA_FRAMES_PER_FILE:
            flush()
        batch.append(i)
        batch_frames += len(episode)
    flush()
    return placement


def _write_videos(layout: DatasetLayout, episodes: list[EncodedEpisode], key: str) -> list[dict]:
    """Concatenate the episodes' videos of one camera into lerobot's files; returns each episode's location."""
    from so101_dataengine.lerobot_compat import concatenate_video_files

    last = layout.base.last_file(f"videos/{key}") if layout.base else None
    chunk, file = next_file(*last) if last else (0, 0)
    locations, group, group_mb, offset = [], [], 0.0, 0.0

    def flush() -> None:
        nonlocal chunk, file, group, group_mb, offset
        if not group:
            return
        path = layout.root / layout.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        sources = [Path(episodes[i].videos[key]) for i in group]
        if len(sources) == 1:
            shutil.copyfile(sources[0], path)
        else:
            av.logging.set_level(av.logging.ERROR)  # FFmpeg notes each bitstream filter it inserts
            try:
                concatenate_video_files(sources, path)
            finally:
                av.logging.set_level(None)
        chunk, file = next_file(chunk, file)
        group, group_mb, offset = [], 0.0, 0.0

    for i, episode in enumerate(episodes):
        size_mb = Path(episode.videos[key]).stat().st_size / 1024**2
        if group and group_mb + size_mb >= VIDEO_MB:
            flush()
        duration = episode.durations[key]
        locations.append({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                          f"videos/{key}/from_timestamp": offset, f"videos/{key}/to_timestamp": offset + duration})
        group.append(i)
        group_mb += size_mb
        offset += duration
    flush()
    return locations


def _vector_stats(values: np.ndarray) -> VectorStats:
    stats = VectorStats()
    stats.update(values)
    return stats


def _new_episode_stats(episode: EncodedEpisode, episode_index: int, first_index: int, task: int, fps: int
                       ) -> dict[str, FeatureStats]:
    frames = len(episode)
    stats: dict[str, FeatureStats] = {"observation.state": _vector_stats(episode.states),
                                      "action": _vector_stats(episode.actions)}
    stats["timestamp"] = _vector_stats(np.arange(frames, dtype=np.float32)[:, None] / fps)
    stats["frame_index"] = _vector_stats(np.arange(frames)[:, None])
    stats["episode_index"] = _vector_stats(np.full((frames, 1), episode_index))
    stats["index"] = _vector_stats(np.arange(first_index, first_index + frames)[:, None])
    stats["task_index"] = _vector_stats(np.full((frames, 1), task))
    stats.update(episode.image_stats)
    return stats


def _stats_columns(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, list]:
    return {f"stats/{key}/{name}": value.tolist() for key, values in stats.items() for name, value in values.items()}


def write_dataset(layout: DatasetLayout, episodes: list[EncodedEpisode]) -> dict[str, dict[str, np.ndarray]]:
    """Write the base's files and the encoded episodes as one v3 dataset at ``layout.root``; returns its stats."""
    from so101_dataengine.lerobot_compat import write_info, write_stats, write_tasks

    info, base, fps = layout.info, layout.base, layout.info["fps"]
    layout.root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    per_episode: list[dict[str, FeatureStats]] = []
    tasks: list[str] = list(base.tasks) if base else []
    if base:
        _copy_base(layout)
        for row in base.episodes:
            rows.append({k: v for k, v in row.items() if not k.startswith(("stats/", "meta/episodes/"))})
            per_episode.append(base.episode_stats[row["episode_index"]])
    for episode in episodes:
        if episode.task not in tasks:
            tasks.append(episode.task)
    task_index = {task: i for i, task in enumerate(tasks)}
    first_episode = len(rows)
    first_index = rows[-1]["dataset_to_index"] if rows else 0

    placement = _write_data(layout, episodes, first_episode, first_index, task_index)
    videos = {key: _write_videos(layout, episodes, key) for key, f in info["features"].items() if f["dtype"] == "video"}
    index = first_index
    for i, episode in enumerate(episodes):
        row = {"episode_index": first_episode + i, "tasks": [episode.task], "length": len(episode),
               "data/chunk_index": placement[i][0], "data/file_index": placement[i][1],
               "dataset_from_index": index, "dataset_to_index": index + len(episode)}
        for locations in videos.values():
            row.update(locations[i])
        row.update(layout.provenance[i] if layout.provenance else {})
        rows.append(row)
        per_episode.append(_new_episode_stats(episode, first_episode + i, index, task_index[episode.task], fps))
        index += len(episode)

    for row, stats in zip(rows, per_episode):
        row.update(_stats_columns(to_lerobot(stats)))
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.Table.from_pylist([{k: row.get(k) for k in columns} for row in rows])
    episodes_path = layout.root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, episodes_path)

    write_tasks(pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks)), layout.root)
    info = {**info, "total_episodes": len(rows), "total_frames": index, "total_tasks": len(tasks),
            "splits": {"train": f"0:{len(rows)}"}}
    write_info(info, layout.root)
    dataset_stats = to_lerobot(merge_all(per_episode))
    write_stats(dataset_stats, layout.root)
    return dataset_stats


def build_info(features: dict, fps: int, sample_videos: dict[str, Path], robot_type: str) -> dict:
    """lerobot's info.json for new features, with each video feature's ``info`` read from one encoded file."""
    from so101_dataengine.lerobot_compat import DEFAULT_FEATURES, empty_dataset_info, get_video_info

    features = {**features, **DEFAULT_FEATURES}
    info = empty_dataset_info(fps, json.loads(json.dumps(features)), robot_type)
    for key, path in sample_videos.items():
        info["features"][key]["info"] = get_video_info(path)
    return info
