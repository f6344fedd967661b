"""Checks of curate's inputs before any work: finished, intact rollout runs and a compatible base dataset.

A ``--runs`` input is an episode store run, or a ``lerobot-eval --eval.recording`` dataset of the engine's scene
(a LeRobot dataset with ``next.success``), which is converted once into a run under
``<workspace>/cache/recordings`` (``so101_dataengine.formats.recording``) and curated like any other.

Each problem is one ``DataEngineError`` line naming the input and the fix; nothing is read beyond what the check
needs and nothing is ever written to an input.
"""

from __future__ import annotations

from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.workspace import Workspace
from so101_dataengine.formats.features import so101_features
from so101_dataengine.formats.recording import converted_run, is_recording
from so101_dataengine.formats.store import MANIFEST, EpisodeStore

RUN_SUMMARY = "summary.json"
"""Written by ``dataengine rollout`` when a run ends; its absence means the run is in progress or was killed."""


RECORDINGS_CACHE = ("cache", "recordings")
"""Where converted recordings are kept, under the workspace (``DATAENGINE_WORKSPACE``, default ``outputs``)."""


def open_finished_run(path: Path) -> EpisodeStore:
    """The run's store, if it finished and every episode directory is complete; a recording's converted run."""
    if not Path(path).is_dir():
        raise DataEngineError(f"rollout run {path} does not exist")
    if is_recording(path):
        store = converted_run(path, Workspace.default().root.joinpath(*RECORDINGS_CACHE))
    else:
        store = EpisodeStore.open(path)
    n = store.manifest.get("n")
    if not isinstance(n, int) or isinstance(n, bool):
        raise DataEngineError(f"{store.root / MANIFEST} is damaged (its n is {n!r}, not a count of episodes): "
                              "this run cannot be curated; roll it out again into a new --out")
    done = store.completed_ids()
    if done != list(range(n)) or store.partials() or not (store.root / RUN_SUMMARY).is_file():
        raise DataEngineError(
            f"rollout run {path} is still in progress or was interrupted ({len(done)} of {n} episodes stored): "
            f"finish it with 'dataengine rollout --resume --out {path} ...' first"
        )
    for episode_id in done:
        store.check(episode_id)  # a cut or corrupt file is named here, on the driver, before any work
    return store


def run_fps(store: EpisodeStore) -> int:
    return int(store.manifest["scene"]["fps"])


def rollout_features(stores: list[EpisodeStore], image_size: int) -> dict[str, dict]:
    """The SO-101 feature schema with the runs' cameras; every run must have recorded the same cameras."""
    cameras = {tuple(store.read_meta(store.completed_ids()[0])["cameras"]) for store in stores if store.completed_ids()}
    if len(cameras) > 1:
        raise DataEngineError(f"the runs recorded different cameras ({sorted(cameras)}): curate runs of one setup together")
    features = so101_features(image_size)
    recorded = set(next(iter(cameras))) if cameras else set()
    return {k: f for k, f in features.items() if f["dtype"] != "video" or k in recorded}


def check_base_compatible(base_info: dict, features: dict, fps: int, base: Path) -> None:
    """The base must have the rollouts' fps and exactly their features (names, dtypes, shapes)."""
    if base_info.get("codebase_version") != "v3.0":
        raise DataEngineError(f"base {base} is a LeRobot {base_info.get('codebase_version')} dataset: only v3.0 is supported")
    if base_info["fps"] != fps:
        raise DataEngineError(f"base {base} has fps {base_info['fps']} but the rollouts have {fps}: merge datasets of one fps")
    ours = {k: (f["dtype"], list(f["shape"]), f.get("names")) for k, f in features.items()}
    theirs = {k: (f["dtype"], list(f["shape"]), f.get("names")) for k, f in base_info["features"].items()
              if k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
    if ours != theirs:
        differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise DataEngineError(
            f"base {base} has other features than the rollouts ({', '.join(differing)}): "
            "use a base recorded with the same cameras and image size (or pass --image-size to match it)"
        )


def base_image_size(base_info: dict) -> int | None:
    sizes = {f["shape"][0] for f in base_info["features"].values() if f["dtype"] == "video"}
    return sizes.pop() if len(sizes) == 1 else None
