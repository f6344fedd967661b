"""Test helper: write episodes with lerobot's own recording API (``LeRobotDataset.create / add_frame /
save_episode``), to get datasets exactly as lerobot writes them, its broken image stats included, for the tests of
``dataengine stats fix``. (The engine itself writes through ``so101_dataengine.formats.v3_writer``; ``benchmarks/curation_write.py``
compares the two.) lerobot's classic path is used (frames as images, encoded at ``save_episode``): its streaming
encoder lost the last frame of one camera under CPU load here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from so101_dataengine.formats.episode import EpisodeFrames
from so101_dataengine.formats.features import ROBOT_TYPE
from so101_dataengine.lerobot_compat import create_dataset


def write_with_lerobot(root: Path, repo_id: str, fps: int, features: dict[str, dict], episodes: list[EpisodeFrames],
                       vcodec: str = "h264") -> None:
    dataset = create_dataset(repo_id, fps, features, root, ROBOT_TYPE, vcodec)
    for episode in episodes:
        for t in range(len(episode)):
            frame = {"observation.state": episode.states[t], "action": episode.actions[t], "task": episode.task}
            frame.update({key: frames[t] for key, frames in episode.images.items()})
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    shutil.rmtree(Path(root) / "images", ignore_errors=True)  # lerobot's frame staging area, empty by now
