"""lerobot's own recording API (``add_frame / save_episode``) behind one call per episode: the reference that the
engine's fast writer (``curation.v3_writer``) is benchmarked against (``benchmarks/demos_writer.py``), and the
source of datasets with lerobot's broken stats for ``dataengine stats fix``'s tests.

lerobot's ``LeRobotDataset.create / add_frame / save_episode`` guarantees the on-disk layout is byte-for-byte what
lerobot reads. Its streaming encoder (frames straight to the encoder, no PNG round trip) lost the last frame of one
camera's video under CPU load (a 96 px h264 tour on 2 busy cores: 2,035 wrist frames for 2,036 overhead ones, so
lerobot's loader failed on that frame); lerobot's classic path (frames as images, encoded at ``save_episode``) is
used instead. Its stats are wrong for images (see ``curation.stats``), so ``close()`` can recompute every feature's
stats from the written files (videos decoded as the trainer decodes them).
"""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

from lerobot.datasets.lerobot_dataset import LeRobotDataset

from curation.dataset_stats import recompute_stats
from curation.features import ROBOT_TYPE
from rollouts.episode import EpisodeFrames


class DatasetWriter:
    """Appends episodes to a new LeRobot v3 dataset at ``root`` (which must not exist yet)."""

    def __init__(self, root: Path, repo_id: str, fps: int, features: dict[str, dict], vcodec: str = "libsvtav1"):
        self.root = Path(root)
        self._dataset = LeRobotDataset.create(
            repo_id=repo_id,
            fps=fps,
            features=features,
            root=self.root,
            robot_type=ROBOT_TYPE,
            use_videos=True,
            vcodec=vcodec,
            streaming_encoding=False,  # see the module docstring
        )

    def add_episode(self, episode: EpisodeFrames) -> None:
        for t in range(len(episode)):
            frame = {"observation.state": episode.states[t], "action": episode.actions[t], "task": episode.task}
            frame.update({key: frames[t] for key, frames in episode.images.items()})
            self._dataset.add_frame(frame)
        # lerobot encodes the cameras in child processes, which a daemonic process (a dask worker) cannot have
        self._dataset.save_episode(parallel_encoding=not multiprocessing.current_process().daemon)

    def abort(self) -> None:
        """Stop lerobot's writers and delete everything written (they would otherwise flush into ``root`` later)."""
        try:
            self._dataset.finalize()
        except Exception:  # noqa: BLE001  (already failing: the files are deleted below either way)
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self, exact_stats: bool = True) -> None:
        """Flush lerobot's writers, then replace its stats with exact ones (skip for a shard that is merged and
        recomputed anyway)."""
        self._dataset.finalize()
        shutil.rmtree(self.root / "images", ignore_errors=True)  # lerobot's frame staging area, empty by now
        if exact_stats:
            recompute_stats(self.root)
