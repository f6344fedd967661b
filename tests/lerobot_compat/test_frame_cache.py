"""The decoded-frame cache that ``dataengine train`` puts under lerobot-train: it must give lerobot's dataset exactly
the images lerobot's own video decoding gives, for every sample, and never serve another dataset's frames."""

import json
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from rich.console import Console

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.lerobot_compat import dataset_reader_class, frame_cache
from so101_dataengine.lerobot_compat.video import video_backend

ACT_DELTAS = {"action": [k / 30 for k in range(10)]}
"""Samples as ACT's training asks for them: the current frame's images and a chunk of actions."""


def _dataset(config, **kwargs) -> LeRobotDataset:
    return LeRobotDataset(config.repo_id, root=config.out, video_backend=video_backend(), **kwargs)


def _undo_install_after_the_test(monkeypatch) -> type:
    """The reader class (LeRobotDataset on 0.4.4, its DatasetReader on 0.6), restored when the test ends."""
    reader = dataset_reader_class()
    for method in ("_query_videos", "_query_hf_dataset", "__reduce_ex__"):
        monkeypatch.setattr(reader, method, getattr(reader, method))
    return reader


def test_cached_samples_equal_lerobots_decoded_samples(demo_dataset, grown_dataset, tmp_path, monkeypatch):
    reader = _undo_install_after_the_test(monkeypatch)
    decoded = _dataset(demo_dataset, delta_timestamps=ACT_DELTAS)
    expected = [decoded[index] for index in range(len(decoded))]  # before install: the patch is on the class
    other_decoded = _dataset(grown_dataset)
    cache_dir = frame_cache.build(demo_dataset.out, tmp_path / "cache", Console())
    assert frame_cache.build(demo_dataset.out, tmp_path / "cache", Console()) == cache_dir  # reused, not rebuilt

    frame_cache.install(cache_dir)
    other = _dataset(grown_dataset)  # not cached: decoded from its own videos
    cameras = decoded.meta.video_keys
    last = len(other) - 1
    assert torch.equal(other[last][cameras[0]], other_decoded[last][cameras[0]])

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached dataset decoded a video")

    monkeypatch.setattr(sys.modules[reader.__module__], "decode_video_frames", no_decoding)
    column_reads = []
    monkeypatch.setattr(frame_cache, "read_columns",
                        lambda root, read=frame_cache.read_columns: column_reads.append(root) or read(root))
    cached = _dataset(demo_dataset, delta_timestamps=ACT_DELTAS)
    assert len(cameras) == 2 and len(cached) == len(decoded)
    for index, want in enumerate(expected):
        got = cached[index]
        for key in cameras:
            assert got[key].shape == want[key].shape and got[key].dtype == want[key].dtype
            assert torch.equal(got[key], want[key]), f"sample {index} {key}"
        for key in ("action", "action_is_pad", "observation.state", "timestamp", "index"):
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), f"sample {index} {key}"
    assert len(column_reads) == 1  # the action chunks came from the in-memory columns, read once

    moved = shutil.copytree(demo_dataset.out, tmp_path / "moved")  # same content elsewhere: still served from the cache
    from_moved = LeRobotDataset(demo_dataset.repo_id, root=moved, video_backend=video_backend())
    assert torch.equal(from_moved[5][cameras[1]], expected[5][cameras[1]])


def test_spawned_dataloader_workers_read_the_cache_not_the_videos(demo_dataset, tmp_path, monkeypatch):
    """lerobot 0.6's lerobot-train starts its dataloader workers with spawn: they import lerobot afresh, so a patch
    made in the training process is not theirs. The cache must reach them anyway (it did not: 0.6.1 trained on the GPU
    at a third of 0.4.4's speed). Proof: once the cache is built, every video is overwritten with noise of the same
    size (the dataset's fingerprint is unchanged), and spawned workers still return lerobot's decoded samples."""
    _undo_install_after_the_test(monkeypatch)
    copy = shutil.copytree(demo_dataset.out, tmp_path / "copy")
    decoded = LeRobotDataset(demo_dataset.repo_id, root=copy, video_backend=video_backend(),
                             delta_timestamps=ACT_DELTAS)
    expected = [decoded[index] for index in range(len(decoded))]
    frame_cache.install(frame_cache.build(copy, tmp_path / "cache", Console(quiet=True)))
    frame_cache.install(frame_cache.build(copy, tmp_path / "cache", Console(quiet=True)))  # again: a no-op
    cached = LeRobotDataset(demo_dataset.repo_id, root=copy, video_backend=video_backend(),
                            delta_timestamps=ACT_DELTAS)
    noise = torch.Generator().manual_seed(0)
    for video in (copy / "videos").rglob("*.mp4"):
        size = video.stat().st_size
        video.write_bytes(torch.randint(0, 256, (size,), dtype=torch.uint8, generator=noise).numpy().tobytes())
    loader = torch.utils.data.DataLoader(cached, batch_size=16, num_workers=2, multiprocessing_context="spawn")
    got = [sample for batch in loader for sample in _unbatch(batch, len(batch["index"]))]
    assert [int(s["index"]) for s in got] == [int(s["index"]) for s in expected]
    for want, sample in zip(expected, got):
        for key in (*cached.meta.video_keys, "action", "action_is_pad", "observation.state"):
            assert torch.equal(sample[key], want[key]), f"sample {int(want['index'])} {key}"


def _unbatch(batch: dict, size: int) -> list[dict]:
    return [{key: value[row] for key, value in batch.items() if isinstance(value, torch.Tensor)}
            for row in range(size)]


def test_a_changed_dataset_gets_a_new_cache_and_a_killed_build_is_redone(demo_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo_dataset.out, copy)
    first = frame_cache.build(copy, tmp_path / "cache", Console())
    video = next((copy / "videos").rglob("*.mp4"))
    video.write_bytes(video.read_bytes() + b"\0")  # a re-encoded or appended video changes the dataset's content
    assert frame_cache.fingerprint(copy) != first.name

    killed = first.with_name(f".{frame_cache.fingerprint(copy)}.partial")
    killed.mkdir()
    (killed / "leftover.u8").write_bytes(b"half")
    second = frame_cache.build(copy, tmp_path / "cache", Console())
    assert second != first and not killed.exists() and not (second / "leftover.u8").exists()
    assert (second / frame_cache.INFO_FILE).is_file()


def _build_in_another_process(root: str, cache_root: str) -> str:
    return str(frame_cache.build(Path(root), Path(cache_root), Console(quiet=True)))


def test_two_trainings_building_the_same_cache_at_once_share_one_build(demo_dataset, tmp_path):
    """Two `dataengine train` runs on one dataset (a sweep) start together: one builds, the other waits for it."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        built = list(pool.map(_build_in_another_process, [str(demo_dataset.out)] * 2, [str(tmp_path / "cache")] * 2))
    assert built[0] == built[1]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")) == [Path(built[0]).name]
    cache = frame_cache.FrameCache(Path(built[0]))
    decoded = _dataset(demo_dataset)
    key = decoded.meta.video_keys[0]
    last = len(decoded) - 1
    assert torch.equal(cache.frames(key, 0, last + 1, [last / 30], 1e-4)[0], decoded[last][key])


def test_overlapping_episodes_are_a_clear_error_and_leave_nothing_behind(demo_dataset, tmp_path):
    """A damaged index (episode 1 starting inside episode 0's frames) must not become silently black frames."""
    copy = shutil.copytree(demo_dataset.out, tmp_path / "copy")
    path = next((copy / "meta" / "episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    column = "videos/observation.images.wrist/from_timestamp"
    starts = table[column].to_pylist()
    starts[1] -= 1 / 30
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(starts)), path)
    with pytest.raises(DataEngineError, match="two episodes claim the frame .* the dataset is damaged"):
        frame_cache.build(copy, tmp_path / "cache", Console(quiet=True))
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_short_disk_removes_the_least_recently_used_cache_nobody_reads(demo_dataset, tmp_path, monkeypatch):
    """Each dataset version gets its own cache; when the disk is short the oldest unused one goes, never one that a
    training is reading (it holds a shared lock from `install`)."""
    def version(name: str) -> Path:  # same frames, another dataset version (its info.json differs)
        copy = shutil.copytree(demo_dataset.out, tmp_path / name)
        info = json.loads((copy / "meta" / "info.json").read_text())
        (copy / "meta" / "info.json").write_text(json.dumps({**info, "version_note": name}))
        return copy

    cache_root = tmp_path / "cache"
    read_by_a_training, unused = (frame_cache.build(version(n), cache_root, Console(quiet=True)) for n in ("a", "b"))
    frame_cache.hold(read_by_a_training)  # what `install` does inside lerobot-train
    for age, cache in enumerate((read_by_a_training, unused)):  # the one being read is the older
        os.utime(cache / frame_cache.INFO_FILE, (1000 + age, 1000 + age))
    real_disk_usage = shutil.disk_usage
    monkeypatch.setattr(frame_cache.shutil, "disk_usage",  # room for one more cache only once one has gone
                        lambda path: real_disk_usage(path)._replace(free=10**12 if not unused.exists() else 0))
    newest = frame_cache.build(version("c"), cache_root, Console(quiet=True))
    assert read_by_a_training.exists() and not unused.exists() and (newest / frame_cache.INFO_FILE).is_file()

    monkeypatch.setattr(frame_cache.shutil, "disk_usage", lambda path: real_disk_usage(path)._replace(free=0))
    with pytest.raises(DataEngineError, match="no unused cache left to remove"):
        frame_cache.build(version("d"), cache_root, Console(quiet=True))
    assert read_by_a_training.exists(), "a cache in use is never removed"
