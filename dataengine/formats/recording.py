"""A ``lerobot-eval --eval.recording`` dataset of the engine's scene, converted into an episode store run.

lerobot-eval 0.6 records each sub-env's episodes as a LeRobot v3 dataset (``so101_dataengine.lerobot_compat.
env_plugin`` says where and how): per frame the observation (``agent_pos``, the cameras, ``scene``), the action
and ``next.success``. Converting it into the first format lets everything that reads rollout runs (the
classifier, curation's signals and filters, the review page) read it unchanged.

Nothing is taken on trust. Each episode's scene (seed and look) is decoded from its ``scene`` column and the
recorded actions are replayed in ``PickPlaceEnv`` (physics is deterministic): the replayed states must be the
recorded ones and the replayed SUCCESS must be the recording's ``next.success``, or the recording is not of this
scene and conversion stops with one error line. The replay gives what a recording lacks and a stored episode
has: the initial scene and the simulator's full outcome (the failure taxonomy, pick, heights). The camera frames
are the recording's (decoded from its videos), re-encoded as the store's JPEG frames.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_parquet, write_atomic
from so101_dataengine.formats.store import MANIFEST, EpisodeStore
from so101_dataengine.formats.v3_dataset import DAMAGED, read_episodes, read_info, video_keys
from so101_dataengine.lerobot_compat.env_plugin import (
    RECORDING_COLUMNS,
    SCENE,
    SCENE_SHAPE,
    STATE,
    SUCCESS,
    decode_scene,
    recorded_image_key,
)
from so101_dataengine.lerobot_compat.frame_cache import fingerprint
from so101_dataengine.lerobot_compat.video import iter_frames
from so101_dataengine.scenes.pick_place import TASK, PickPlaceConfig, PickPlaceEnv
from so101_dataengine.scenes.randomization import SceneRandomization
from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key
from so101_dataengine.scenes.so101 import JOINT_NAMES

RECORDING_KIND = "lerobot-eval recording"
"""The policy identity of converted episodes: lerobot-eval does not record which policy acted."""
STATE_TOLERANCE = 1e-4
"""Largest difference (LeRobot units) between a recorded and a replayed state: replay is exact, this is slack."""
SUMMARY = "summary.json"


def is_recording(root: Path) -> bool:
    """A LeRobot dataset with a ``next.success`` column: what lerobot-eval's recording writes."""
    return (Path(root) / "meta" / "info.json").is_file() and SUCCESS in read_info(root)["features"]


def _check_features(root: Path, info: dict) -> int:
    """The recording has the engine scene's columns (shapes included); returns its image size."""
    features = info["features"]
    cameras = [recorded_image_key(camera) for camera in CAMERA_NAMES]
    shapes = {STATE: [len(JOINT_NAMES)], "action": [len(JOINT_NAMES)], SCENE: list(SCENE_SHAPE)}
    wrong = [key for key in (*RECORDING_COLUMNS, *cameras) if key not in features
             or (key in shapes and list(features[key]["shape"]) != shapes[key])
             or (key in cameras and key not in video_keys(info))]
    if wrong:
        raise DataEngineError(f"{root} is a recording, but not of the engine's scene (no {', '.join(wrong)} of the "
                              "expected shape): record it with lerobot-eval --env.type=so101_dataengine")
    sizes = {tuple(features[key]["shape"]) for key in cameras}
    if len(sizes) != 1:
        raise DataEngineError(f"the cameras of recording {root} have different shapes {sorted(sizes)}: {DAMAGED}")
    return sizes.pop()[0]


def _frames(root: Path) -> dict[str, np.ndarray]:
    """The recording's columns the conversion reads, as arrays in dataset order (row = ``index``)."""
    columns = ["index", "episode_index", *RECORDING_COLUMNS]
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise DataEngineError(f"recording {root} has no data/*/*.parquet: {DAMAGED}")
    table = pa.concat_tables([read_parquet(path, DAMAGED, columns) for path in files])
    order = np.argsort(table["index"].to_numpy())
    return {name: np.asarray(table[name].to_pylist())[order] for name in columns}


def _episode_images(root: Path, info: dict, episode: dict) -> dict[str, list[np.ndarray]]:
    """Every camera frame of one episode, decoded in one pass from its video file."""
    images = {}
    for camera in CAMERA_NAMES:
        key = recorded_image_key(camera)
        video = root / info["video_path"].format(video_key=key, chunk_index=episode[f"videos/{key}/chunk_index"],
                                                 file_index=episode[f"videos/{key}/file_index"])
        start, length, fps = float(episode[f"videos/{key}/from_timestamp"]), int(episode["length"]), info["fps"]
        first = round(start * fps)
        frames = []
        for image, seconds in iter_frames(video, start=start):
            tick = round(seconds * fps) - first
            if tick >= length:
                break
            if tick >= 0:
                frames.append(image)
        if len(frames) != length:
            raise DataEngineError(f"{video} holds {len(frames)} of the {length} frames of episode "
                                  f"{episode['episode_index']} of recording {root}: {DAMAGED}")
        images[image_feature_key(camera)] = frames
    return images


def convert_recording(root: Path, out: Path) -> EpisodeStore:
    """Write recording ``root`` as a finished episode store run at ``out`` (episode k: the recording's episode k),
    replaying every episode to check it and to measure its outcome; returns the store."""
    root = Path(root)
    info = read_info(root)
    image_size = _check_features(root, info)
    episodes = read_episodes(root, stats=False)
    frames = _frames(root)
    manifest = {"run_id": uuid.uuid4().hex, "n": len(episodes), "seed": None,
                "policy": {"kind": RECORDING_KIND, "path": str(root.resolve()), "sha256": None},
                "scene": {"fps": info["fps"], "image_size": image_size},
                "source": {"recording": str(root.resolve()), "format": "lerobot-eval --eval.recording"}}
    store = EpisodeStore.create(out, manifest)
    successes = 0
    for k, episode in enumerate(episodes):
        rows = frames["episode_index"] == episode["episode_index"]
        states, actions = frames[STATE][rows].astype(np.float32), frames["action"][rows].astype(np.float32)
        seed, visual = decode_scene(frames[SCENE][rows][0])
        recorded_success = bool(np.any(frames[SUCCESS][rows]))
        env = PickPlaceEnv(PickPlaceConfig(image_size=image_size, render=False, max_episode_steps=len(actions),
                                           randomization=SceneRandomization(visual=visual)))
        _replay(env, seed, states, actions, f"episode {episode['episode_index']} of recording {root}")
        metrics = env.metrics()
        if (metrics.outcome.value == "SUCCESS") != recorded_success:
            raise DataEngineError(f"episode {episode['episode_index']} of recording {root} says success="
                                  f"{recorded_success}, its replay in the engine's scene {metrics.outcome.value}: it "
                                  "was not recorded on this engine's scene")
        successes += recorded_success
        writer = store.begin(k, info["fps"])
        images = _episode_images(root, info, episode)
        for t in range(len(actions)):
            writer.add(states[t], actions[t], {key: frames_[t] for key, frames_ in images.items()})
        writer.commit(seed, env.scene, metrics, manifest["policy"], TASK)
    write_atomic(Path(out) / SUMMARY, json.dumps({"episodes": len(episodes), "successes": successes,
                                                  "source": manifest["source"]}, indent=2))
    return store


def _replay(env: PickPlaceEnv, seed: int, states: np.ndarray, actions: np.ndarray, what: str) -> None:
    """Step ``env`` from scene ``seed`` through ``actions``; each state before an action must be the recorded one."""
    observation = env.reset(seed)
    for t, action in enumerate(actions):
        gap = float(np.max(np.abs(observation.state - states[t])))
        if gap > STATE_TOLERANCE:
            raise DataEngineError(f"{what} does not replay in the engine's scene {seed} (its state differs by "
                                  f"{gap:.3g} at frame {t}): it was not recorded on this engine's scene")
        observation = env.step(action)


def converted_run(root: Path, cache: Path) -> EpisodeStore:
    """Recording ``root`` as an episode store run under ``cache``, converted once per content (the directory is
    named by the recording's fingerprint, written under a hidden name and renamed into place)."""
    target = Path(cache) / fingerprint(Path(root).resolve())
    if (target / SUMMARY).is_file() and (target / MANIFEST).is_file():
        return EpisodeStore.open(target)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        convert_recording(root, partial)
        shutil.rmtree(target, ignore_errors=True)  # a conversion killed before its summary was written
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return EpisodeStore.open(target)
