"""What a version *is*: the sha256 of every file, a content id over them, and the identity of every episode.

The manifest is written into the version as ``meta/version.json`` (so a copy on the Hub carries it too and any
mirror can be checked file by file); the dataset card (``README.md``) and the manifest itself are not part of the
content, so publishing the same data twice gives the same content id.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json_object, read_parquet
from so101_dataengine.base.preflight import relative_path_problem
from so101_dataengine.formats.v3_dataset import DAMAGED, read_provenance

MANIFEST = "meta/version.json"
CARD = "README.md"
NOT_CONTENT = {MANIFEST, CARD}
"""Files written by the publisher: derived from the content, never part of it."""
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(root: Path) -> list[str]:
    """Relative paths of the dataset's content files (hidden files such as lerobot's ``.cache`` are not data).

    A symbolic link among them is refused: a version holds files, and a link either points outside the dataset
    (its target, ``/etc/passwd`` say, would be copied into the version and uploaded) or is a directory that
    ``rglob`` does not enter (its files would be silently left out of the version)."""
    paths = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.is_symlink():
            raise DataEngineError(f"cannot publish {root}: {relative} is a symbolic link (to {os.readlink(path)}): "
                                  "copy the real files into the dataset in its place")
        if path.is_file() and relative not in NOT_CONTENT:
            paths.append(relative)
    return paths


def hash_files(root: Path) -> dict[str, dict]:
    return {rel: {"sha256": sha256_file(root / rel), "size": (root / rel).stat().st_size} for rel in dataset_files(root)}


def content_id(files: dict[str, dict]) -> str:
    """sha256 over the sorted (path, file hash) pairs: equal content, equal id, wherever it was published from."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\t{files[path]['sha256']}\n".encode())
    return digest.hexdigest()


def episode_identities(root: Path) -> list[dict]:
    """One entry per episode: its index, length and identity.

    The identity is its provenance, ``run:<run id>/<episode id>``, when ``meta/dataengine.json`` records where the
    episode came from (curated datasets do); otherwise ``sha256:<hash>`` of its states and actions. Either way the
    same episode has the same identity in every version, whatever its index there, which is what ``diff`` compares.
    """
    provenance = read_provenance(root)
    by_index = {e.get("episode_index", i): e for i, e in enumerate(provenance)}
    rows: dict[int, list] = {}
    for data_file in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        table = read_parquet(data_file, DAMAGED, ["episode_index", "observation.state", "action"])
        episode = table.column("episode_index").to_numpy()
        state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
        action = np.asarray(table.column("action").to_pylist(), dtype=np.float32)
        for index in np.unique(episode):
            mask = episode == index
            rows.setdefault(int(index), []).append((state[mask], action[mask]))
    episodes = []
    for index in sorted(rows):
        state = np.concatenate([s for s, _ in rows[index]])
        action = np.concatenate([a for _, a in rows[index]])
        source = by_index.get(index, {})
        run = source.get("source_run") or source.get("run_id")
        if run is not None and source.get("episode_id") is not None:
            identity = f"run:{run}/{source['episode_id']}"
        else:
            identity = "sha256:" + hashlib.sha256(state.tobytes() + action.tobytes()).hexdigest()[:16]
        entry = {"index": index, "id": identity, "length": int(len(state))}
        if "metrics" in source and "outcome" in source["metrics"]:
            entry["outcome"] = source["metrics"]["outcome"]
        episodes.append(entry)
    return episodes


@dataclass
class VersionManifest:
    """``meta/version.json`` of one published version."""

    repo_id: str
    tag: str
    sequence: int
    content_id: str
    created: str
    parent: str | None
    message: str
    total_episodes: int
    total_frames: int
    episodes: list[dict] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1)

    @classmethod
    def read(cls, root: Path) -> "VersionManifest":
        """The manifest of the version at ``root``; a damaged one is one error line (the registry is then damaged:
        versions are never rewritten, so the fix is a backup, and ``dataengine verify`` tells what else is)."""
        path = Path(root) / MANIFEST
        fix = f"restore {Path(root)} from a backup of the registry, then run 'dataengine verify' on its repo"
        raw = read_json_object(path, fix, tuple(f.name for f in fields(cls) if f.default is MISSING
                                                and f.default_factory is MISSING))
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise DataEngineError(f"{path} is damaged (unknown keys {', '.join(unknown)}): {fix}")
        files = raw.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(e, dict) and {"sha256", "size"} <= set(e)
                                                  for e in files.values()):
            raise DataEngineError(f"{path} is damaged (its files are not a table of sha256 and size): {fix}")
        escaping = next((p for p in files if relative_path_problem(p)), None)
        if escaping is not None:  # a manifest path never reaches outside its version, whoever wrote it
            raise DataEngineError(f"{path} is damaged (file path {escaping!r} {relative_path_problem(escaping)}): "
                                  f"{fix}")
        return cls(**raw)
