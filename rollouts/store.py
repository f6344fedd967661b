"""The episode store: what ``dataengine rollout`` writes and the classifier and curation read.

```
RUN/manifest.json                      run id, full config, policy identity, n, seeds (written once, atomically)
RUN/episodes/e000042/meta.json         episode id, seed, initial scene, outcome + metrics, policy identity
RUN/episodes/e000042/data.npz          state (T, 6), action (T, 6), timestamp (T,)
RUN/episodes/e000042/<camera key>.mp4  one H.264 video per camera (compact; decodes anywhere with PyAV)
```
An episode directory is built under a hidden temporary name and renamed into place when complete, so a killed
run never leaves a half episode that looks finished; leftovers are removed on resume. Episode ``k`` always uses
scene seed ``seed + k``, so a resumed run ends with exactly ids 0..n-1: no duplicates, no holes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataengine.errors import DataEngineError
from dataengine.files import write_atomic
from dataengine.video import decode_frames, encode_frames
from rollouts.episode import RecordedEpisode

MANIFEST = "manifest.json"
EPISODES = "episodes"
_TMP_PREFIX = ".tmp-"


def episode_dirname(episode_id: int) -> str:
    return f"e{episode_id:06d}"


@dataclass(frozen=True)
class StoredEpisode:
    meta: dict
    states: np.ndarray
    actions: np.ndarray
    timestamps: np.ndarray
    images: dict[str, np.ndarray]


class EpisodeStore:
    """A run directory of finished episodes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.episodes_dir = self.root / EPISODES

    # -- creation ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, manifest: dict) -> "EpisodeStore":
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise DataEngineError(f"{root} already exists and is not empty: pass --resume to continue it, or a new --out")
        (root / EPISODES).mkdir(parents=True, exist_ok=True)
        write_atomic(root / MANIFEST, json.dumps(manifest, indent=2))
        return cls(root)

    @classmethod
    def open(cls, root: Path) -> "EpisodeStore":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise DataEngineError(f"{root} is not a rollout run (no {MANIFEST})")
        return cls(root)

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / MANIFEST).read_text())

    # -- episodes ------------------------------------------------------------------------------------------
    def completed_ids(self) -> list[int]:
        if not self.episodes_dir.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in self.episodes_dir.iterdir()
                      if p.name.startswith("e") and p.name[1:].isdigit() and p.is_dir())

    def remove_partials(self) -> int:
        """Delete temporary episode directories left by killed workers; returns how many."""
        leftovers = [p for p in self.episodes_dir.iterdir() if p.name.startswith(_TMP_PREFIX)]
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)

    def write(self, episode_id: int, episode: RecordedEpisode, policy: dict, fps: int, codec: str) -> bool:
        """Store one finished episode atomically. Returns False if that id was already stored (a retried task)."""
        final = self.episodes_dir / episode_dirname(episode_id)
        if final.exists():
            return False
        tmp = self.episodes_dir / f"{_TMP_PREFIX}{episode_dirname(episode_id)}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            self._write_files(tmp, episode_id, episode, policy, fps, codec)
            os.rename(tmp, final)
        except FileExistsError:  # another attempt finished the same episode first
            return False
        except OSError as error:
            if final.exists():  # same race, reported as "directory not empty"
                return False
            raise error
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True

    @staticmethod
    def _write_files(tmp: Path, episode_id: int, episode: RecordedEpisode, policy: dict, fps: int, codec: str) -> None:
        frames = episode.frames
        np.savez_compressed(tmp / "data.npz", state=frames.states, action=frames.actions,
                            timestamp=np.arange(len(frames), dtype=np.float32) / fps)
        for key, images in frames.images.items():
            encode_frames(tmp / f"{key}.mp4", images, fps, codec)
        meta = {"episode_id": episode_id, "seed": episode.seed, "length": len(frames), "task": frames.task,
                "scene": episode.scene.to_dict(), "metrics": episode.metrics.to_dict(), "policy": policy,
                "cameras": sorted(frames.images)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    def read_meta(self, episode_id: int) -> dict:
        return json.loads((self.episodes_dir / episode_dirname(episode_id) / "meta.json").read_text())

    def read(self, episode_id: int) -> StoredEpisode:
        path = self.episodes_dir / episode_dirname(episode_id)
        meta = json.loads((path / "meta.json").read_text())
        with np.load(path / "data.npz") as data:
            arrays = (data["state"], data["action"], data["timestamp"])
        images = {key: decode_frames(path / f"{key}.mp4")[0] for key in meta["cameras"]}
        return StoredEpisode(meta, *arrays, images)
