"""A decoded-frame cache for training: every camera frame of a LeRobot v3 dataset decoded once, kept as raw uint8.

Why: lerobot-train decodes one video frame per camera per sample, seeking inside an mp4 each time. On the GPU
machine that decoding, not the GPU, bounded ACT training (data loading ~40 % of every step at batch 128; the
users saw the same: "data loading, not the GPU, bounded training"). Decoding each frame once into a flat array
(one file per camera, one row per dataset index) turns a sample's images into a memory read shared by all
dataloader workers through the page cache.

The cache only replaces *how* lerobot obtains the decoded frames (``_query_videos`` of ``LeRobotDataset`` on 0.4.4,
of its ``DatasetReader`` on 0.6: ``lerobot_compat.dataset_reader_class``) and, once frames are cheap, the
action/state chunks (``_query_hf_dataset``, from the numeric columns held in memory); the dataset,
its timestamps, the training loop and the samples the policy sees are unchanged (a test compares them with
lerobot's own reads). The cache is keyed by the dataset's content (``fingerprint``), built in a hidden directory and
renamed into place, so a killed build is simply rebuilt and a changed dataset never reads stale frames. When the
disk is short, the least recently used caches that no training is reading make room.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.lerobot_compat.video import iter_frames

CACHE_ENV = "DATAENGINE_FRAME_CACHE"
"""Set by ``dataengine train`` for its lerobot-train process: the cache directory to read frames from."""
INFO_FILE = "frame_cache.json"
TOLERANCE_S = 1e-4
"""lerobot's default ``tolerance_s``: how far a decoded frame's timestamp may be from the one asked for."""
EPISODES_PER_TASK = 8
"""Episodes decoded by one task: a v3 video file holds many episodes back to back, decoded in one pass each."""


@dataclass(frozen=True)
class DecodeTask:
    """Decode the frames of some consecutive episodes of one video file into rows of one camera's cache file."""

    video: str
    cache_file: str
    shape: tuple[int, ...]
    fps: int
    episodes: tuple[tuple[float, int, int], ...]
    """(from_timestamp in the file, first dataset index, length) per episode, in file order."""


def fingerprint(root: Path) -> str:
    """Content key of a dataset: its info.json and the names and sizes of its data, episode and video files."""
    digest = hashlib.sha256((root / "meta" / "info.json").read_bytes())
    for sub in ("data", "meta/episodes", "videos"):
        for file in sorted((root / sub).rglob("*")):
            if file.is_file():
                digest.update(f"{file.relative_to(root).as_posix()}:{file.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _camera_file(key: str) -> str:
    return key.replace("/", "_") + ".u8"


def plan(root: Path) -> tuple[dict, list[DecodeTask]]:
    """The cache's description (cameras, shapes) and the decode tasks that fill it."""
    from so101_dataengine.lerobot_compat import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata("local/frame_cache", root=root)
    episodes = meta.episodes
    cameras, tasks = {}, []
    for key in meta.video_keys:
        height, width, channels = meta.features[key]["shape"]
        shape = (meta.total_frames, height, width, channels)
        cameras[key] = {"file": _camera_file(key), "shape": list(shape)}
        by_file: dict[str, list[tuple[float, int, int]]] = {}
        for index in range(meta.total_episodes):
            episode = episodes[index]
            video = str(root / meta.get_video_file_path(index, key))
            by_file.setdefault(video, []).append(
                (float(episode[f"videos/{key}/from_timestamp"]), int(episode["dataset_from_index"]), int(episode["length"]))
            )
        for video, spans in by_file.items():
            spans.sort()
            for start in range(0, len(spans), EPISODES_PER_TASK):
                tasks.append(DecodeTask(video, cameras[key]["file"], shape, meta.fps,
                                        tuple(spans[start : start + EPISODES_PER_TASK])))
    return {"fps": meta.fps, "total_frames": meta.total_frames, "cameras": cameras}, tasks


def decode_into(task: DecodeTask, cache_dir: Path) -> int:
    """Decode ``task``'s episodes in one pass over the video and write each frame to its dataset row; returns
    the number of frames written. Every frame of every episode must be found."""
    damaged = "the dataset is damaged: write or copy the dataset again (re-record or re-curate it)"
    rows = np.memmap(cache_dir / task.cache_file, dtype=np.uint8, mode="r+", shape=task.shape)
    wanted = {}
    for from_ts, first_index, length in task.episodes:
        for k in range(length):
            tick = round((from_ts + k / task.fps) * task.fps)
            if tick in wanted:
                raise DataEngineError(f"{task.video}: two episodes claim the frame at {tick / task.fps:.3f} s; {damaged}")
            wanted[tick] = first_index + k
    last_tick = max(wanted)
    from av.error import FFmpegError

    with reading(Path(task.video), damaged, "not a complete video", also=(FFmpegError,)):  # a cut or corrupt file
        for image, seconds in iter_frames(Path(task.video), start=task.episodes[0][0]):
            tick = round(seconds * task.fps)
            if tick > last_tick:
                break
            if tick in wanted:
                if abs(seconds - tick / task.fps) > TOLERANCE_S:
                    raise DataEngineError(f"{task.video}: a frame at {seconds:.5f} s is off the {task.fps} fps grid "
                                          f"(more than lerobot's {TOLERANCE_S} s); {damaged}")
                rows[wanted.pop(tick)] = image
    rows.flush()
    if wanted:
        raise DataEngineError(f"{task.video}: {len(wanted)} frames of its episodes are missing from the video; {damaged}")
    return sum(length for _, _, length in task.episodes)


def build(root: Path, cache_root: Path, console: Console) -> Path:
    """The cache of dataset ``root`` under ``cache_root`` (built if missing, in parallel processes). Builds of the
    same dataset take turns (a file lock): a second ``dataengine train`` waits, then uses the first one's cache."""
    root = Path(root).resolve()
    cache_dir = Path(cache_root) / fingerprint(root)
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    with open(_lock_path(cache_dir), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # shared with trainings reading it; no pruning meanwhile
        if not (cache_dir / INFO_FILE).is_file():
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (flock re-locks, so look again)
            if not (cache_dir / INFO_FILE).is_file():
                _build_locked(root, cache_dir, console)
        os.utime(cache_dir / INFO_FILE)  # last use: what pruning goes by
    return cache_dir


def _lock_path(cache_dir: Path) -> Path:
    return cache_dir.with_name(f".{cache_dir.name}.lock")


_HELD: list = []
"""Lock files this process holds shared for the caches it reads, so that no build prunes them meanwhile."""


def hold(cache_dir: Path) -> None:
    """Mark ``cache_dir`` in use for the rest of this process (a shared lock; pruning skips locked caches)."""
    handle = open(_lock_path(Path(cache_dir)), "a")
    fcntl.flock(handle, fcntl.LOCK_SH)
    _HELD.append(handle)


def _prune(cache_root: Path, need: int, console: Console) -> None:
    """Delete least recently used caches that no process is reading until ``need`` bytes are free: every dataset
    version gets its own cache (~12 GB for 200 episodes at 224 px), and a growing dataset makes one per round."""
    caches = sorted((d for d in cache_root.iterdir() if (d / INFO_FILE).is_file()),
                    key=lambda d: (d / INFO_FILE).stat().st_mtime)
    for old in caches:
        if shutil.disk_usage(cache_root).free >= need:
            return
        with open(_lock_path(old), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a training is reading it
                continue
            size = sum(f.stat().st_size for f in old.iterdir())
            shutil.rmtree(old)
            console.print(f"frame cache: removed the least recently used cache {old.name} ({size / 2**30:.1f} GiB) "
                          "to make room")


def _build_locked(root: Path, cache_dir: Path, console: Console) -> None:
    partial = cache_dir.with_name(f".{cache_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # a killed build's leftovers: before the free-space check
    info, tasks = plan(root)
    need = sum(int(np.prod(c["shape"])) for c in info["cameras"].values())
    _prune(cache_dir.parent, need, console)
    free = shutil.disk_usage(cache_dir.parent).free
    if need > free:
        raise DataEngineError(f"the decoded-frame cache needs {need / 2**30:.1f} GiB and {cache_dir.parent} has "
                              f"{free / 2**30:.1f} GiB free (no unused cache left to remove): free space, or train "
                              "with --no-frame-cache")
    partial.mkdir()
    try:
        for camera in info["cameras"].values():
            np.memmap(partial / camera["file"], dtype=np.uint8, mode="w+", shape=tuple(camera["shape"])).flush()
        workers = max(1, min(len(tasks), os.cpu_count() or 1))
        context = multiprocessing.get_context("spawn")  # the caller may hold torch threads: never fork them
        with ProcessPoolExecutor(workers, mp_context=context) as pool, progress_bar(console, "frame cache") as bar:
            job = bar.add_task("", total=info["total_frames"] * len(info["cameras"]), status="decoding each frame once")
            for frames in pool.map(decode_into, tasks, [partial] * len(tasks)):
                bar.advance(job, frames)
        (partial / INFO_FILE).write_text(json.dumps(info, indent=2))
        partial.rename(cache_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    console.print(f"frame cache: {need / 2**30:.1f} GiB in {cache_dir} (safe to delete; rebuilt when needed)")


class FrameCache:
    """The cache opened for reading (memory-mapped, so dataloader workers share the pages)."""

    def __init__(self, cache_dir: Path):
        info = json.loads((Path(cache_dir) / INFO_FILE).read_text())
        self.fingerprint = Path(cache_dir).name
        self.fps = info["fps"]
        self.cameras = {key: np.memmap(Path(cache_dir) / c["file"], dtype=np.uint8, mode="r", shape=tuple(c["shape"]))
                        for key, c in info["cameras"].items()}

    def frames(self, key: str, first_index: int, length: int, timestamps: list[float], tolerance_s: float,
               uint8: bool = False):
        """(N, 3, H, W) frames at episode-relative ``timestamps`` as lerobot's decoders return them: float in [0, 1],
        or the raw uint8 with ``uint8`` (lerobot 0.6's ``return_uint8``)."""
        import torch

        from so101_dataengine.lerobot_compat import FrameTimestampError

        ticks = [t * self.fps for t in timestamps]
        nearest = [min(max(round(t), 0), length - 1) for t in ticks]
        if any(abs(t - n) / self.fps >= tolerance_s for t, n in zip(ticks, nearest)):
            raise FrameTimestampError(f"query timestamps {timestamps} are further than {tolerance_s} s from any frame")
        images = torch.from_numpy(self.cameras[key][[first_index + n for n in nearest]]).permute(0, 3, 1, 2)
        return images.contiguous() if uint8 else images.float().div_(255.0)


def read_columns(root: Path) -> dict[str, np.ndarray]:
    """Every numeric column of a dataset's parquet files as one array whose row is the dataset index (actions,
    states, timestamps, ...): a few MB, read once per process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in sorted((Path(root) / "data").glob("*/*.parquet"))])
    order = np.argsort(table["index"].to_numpy())
    columns = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            columns[name] = column.flatten().to_numpy().reshape(len(column), column.type.list_size)[order]
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns[name] = column.to_numpy()[order]
    return columns


def install(cache_dir: Path) -> None:
    """Make lerobot's dataset reads of the cached dataset take its frames from the cache, and its action/state chunks
    from in-memory columns instead of one parquet row lookup per index (the next cost per sample once frames are
    cached: ~9 ms for ACT's 100 actions). Other datasets, if any, keep lerobot's own reads. A dataset is recognised
    by its content, wherever it lies.

    Installed before the dataset is made. Dataloader workers get it either way they start: forked ones (lerobot
    0.4.4) inherit the patched class; spawned ones (lerobot 0.6's default) import lerobot afresh, so a reader pickled
    for them carries this cache with it and installs it there before it is rebuilt (``_rebuild_with_cache``).
    Installing the same cache again is a no-op."""
    import torch

    from so101_dataengine.lerobot_compat import dataset_reader_class, read_side

    cache_dir = Path(cache_dir).resolve()
    reader = dataset_reader_class()
    if getattr(reader._query_videos, "frame_cache_dir", None) == cache_dir:
        return
    hold(cache_dir)
    cache = FrameCache(cache_dir)
    decode_from_video, query_rows = reader._query_videos, reader._query_hf_dataset
    pickle_reader = reader.__reduce_ex__
    fingerprints: dict[Path, str] = {}
    columns: dict[str, np.ndarray] = {}

    def is_cached(root: Path) -> bool:
        if root not in fingerprints:
            fingerprints[root] = fingerprint(root)
        return fingerprints[root] == cache.fingerprint

    def query_videos(self, query_timestamps: dict[str, list[float]], ep_idx: int) -> dict:
        side = read_side(self)
        if not is_cached(side.root):
            return decode_from_video(self, query_timestamps, ep_idx)
        episode = side.meta.episodes[ep_idx]
        first, length = int(episode["dataset_from_index"]), int(episode["length"])
        return {key: cache.frames(key, first, length, timestamps, side.tolerance_s, side.uint8).squeeze(0)
                for key, timestamps in query_timestamps.items()}

    def query_hf_dataset(self, query_indices: dict[str, list[int]]) -> dict:
        side = read_side(self)
        if not is_cached(side.root) or side.episode_subset:  # an episode subset: lerobot's way
            return query_rows(self, query_indices)
        wanted = {k: i for k, i in query_indices.items() if k not in side.meta.video_keys}
        if not columns:
            columns.update(read_columns(side.root))
        if any(key not in columns for key in wanted):
            return query_rows(self, query_indices)
        return {key: torch.from_numpy(columns[key][indices]) for key, indices in wanted.items()}

    def reduce_ex(self, protocol: int):
        rebuild, args, *rest = pickle_reader(self, protocol)
        return (_rebuild_with_cache, (str(cache_dir), rebuild, args), *rest)

    query_videos.frame_cache_dir = cache_dir
    reader._query_videos = query_videos
    reader._query_hf_dataset = query_hf_dataset
    reader.__reduce_ex__ = reduce_ex


def _rebuild_with_cache(cache_dir: str, rebuild, args: tuple):
    """Unpickle a reader of a cached dataset in another process (a spawned dataloader worker): the cache first."""
    install(Path(cache_dir))
    return rebuild(*args)
