"""Validation of a finished dataset before it is moved into place: every referenced file present, lerobot's own
``LeRobotDataset`` loads it offline and returns the first and last frame of every episode's videos."""

from __future__ import annotations

from pathlib import Path

from so101_dataengine.formats.v3_dataset import read_episodes, read_info
from so101_dataengine.base.errors import DataEngineError


def check_files(root: Path) -> None:
    info = read_info(root)
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    needed = {root / "meta" / "tasks.parquet", root / "meta" / "stats.json"}
    for episode in read_episodes(root):
        needed.add(root / info["data_path"].format(chunk_index=episode["data/chunk_index"],
                                                   file_index=episode["data/file_index"]))
        for key in video_keys:
            needed.add(root / info["video_path"].format(video_key=key, chunk_index=episode[f"videos/{key}/chunk_index"],
                                                        file_index=episode[f"videos/{key}/file_index"]))
    missing = sorted(str(p.relative_to(root)) for p in needed if not p.is_file())
    if missing:
        raise DataEngineError(f"dataset {root} is incomplete: missing {', '.join(missing[:5])}")


def check_loads(root: Path, repo_id: str) -> int:
    """Load with lerobot (offline) and read each episode's first and last frame; returns the number of frames."""
    from so101_dataengine.lerobot_compat import LeRobotDataset

    from so101_dataengine.lerobot_compat.video import video_backend

    dataset = LeRobotDataset(repo_id, root=root, video_backend=video_backend())
    for episode in range(dataset.num_episodes):
        start = dataset.meta.episodes[episode]["dataset_from_index"]
        end = dataset.meta.episodes[episode]["dataset_to_index"]
        for index in (start, end - 1):
            item = dataset[index]
            if int(item["episode_index"]) != episode:
                raise DataEngineError(f"dataset {root}: frame {index} belongs to the wrong episode")
    return len(dataset)


def validate_dataset(root: Path, repo_id: str) -> int:
    check_files(root)
    return check_loads(root, repo_id)
