"""Validation of a finished dataset before it is moved into place: every referenced file present, lerobot's own
``LeRobotDataset`` loads it offline and returns the first and last frame of every episode's videos."""

from __future__ import annotations

from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.formats.v3_dataset import check_complete, read_episodes, read_info


def check_files(root: Path) -> None:
    """The metadata lerobot opens and every data and video file an episode points at are there (the shard rule
    publish applies too: ``v3_dataset.check_complete``)."""
    absent = [name for name in ("meta/tasks.parquet", "meta/stats.json") if not (root / name).is_file()]
    if absent:
        raise DataEngineError(f"dataset {root} is incomplete: missing {', '.join(absent)}: write it again")
    check_complete(root, read_info(root), read_episodes(root))


def check_loads(root: Path, repo_id: str, every_episode: bool = True) -> int:
    """Load with lerobot (offline) and read each episode's first and last frame (only the dataset's first and last
    episode's when ``every_episode`` is off: publish decodes every frame itself already); returns the number of
    frames."""
    from so101_dataengine.lerobot_compat import LeRobotDataset, install_video_fallback
    from so101_dataengine.lerobot_compat.video import video_backend

    install_video_fallback()
    dataset = LeRobotDataset(repo_id, root=root, video_backend=video_backend())
    last = dataset.num_episodes - 1
    for episode in range(dataset.num_episodes) if every_episode else sorted({0, last}):
        start = dataset.meta.episodes[episode]["dataset_from_index"]
        end = dataset.meta.episodes[episode]["dataset_to_index"]
        for index in (start, end - 1):
            try:
                item = dataset[index]
            except Exception as error:  # lerobot's decoders raise many types; each means this frame cannot be read
                raise DataEngineError(f"dataset {root}: lerobot cannot read frame {index} (episode {episode}: "
                                      f"{type(error).__name__}: {str(error).splitlines()[0][:160]}): a file was cut "
                                      f"or damaged; write or copy the dataset again") from None
            if int(item["episode_index"]) != episode:
                raise DataEngineError(f"dataset {root}: frame {index} belongs to the wrong episode")
    return len(dataset)


def validate_dataset(root: Path, repo_id: str) -> int:
    check_files(root)
    return check_loads(root, repo_id)
