"""Checks a dataset must pass before it is published: each one is a failure the users shipped once.

* every shard the metadata refers to is present (a mirror missing ``file 00001-of-01024`` failed only deep inside
  training), and the frame and episode counts agree with the files;
* ``meta/stats.json`` has complete stats for every feature, images included, and image stds that are not the
  ~100x-too-small values of lerobot's sampled image stats (pixels normalised with std 0.002 trained on garbage);
* features and fps agree between ``info.json``, the videos and the data, and with the repo's previous version;
* lerobot's own loader opens the dataset and decodes its first and last frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.errors import DataEngineError

STAT_NAMES = ("mean", "std", "min", "max", "count")
MIN_IMAGE_STD = 0.005
"""Image stds (pixels in [0, 1]) below this are lerobot's sampled-stats bug, not a real camera image."""
_NO_STATS = ("string",)


def _fail(root: Path, problem: str, fix: str) -> None:
    raise DataEngineError(f"cannot publish {root}: {problem}; {fix}")


def read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not path.is_file():
        _fail(root, "meta/info.json is missing (not a LeRobot v3 dataset)", "pass a dataset made by demos or curate")
    return json.loads(path.read_text())


def _episodes(root: Path) -> list[dict]:
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        _fail(root, "meta/episodes/ has no parquet files", "the dataset was never finalized; write it again")
    return pa.concat_tables([pq.read_table(f, columns=[c for c in pq.read_schema(f).names if not c.startswith("stats/")])
                             for f in files]).to_pylist()


def check_shards(root: Path, info: dict) -> list[dict]:
    """Every data and video file any episode points at exists, and the counts agree with the files."""
    episodes = _episodes(root)
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    needed: set[str] = set()
    for ep in episodes:
        needed.add(info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]))
        for key in video_keys:
            needed.add(info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                                 file_index=ep[f"videos/{key}/file_index"]))
    missing = sorted(p for p in needed if not (root / p).is_file())
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        _fail(root, f"{len(missing)} shard(s) missing: {', '.join(missing[:3])}{more}",
              "copy the complete dataset (a partial mirror cannot be published)")
    if len(episodes) != info["total_episodes"]:
        _fail(root, f"info.json says {info['total_episodes']} episodes, meta/episodes has {len(episodes)}",
              "rewrite the metadata")
    rows = sum(pq.read_metadata(root / p).num_rows for p in needed if p.endswith(".parquet"))
    if rows != info["total_frames"] or rows != sum(ep["length"] for ep in episodes):
        _fail(root, f"info.json says {info['total_frames']} frames, the data files hold {rows}", "rewrite the metadata")
    return episodes


def check_stats(root: Path, info: dict) -> None:
    path = root / "meta" / "stats.json"
    if not path.is_file():
        _fail(root, "meta/stats.json is missing", "run 'dataengine stats DATASET' to compute exact stats")
    stats = json.loads(path.read_text())
    for key, feature in info["features"].items():
        if feature["dtype"] in _NO_STATS:
            continue
        absent = [s for s in STAT_NAMES if s not in stats.get(key, {})]
        if absent:
            _fail(root, f"stats of {key!r} lack {', '.join(absent)}",
                  "run 'dataengine stats DATASET' to compute exact stats")
        if feature["dtype"] in ("video", "image"):
            stds = [float(v) for v in _flatten(stats[key]["std"])]
            if len(stds) != 3 or min(stds) < MIN_IMAGE_STD:
                _fail(root, f"image stats of {key!r} have std {stds} (lerobot's sampled image stats are ~100x too small)",
                      "run 'dataengine stats DATASET' to compute exact stats")


def _flatten(value) -> list:
    return [x for v in value for x in _flatten(v)] if isinstance(value, list) else [value]


def check_features(root: Path, info: dict, previous_info: dict | None) -> None:
    fps = info["fps"]
    for key, feature in info["features"].items():
        video_fps = feature.get("info", {}).get("video.fps")
        if feature["dtype"] == "video" and video_fps is not None and video_fps != fps:
            _fail(root, f"video {key!r} is at {video_fps} fps, the dataset at {fps}", "re-encode the videos")
    data_file = next(iter(sorted((root / "data").glob("chunk-*/file-*.parquet"))), None)
    columns = set(pq.read_schema(data_file).names) if data_file else set()
    expected = {k for k, f in info["features"].items() if f["dtype"] not in ("video",)}
    if expected - columns:
        _fail(root, f"features {sorted(expected - columns)} are in info.json but not in the data files",
              "rewrite the dataset")
    if previous_info is not None:
        schema = {k: (f["dtype"], list(f["shape"])) for k, f in info["features"].items()}
        before = {k: (f["dtype"], list(f["shape"])) for k, f in previous_info["features"].items()}
        if schema != before or fps != previous_info["fps"]:
            changed = sorted(k for k in schema.keys() | before.keys() if schema.get(k) != before.get(k))
            what = f"features {changed}" if changed else f"fps {previous_info['fps']} -> {fps}"
            _fail(root, f"{what} differ from the previous version", "publish under a new --repo-id (a policy "
                  "trained on one cannot read the other)")


def check_loads_with_lerobot(root: Path, repo_id: str) -> None:
    """lerobot's own ``LeRobotDataset`` opens it and decodes the first and the last frame."""
    from dataengine.lerobot_compat import install_video_fallback
    from dataengine.video import video_backend

    install_video_fallback()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        dataset = LeRobotDataset(repo_id, root=root, video_backend=video_backend())
        dataset[0], dataset[len(dataset) - 1]
    except Exception as error:  # lerobot raises many types; any of them means users cannot load it
        _fail(root, f"lerobot cannot load it ({type(error).__name__}: {str(error).splitlines()[0][:200]})",
              "fix the dataset (it was written or copied incompletely)")


def verify_dataset(root: Path, repo_id: str, previous_info: dict | None = None) -> dict:
    """Run every check; returns ``info.json``. Raises ``DataEngineError`` naming the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataEngineError(f"dataset {root} does not exist: pass the directory of a LeRobot v3 dataset")
    info = read_info(root)
    check_shards(root, info)
    check_stats(root, info)
    check_features(root, info, previous_info)
    check_loads_with_lerobot(root, repo_id)
    return info
