"""Checks a dataset must pass before it is published: each one is a failure the users shipped once.

* every shard the metadata refers to is present (a mirror missing ``file 00001-of-01024`` failed only deep inside
  training), and the frame and episode counts agree with the files;
* ``meta/stats.json`` has complete stats for every feature, images included, and image stds that are not the
  ~100x-too-small values of lerobot's sampled image stats (pixels normalised with std 0.002 trained on garbage);
* the image stats (mean, std, min, max per channel, in ``meta/stats.json`` and each episode's in meta/episodes)
  are exactly those of the decoded frames, accumulated in the same single decode that checks the videos: lerobot's
  own writer samples frames (0.6) and estimates from the frames before encoding, and a dataset merged with a
  lerobot-written one ends ~4 % off; a policy is normalised with these numbers;
* features and fps agree between ``info.json``, the videos and the data, and with the repo's previous version;
* every video decodes completely, frame by frame, and holds exactly the frames its episodes say (a ``.mp4`` cut in
  half published once: its first and last frames decoded, lerobot then failed on three episodes of that version);
* what lerobot's own dataset tools (delete / split / merge episodes) leave behind is caught: a
  ``meta/dataengine.json`` whose episodes are no longer the dataset's (the tools keep neither it nor our
  ``dataengine/*`` columns), videos re-encoded to another codec than ``info.json`` names, and per-episode image
  stats of a lerobot-written dataset merged in (its ~100x-too-small stds leave the merged stats ~4 % off);
* lerobot's own loader opens the dataset and decodes its first and last frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import parquet_rows, parquet_schema
from so101_dataengine.formats import v3_dataset
from so101_dataengine.formats.dataset_stats import EpisodeImageStats
from so101_dataengine.formats.stats import ImageStats, merge_all
from so101_dataengine.formats.v3_dataset import DAMAGED, stats_fix
from so101_dataengine.formats.validate import check_loads

STAT_NAMES = ("mean", "std", "min", "max", "count")
EXACT_IMAGE_STATS = ("mean", "std", "min", "max")
"""The image stats compared with the decoded frames' (lerobot's policies normalise images by mean and std, by min
and max, or not at all; never by the quantiles)."""
STATS_TOLERANCE = 1e-6
"""Relative difference allowed between written and recomputed image stats: float rounding only (both are float64;
exact stats combined in another order, as lerobot's merge aggregates episodes, differ in the last digits only).
The smallest real inexactness seen is 10^-3: the old stats of videos lerobot's delete_episodes re-encoded."""
MIN_IMAGE_STD = 0.005
"""Image stds (pixels in [0, 1]) below this are lerobot's sampled-stats bug, not a real camera image."""

STATS_FIX = stats_fix("DATASET")
"""The fix for stats of a dataset whose path is not at hand (a published version's card)."""
_NO_STATS = ("string",)


def _fail(root: Path, problem: str, fix: str) -> None:
    raise DataEngineError(f"cannot publish {root}: {problem}; {fix}")


def _info(root: Path) -> dict:
    """``meta/info.json``, its absence worded for publishing."""
    if not v3_dataset.is_v3_dataset(root):
        _fail(root, "meta/info.json is missing (not a LeRobot v3 dataset)", "pass a dataset made by demos or curate")
    return v3_dataset.read_info(root)


def _episodes(root: Path) -> list[dict]:
    if not sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        _fail(root, "meta/episodes/ has no parquet files", "the dataset was never finalized; write it again")
    return v3_dataset.read_episodes(root, stats=False)


def check_shards(root: Path, info: dict) -> list[dict]:
    """Every data and video file any episode points at exists, and the counts agree with the files."""
    episodes = _episodes(root)
    needed = v3_dataset.shard_paths(info, episodes)
    missing = v3_dataset.missing_shards(root, info, episodes)
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        _fail(root, f"{len(missing)} shard(s) missing: {', '.join(missing[:3])}{more}",
              "copy the complete dataset (a partial mirror cannot be published)")
    if len(episodes) != info["total_episodes"]:
        _fail(root, f"info.json says {info['total_episodes']} episodes, meta/episodes has {len(episodes)}",
              "rewrite the metadata")
    rows = sum(parquet_rows(root / p, DAMAGED) for p in needed if p.endswith(".parquet"))
    if rows != info["total_frames"] or rows != sum(ep["length"] for ep in episodes):
        _fail(root, f"info.json says {info['total_frames']} frames, the data files hold {rows}", "rewrite the metadata")
    return episodes


def check_stats(root: Path, info: dict) -> dict:
    """``meta/stats.json`` is there and complete, its image stds not lerobot 0.4.4's; returns it."""
    stats = v3_dataset.read_stats(root)
    for key, feature in info["features"].items():
        if feature["dtype"] in _NO_STATS:
            continue
        absent = [s for s in STAT_NAMES if s not in stats.get(key, {})]
        if absent:
            _fail(root, f"stats of {key!r} lack {', '.join(absent)}", stats_fix(root))
        if feature["dtype"] in ("video", "image"):
            stds = [float(v) for v in _flatten(stats[key]["std"])]
            if len(stds) != 3 or min(stds) < MIN_IMAGE_STD:
                _fail(root, f"image stats of {key!r} have std {stds} (lerobot's sampled image stats are ~100x too small)",
                      stats_fix(root))
    return stats


def check_episode_stats(root: Path, info: dict) -> list[dict]:
    """Every episode's own image stats (``stats/KEY/std`` in meta/episodes) are real: lerobot merges datasets by
    aggregating these, so one merged-in episode with lerobot 0.4.4's sampled stats makes the dataset's stats
    inexact even where stats.json looks plausible. Returns meta/episodes' rows, stats included (found here before
    any video is decoded; :func:`check_image_stats` then compares them with the frames)."""
    keys = [k for k, f in info["features"].items() if f["dtype"] in ("video", "image")]
    rows = v3_dataset.read_episodes(root)
    for row in rows:
        for key in keys:
            std = row.get(f"stats/{key}/std")
            stds = [float(v) for v in _flatten(std)] if std is not None else []
            if std is None or len(stds) != 3 or min(stds) < MIN_IMAGE_STD:
                _fail(root, f"episode {row['episode_index']}'s own image stats of {key!r} are "
                      f"{'missing' if std is None else f'std {stds}'} (lerobot's sampled stats, e.g. of a "
                      "lerobot-written dataset merged in; the dataset's stats are then inexact)", stats_fix(root))
    return rows


def check_provenance(root: Path, info: dict, episodes: list[dict]) -> None:
    """``meta/dataengine.json`` and the ``dataengine/*`` columns, where present, describe exactly these episodes:
    lerobot's dataset tools rewrite meta/episodes without them, so a copied or left-over one is stale."""
    if not (root / "meta" / v3_dataset.ENGINE_META).is_file():
        return  # not ours, or our columns alone (they travel with their rows): nothing can be stale
    provenance = v3_dataset.read_provenance(root)
    fix = ("delete meta/dataengine.json to publish without provenance (the card then says so), or make the "
           "dataset with 'dataengine curate' (--base for demos), which records it")
    indices = sorted(e.get("episode_index", i) for i, e in enumerate(provenance))
    if indices != list(range(info["total_episodes"])):
        _fail(root, f"meta/dataengine.json describes {len(provenance)} episodes, the dataset has "
              f"{info['total_episodes']} (changed by another tool, e.g. lerobot's delete / split / merge "
              "episodes, which keep no provenance): its provenance is stale", fix)
    by_index = {e.get("episode_index", i): e for i, e in enumerate(provenance)}
    for ep in episodes:
        recorded = by_index.get(ep["episode_index"], {})
        for column in ("dataengine/run_id", "dataengine/source_episode"):
            key = column.removeprefix("dataengine/")
            if ep.get(column) is not None and recorded.get(key) != ep.get(column):
                _fail(root, f"episode {ep['episode_index']}'s {column} is {ep.get(column)!r} but meta/dataengine.json "
                      f"says {recorded.get(key)!r}: the two were written for different episodes", fix)


def check_codecs(root: Path, info: dict, scans: dict[str, "VideoScan"]) -> None:
    """Each video feature's ``info.video.codec`` in info.json names the codec its files are in (lerobot's tools
    re-encode the files they cut to AV1 and copy the old metadata)."""
    for path, scan in sorted(scans.items()):
        key = next((k for k in info["features"] if f"/{k}/" in f"/{path}"), None)
        named = info["features"][key].get("info", {}).get("video.codec") if key else None
        if named is not None and scan.codec and scan.codec != named:
            _fail(root, f"{path} is {scan.codec} video but meta/info.json says {key} is {named} (re-encoded by "
                  "another tool, e.g. lerobot's delete / split episodes)",
                  f"set features[{key!r}].info['video.codec'] to {scan.codec!r} in meta/info.json, or re-encode "
                  f"the videos to {named}")


def _flatten(value) -> list:
    return [x for v in value for x in _flatten(v)] if isinstance(value, list) else [value]


def check_features(root: Path, info: dict, previous_info: dict | None) -> None:
    fps = info["fps"]
    for key, feature in info["features"].items():
        video_fps = feature.get("info", {}).get("video.fps")
        if feature["dtype"] == "video" and video_fps is not None and video_fps != fps:
            _fail(root, f"video {key!r} is at {video_fps} fps, the dataset at {fps}", "re-encode the videos")
    data_file = next(iter(sorted((root / "data").glob("chunk-*/file-*.parquet"))), None)
    columns = set(parquet_schema(data_file, DAMAGED).names) if data_file else set()
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


@dataclass
class VideoScan:
    """What decoding one video file completely gave: each frame's timestamp (s), the frame size, or the failure."""

    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    width: int = 0
    height: int = 0
    error: str | None = None
    codec: str = ""
    """The stream's codec as lerobot names it in info.json (``canonical_name``: h264, av1, ...)."""
    image_stats: EpisodeImageStats | None = None
    """The exact image stats of each episode in the file, from the same decode (None: not asked for)."""


def scan_video(path: Path, threads: int = 0, image_stats: EpisodeImageStats | None = None) -> VideoScan:
    """Demux and decode every packet of the file's video stream once; ``threads`` decoder threads (0: FFmpeg's
    choice). With ``image_stats``, each frame is also converted to RGB as lerobot's loader sees it and added to
    its episode's stats (the costly part: without it, the decoder's output alone is the proof). Never raises for a
    damaged file."""
    scan, times = VideoScan(image_stats=image_stats), []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return VideoScan(error="has no video stream")
            stream = container.streams.video[0]
            scan.codec = stream.codec.canonical_name
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.is_corrupt or frame.time is None:
                        scan.error = f"frame {len(times) + 1} decodes corrupt"
                        break
                    times.append(frame.time)
                    scan.width, scan.height = frame.width, frame.height
                    if image_stats is not None:
                        image_stats.add(frame.to_ndarray(format="rgb24"), frame.time)
                if scan.error:
                    break
    except (av.FFmpegError, OSError, ValueError) as error:  # damaged container or bitstream
        where = f"after frame {len(times)} ({times[-1]:.2f} s)" if times else "at its first frame"
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        scan.error = f"does not decode {where}: {reason[:120]}"
    scan.timestamps = np.sort(np.asarray(times, dtype=np.float64))
    return scan


def default_video_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def check_videos(root: Path, info: dict, episodes: list[dict], workers: int | None = None,
                 image_stats: bool = True, fail: Callable[[Path, str, str], None] = _fail) -> dict[str, VideoScan]:
    """Every video file decodes completely, once, and its frames cover its episodes exactly: each episode's
    ``[from_timestamp, to_timestamp)`` in its file holds ``length`` decoded frames, the file holds no others, and the
    frame size is info.json's. Files are decoded side by side on ``workers`` threads (default: one per core).
    With ``image_stats``, the same decode accumulates each episode's exact image stats (for
    :func:`check_image_stats`). ``fail(root, problem, fix)`` raises the one error line (``train --no-frame-cache``
    words it for training)."""
    fps = info["fps"]
    half = 0.5 / fps
    by_file: dict[str, list[tuple[str, dict]]] = {}
    for key, feature in info["features"].items():
        if feature["dtype"] != "video":
            continue
        for ep in episodes:
            path = info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                             file_index=ep[f"videos/{key}/file_index"])
            by_file.setdefault(path, []).append((key, ep))
    if not by_file:
        return {}
    workers = workers or min(default_video_threads(), len(by_file))
    threads = 1 if workers > 1 else 0  # several files at once: one thread each; one file: all the decoder's

    def scan(path: str) -> VideoScan:
        members = by_file[path]
        accumulator = EpisodeImageStats(members[0][0], [ep for _, ep in members], fps) if image_stats else None
        return scan_video(root / path, threads, accumulator)

    with ThreadPoolExecutor(workers) as pool:
        scans = dict(zip(by_file, pool.map(scan, by_file)))
    problems = []
    for path, members in sorted(by_file.items()):
        scan, key = scans[path], members[0][0]
        expected = sum(int(ep["length"]) for _, ep in members)
        if scan.error is not None:
            problems.append(f"{path} {scan.error} (of {expected} frames)")
            continue
        feature = info["features"][key]
        size = dict(zip(feature.get("names") or [], feature["shape"]))
        want = (size.get("width", scan.width), size.get("height", scan.height))
        if (scan.width, scan.height) != want:
            problems.append(f"{path} is {scan.width}x{scan.height}, info.json says {want[0]}x{want[1]}")
            continue
        short = []
        for _, ep in members:
            start = float(ep[f"videos/{key}/from_timestamp"])
            end = float(ep[f"videos/{key}/to_timestamp"])
            found = int(np.searchsorted(scan.timestamps, end - half) - np.searchsorted(scan.timestamps, start - half))
            if found != int(ep["length"]):
                short.append(f"episode {ep['episode_index']} has {found} of its {ep['length']} frames at "
                             f"{start:.2f}-{end:.2f} s")
        if short:
            more = f" (and {len(short) - 2} more episodes)" if len(short) > 2 else ""
            problems.append(f"{path} decodes {len(scan.timestamps)} frames: {'; '.join(short[:2])}{more}")
        elif len(scan.timestamps) != expected:
            problems.append(f"{path} decodes {len(scan.timestamps)} frames, its episodes in meta/episodes have "
                            f"{expected}")
    if problems:
        more = f" (and {len(problems) - 2} more video files)" if len(problems) > 2 else ""
        fail(root, f"{len(problems)} broken video file(s): {'; '.join(problems[:2])}{more}",
             "re-encode or copy the videos again (a version is never published with a video lerobot cannot read)")
    return scans


def _largest_difference(written: object, exact: np.ndarray) -> str | None:
    """How far a written stat (a number or nested list, as JSON or parquet hold it) is from the exact one, in words
    (None within :data:`STATS_TOLERANCE`)."""
    if written is None:
        return "is missing"
    try:
        found = np.asarray(_flatten(written) if isinstance(written, list) else [written], dtype=np.float64)
    except (TypeError, ValueError):
        return f"is {str(written)[:40]!r}, not numbers"
    exact = exact.ravel()
    if found.shape != exact.shape:
        return f"has {found.size} values, not {exact.size}"
    if np.allclose(found, exact, rtol=STATS_TOLERANCE, atol=1e-9):
        return None
    worst = int(np.argmax(np.abs(found - exact)))
    relative = f"{abs(found[worst] - exact[worst]) / abs(exact[worst]):.1%} off, " if exact[worst] else ""
    return f"is {found[worst]:.6g}, its decoded frames give {exact[worst]:.6g} ({relative}channel {worst})"


def _stats_differ(written: dict, exact: dict[str, np.ndarray]) -> str | None:
    """The first of :data:`EXACT_IMAGE_STATS` whose written value is not the exact one, described; else None."""
    for name in EXACT_IMAGE_STATS:
        difference = _largest_difference(written.get(name), exact[name])
        if difference is not None:
            return f"{name} {difference}"
    return None


def check_image_stats(root: Path, stats: dict, scans: dict[str, VideoScan], episode_rows: list[dict]) -> None:
    """``meta/stats.json``'s image stats (``stats``), and each episode's in meta/episodes (``stats/KEY/...``: lerobot
    aggregates these when it merges datasets), are those of the decoded frames (from :func:`check_videos`' decode),
    within float rounding. Sampled stats, stats computed before encoding, and stats left from before a re-encode all
    differ: lerobot normalises every pixel with them."""
    per_key: dict[str, dict[int, ImageStats]] = {}
    for scan in scans.values():
        if scan.image_stats is not None:
            per_key.setdefault(scan.image_stats.key, {}).update(scan.image_stats.by_episode)
    why = ("sampled or stale: lerobot's writer estimates them from some frames before encoding, a merge keeps "
           "such estimates, a re-encode keeps the old stats")
    for key, by_episode in sorted(per_key.items()):
        exact = merge_all([{key: s} for s in by_episode.values()])[key].to_lerobot()
        difference = _stats_differ(stats[key], exact)
        if difference is not None:
            _fail(root, f"meta/stats.json's image stats of {key!r} are not those of its decoded frames: its "
                  f"{difference} ({why})", stats_fix(root))
    for row in episode_rows:
        for key, by_episode in sorted(per_key.items()):
            written = {name: row.get(f"stats/{key}/{name}") for name in EXACT_IMAGE_STATS}
            difference = _stats_differ(written, by_episode[row["episode_index"]].to_lerobot())
            if difference is not None:
                _fail(root, f"episode {row['episode_index']}'s own image stats of {key!r} (meta/episodes) are not "
                      f"those of its decoded frames: its {difference} ({why})", stats_fix(root))


def check_loads_with_lerobot(root: Path, repo_id: str) -> None:
    """lerobot's own ``LeRobotDataset`` opens it and decodes the first and the last frame of every episode (the
    check demos and curate make before moving a dataset into place: ``formats.validate.check_loads``)."""
    try:
        check_loads(root, repo_id, every_episode=False)
    except DataEngineError:
        raise
    except Exception as error:  # lerobot raises many types; any of them means users cannot load it
        _fail(root, f"lerobot cannot load it ({type(error).__name__}: {str(error).splitlines()[0][:200]})",
              "fix the dataset (it was written or copied incompletely)")


def verify_dataset(root: Path, repo_id: str, previous_info: dict | None = None) -> dict:
    """Run every check; returns ``info.json``. Raises ``DataEngineError`` naming the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataEngineError(f"dataset {root} does not exist: pass the directory of a LeRobot v3 dataset")
    info = _info(root)
    episodes = check_shards(root, info)
    stats = check_stats(root, info)
    episode_rows = check_episode_stats(root, info)
    check_provenance(root, info, episodes)
    check_features(root, info, previous_info)
    scans = check_videos(root, info, episodes)
    check_codecs(root, info, scans)
    check_image_stats(root, stats, scans, episode_rows)
    check_loads_with_lerobot(root, repo_id)
    return info
