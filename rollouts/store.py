"""The episode store: what ``dataengine rollout`` writes and the classifier and curation read.

```
RUN/manifest.json                      run id, full config, policy identity, n, seeds (written once, atomically)
RUN/episodes/e000042/meta.json         episode id, seed, initial scene, outcome + metrics, policy identity
RUN/episodes/e000042/data.npz          state (T, 6), action (T, 6), timestamp (T,), offsets.<camera key> (T + 1,)
RUN/episodes/e000042/<camera key>.mjpeg  one Motion-JPEG stream per camera (``rollouts.frames``: cheap to record)
RUN/episodes/e000042/classifier.json   optional: the success classifier's score (``rollout --classifier``)
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
from dataengine.files import read_json, write_atomic
from rollouts.frames import JPEG_QUALITY, JpegStreamWriter, read_jpeg_stream
from scenes.outcome import EpisodeMetrics
from scenes.randomization import SceneSample

MANIFEST = "manifest.json"
EPISODES = "episodes"
_TMP_PREFIX = ".tmp-"
_DAMAGED_EPISODE = "delete that episode's directory and run the same command with --resume to record it again"
SCORE = "classifier.json"


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
        return read_json(self.root / MANIFEST, "this run cannot be resumed; roll it out again into a new --out")

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

    def begin(self, episode_id: int, fps: int, jpeg_quality: int = JPEG_QUALITY) -> "EpisodeWriter":
        """Start recording one episode into a hidden directory (see ``EpisodeWriter``)."""
        tmp = self.episodes_dir / f"{_TMP_PREFIX}{episode_dirname(episode_id)}-{uuid.uuid4().hex}"
        tmp.mkdir()
        return EpisodeWriter(tmp, self.episodes_dir / episode_dirname(episode_id), episode_id, fps, jpeg_quality)

    def read_meta(self, episode_id: int) -> dict:
        return read_json(self.episodes_dir / episode_dirname(episode_id) / "meta.json", _DAMAGED_EPISODE)

    def write_score(self, episode_id: int, score: dict) -> None:
        """Record the success classifier's verdict on a stored episode (``classifier.json``, written atomically;
        a later score by another classifier replaces it)."""
        write_atomic(self.episodes_dir / episode_dirname(episode_id) / SCORE, json.dumps(score, indent=2))

    def read_score(self, episode_id: int) -> dict | None:
        """The classifier's verdict recorded by ``write_score``, or None."""
        path = self.episodes_dir / episode_dirname(episode_id) / SCORE
        return read_json(path, "delete it and score the run again (dataengine rollout --resume --classifier ...)") \
            if path.is_file() else None

    def missing_files(self, episode_id: int) -> list[str]:
        """The files a stored episode must have that are absent (a damaged or hand-edited run)."""
        path = self.episodes_dir / episode_dirname(episode_id)
        needed = ["data.npz", *(f"{key}.mjpeg" for key in self.read_meta(episode_id)["cameras"])]
        return [name for name in needed if not (path / name).is_file()]

    def read(self, episode_id: int, frames: slice | np.ndarray | None = None) -> StoredEpisode:
        """One episode; ``frames`` (a slice or indices) selects frames, e.g. ``slice(-8, None)`` for the last 8,
        and only those are decoded."""
        path = self.episodes_dir / episode_dirname(episode_id)
        meta = read_json(path / "meta.json", _DAMAGED_EPISODE)
        selected = slice(None) if frames is None else frames
        with np.load(path / "data.npz") as data:
            arrays = (data["state"][selected], data["action"][selected], data["timestamp"][selected])
            offsets = {key: data[f"offsets.{key}"] for key in meta["cameras"]}
        images = {key: read_jpeg_stream(path / f"{key}.mjpeg", offsets[key], frames) for key in meta["cameras"]}
        return StoredEpisode(meta, *arrays, images)


class EpisodeWriter:
    """One episode being recorded: frames are encoded as they arrive (memory stays flat however long the
    episode), and ``commit`` renames the finished directory into place atomically.

    Not thread-safe: one thread at a time (the engine gives each environment's episodes to one writer lane).
    """

    def __init__(self, tmp: Path, final: Path, episode_id: int, fps: int, jpeg_quality: int):
        self.tmp, self.final, self.episode_id, self.fps, self.jpeg_quality = tmp, final, episode_id, fps, jpeg_quality
        self._streams: dict[str, JpegStreamWriter] = {}
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []

    def add(self, state: np.ndarray, action: np.ndarray, images: dict[str, np.ndarray]) -> None:
        """Frame t: the observation (state and camera images) and the action taken from it."""
        self._states.append(state)
        self._actions.append(action)
        for key, image in images.items():
            if key not in self._streams:
                self._streams[key] = JpegStreamWriter(self.tmp / f"{key}.mjpeg", self.jpeg_quality)
            self._streams[key].add(image)

    def commit(self, seed: int, scene: SceneSample, metrics: EpisodeMetrics, policy: dict, task: str) -> bool:
        """Finish the files and move the episode into place. False if that id was already stored (a retried task
        finished it first); the episode is then dropped, never duplicated."""
        try:
            cameras = sorted(self._streams)
            offsets = {f"offsets.{key}": index for key, index in self._close_streams().items()}
            frames = len(self._states)
            np.savez_compressed(self.tmp / "data.npz", state=np.stack(self._states),
                                action=np.stack(self._actions).astype(np.float32),
                                timestamp=np.arange(frames, dtype=np.float32) / self.fps, **offsets)
            meta = {"episode_id": self.episode_id, "seed": seed, "length": frames, "task": task,
                    "scene": scene.to_dict(), "metrics": metrics.to_dict(), "policy": policy,
                    "cameras": cameras}
            (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            if self.final.exists():
                return False
            os.rename(self.tmp, self.final)
        except FileExistsError:  # another attempt finished the same episode first
            return False
        except OSError as error:
            if self.final.exists():  # same race, reported as "directory not empty"
                return False
            raise error
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return True

    def abort(self) -> None:
        """Drop the unfinished episode (the run was stopped); resume records it again."""
        self._close_streams()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _close_streams(self) -> dict[str, np.ndarray]:
        """Close every camera's stream; their frame indices by camera key."""
        offsets = {key: stream.close() for key, stream in self._streams.items()}
        self._streams.clear()
        return offsets
