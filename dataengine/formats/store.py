"""The episode store: what ``dataengine rollout`` writes and the classifier and curation read.

```
RUN/manifest.json                      run id, full config, policy identity, n, seeds (written once, atomically)
RUN/episodes/e000042/meta.json         episode id, seed, initial scene, outcome + metrics, policy identity
RUN/episodes/e000042/data.npz          state (T, 6), action (T, 6), timestamp (T,), offsets.<camera key> (T + 1,),
                                       crc32.<camera key> (T,): each frame's CRC-32 (absent in runs recorded before)
RUN/episodes/e000042/<camera key>.mjpeg  one Motion-JPEG stream per camera (``so101_dataengine.formats.frames``: cheap to record)
RUN/episodes/e000042/classifier.json   optional: the success classifier's score (``rollout --classifier``)
RUN/.lock                              held (flock) by the rollout writing the run: one at a time
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

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json, read_json_object, read_npz, write_atomic
from so101_dataengine.formats.frames import (
    JPEG_QUALITY,
    JpegStreamWriter,
    StreamIndex,
    check_stream_size,
    read_jpeg_stream,
)
from so101_dataengine.formats.verdict import Verdict
from so101_dataengine.scenes.outcome import EpisodeMetrics
from so101_dataengine.scenes.randomization import SceneSample

MANIFEST = "manifest.json"
LOCK = ".lock"
EPISODES = "episodes"
_TMP_PREFIX = ".tmp-"
SCORE = "classifier.json"
_META_KEYS = ("cameras", "length", "metrics")
"""What every reader of an episode's meta.json relies on: a meta.json without them is damaged."""


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
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DataEngineError(f"{root} already exists and is not empty: pass --resume to continue it, or a new --out")
        try:
            (root / EPISODES).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataEngineError(f"cannot create {root} ({error.strerror}): choose an --out in a writable "
                                  "directory") from None
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
        return read_json_object(self.root / MANIFEST, "this run cannot be resumed; roll it out again into a new --out")

    # -- episodes ------------------------------------------------------------------------------------------
    def completed_ids(self) -> list[int]:
        if not self.episodes_dir.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in self.episodes_dir.iterdir()
                      if p.name.startswith("e") and p.name[1:].isdigit() and p.is_dir())

    def remove_partials(self) -> int:
        """Delete temporary episode directories left by killed workers; returns how many. (A run whose episodes
        directory was deleted gets an empty one: it resumes from no episodes.)"""
        self.episodes_dir.mkdir(exist_ok=True)
        leftovers = self.partials()
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)

    def partials(self) -> list[Path]:
        """Episode directories being written, or left by a killed worker (hidden, never counted as stored)."""
        return [p for p in self.episodes_dir.iterdir() if p.name.startswith(_TMP_PREFIX)] \
            if self.episodes_dir.is_dir() else []

    def begin(self, episode_id: int, fps: int, jpeg_quality: int = JPEG_QUALITY) -> "EpisodeWriter":
        """Start recording one episode into a hidden directory (see ``EpisodeWriter``)."""
        tmp = self.episodes_dir / f"{_TMP_PREFIX}{episode_dirname(episode_id)}-{uuid.uuid4().hex}"
        tmp.mkdir()
        return EpisodeWriter(tmp, self.episodes_dir / episode_dirname(episode_id), episode_id, fps, jpeg_quality)

    def read_meta(self, episode_id: int) -> dict:
        return read_json_object(self.episodes_dir / episode_dirname(episode_id) / "meta.json",
                                self.damaged_fix(episode_id), _META_KEYS)

    def write_verdict(self, episode_id: int, verdict: Verdict) -> None:
        """Record the success classifier's verdict on a stored episode (``classifier.json``, written atomically;
        a later verdict by another classifier replaces it)."""
        write_atomic(self.episodes_dir / episode_dirname(episode_id) / SCORE, verdict.to_json())

    def read_verdict(self, episode_id: int) -> Verdict | None:
        """The classifier's verdict recorded by ``write_verdict``, or None."""
        path = self.episodes_dir / episode_dirname(episode_id) / SCORE
        fix = "delete it and score the run again (dataengine rollout --resume --classifier ...)"
        return Verdict.from_record(read_json(path, fix), path, fix) if path.is_file() else None

    def check(self, episode_id: int) -> None:
        """The stored episode is intact as far as can be told without decoding a frame: its files are there,
        meta.json and data.npz read and agree, and every camera stream has the size its frame index says (one error
        line otherwise). Cheap (no JPEG decoded), so curate checks every episode before any work."""
        fix = self.damaged_fix(episode_id)
        path = self.episodes_dir / episode_dirname(episode_id)
        cameras = self.read_meta(episode_id)["cameras"]
        missing = [name for name in ("data.npz", *(f"{key}.mjpeg" for key in cameras)) if not (path / name).is_file()]
        if missing:
            raise DataEngineError(f"rollout run {self.root} is corrupt: {path.name} lacks {', '.join(missing)}: {fix}")
        _, data = self._index(episode_id)
        for key in cameras:
            check_stream_size(path / f"{key}.mjpeg", (path / f"{key}.mjpeg").stat().st_size, data[f"offsets.{key}"],
                              fix)

    def read(self, episode_id: int, frames: slice | np.ndarray | None = None) -> StoredEpisode:
        """One episode; ``frames`` (a slice or indices) selects frames, e.g. ``slice(-8, None)`` for the last 8,
        and only those are decoded."""
        path = self.episodes_dir / episode_dirname(episode_id)
        meta, data = self._index(episode_id)
        selected = slice(None) if frames is None else frames
        arrays = (data["state"][selected], data["action"][selected], data["timestamp"][selected])
        images = {key: read_jpeg_stream(path / f"{key}.mjpeg", self.stream_index(data, key), frames,
                                        self.damaged_fix(episode_id)) for key in meta["cameras"]}
        return StoredEpisode(meta, *arrays, images)

    def frame_offsets(self, episode_id: int) -> dict[str, list[int]]:
        """Per camera, the byte offset of each frame in its stream (frame k is bytes ``[o[k], o[k + 1])``): what a
        player needs to seek in an episode without decoding it (the review page's episode view)."""
        meta, data = self._index(episode_id)
        return {key: data[f"offsets.{key}"].tolist() for key in meta["cameras"]}

    @staticmethod
    def stream_index(data: dict[str, np.ndarray], camera: str) -> StreamIndex:
        """A camera stream's frame index from an episode's arrays (``_index``), with its checksums where the run
        has them."""
        return StreamIndex(data[f"offsets.{camera}"], data.get(f"crc32.{camera}"))

    def _index(self, episode_id: int) -> tuple[dict, dict[str, np.ndarray]]:
        """meta.json and every array of data.npz, checked to agree on the episode's length."""
        path = self.episodes_dir / episode_dirname(episode_id)
        fix = self.damaged_fix(episode_id)
        meta = read_json_object(path / "meta.json", fix, _META_KEYS)
        offsets = [f"offsets.{key}" for key in meta["cameras"]]
        data = read_npz(path / "data.npz", ["state", "action", "timestamp", *offsets], fix,
                        optional=[f"crc32.{key}" for key in meta["cameras"]])
        lengths = {len(data["state"]), len(data["action"]), len(data["timestamp"]), meta["length"],
                   *(len(data[k]) - 1 for k in offsets)}
        if len(lengths) != 1:
            raise DataEngineError(f"{path / 'data.npz'} is damaged (its arrays and meta.json disagree on the "
                                  f"episode's length: {sorted(lengths)}): {fix}")
        return meta, data

    def damaged_fix(self, episode_id: int) -> str:
        """What to do about a damaged file of a stored episode: record that episode again (resume re-runs exactly
        the missing ids with the same seeds, so the run ends as if nothing had happened)."""
        return (f"delete {self.episodes_dir / episode_dirname(episode_id)} and record it again with "
                f"'dataengine rollout --resume --out {self.root} ...' (the run's settings)")


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
            indices = self._close_streams()
            offsets = {f"offsets.{key}": index.offsets for key, index in indices.items()}
            checksums = {f"crc32.{key}": index.crc32 for key, index in indices.items()}
            frames = len(self._states)
            np.savez_compressed(self.tmp / "data.npz", state=np.stack(self._states),
                                action=np.stack(self._actions).astype(np.float32),
                                timestamp=np.arange(frames, dtype=np.float32) / self.fps, **offsets, **checksums)
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

    def _close_streams(self) -> dict[str, StreamIndex]:
        """Close every camera's stream; their frame indices by camera key."""
        offsets = {key: stream.close() for key, stream in self._streams.items()}
        self._streams.clear()
        return offsets
