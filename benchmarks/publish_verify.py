"""What verifying every video frame costs ``dataengine publish``: seconds per 1,000 decoded frames, per image size
and codec, on real datasets recorded by ``dataengine demos`` (both cameras), next to what publish already spends
hashing the same files and lerobot's first/last-frame load check.

    python -m benchmarks.publish_verify [--sizes 96 224] [--codecs libsvtav1 h264] [--episodes 5] [--repeats 3]
                                        [--out benchmarks/results/publish_verify/publish_verify_cpu2_DATE.json]
    python -m benchmarks.publish_verify --dataset DIR            (an existing dataset instead of recording)

Timed per dataset (best of ``--repeats``): ``check_videos`` as publish runs it (every file decoded once, files side
by side, one decoder thread each, each frame also converted to RGB and counted into its episode's exact image stats)
followed by ``check_image_stats``, the same decode without the stats (what publish did before it checked exact image
stats) and their ratio, the decode one file at a time with FFmpeg's own decoder threads, the sha256 of every file
(``hash_files``, which publish does anyway) and ``check_loads_with_lerobot``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SVT_LOG", "1")

from benchmarks.report import emit  # noqa: E402
from so101_dataengine.formats.v3_dataset import read_info  # noqa: E402
from so101_dataengine.publish.manifest import hash_files  # noqa: E402
from so101_dataengine.publish.verify import (  # noqa: E402
    check_episode_stats,
    check_image_stats,
    check_loads_with_lerobot,
    check_shards,
    check_stats,
    check_videos,
    default_video_threads,
)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(root: Path, repeats: int) -> dict:
    info = read_info(root)
    episodes = check_shards(root, info)
    stats, rows = check_stats(root, info), check_episode_stats(root, info)
    scans = check_videos(root, info, episodes)
    frames = sum(len(s.timestamps) for s in scans.values())
    per_k = 1000 / frames
    with_stats = best_of(repeats, lambda: check_image_stats(root, stats, check_videos(root, info, episodes), rows))
    parallel = best_of(repeats, lambda: check_videos(root, info, episodes, image_stats=False))
    serial = best_of(repeats, lambda: check_videos(root, info, episodes, workers=1, image_stats=False))
    hashing = best_of(repeats, lambda: hash_files(root))
    lerobot = best_of(1, lambda: check_loads_with_lerobot(root, "local/bench"))
    video_bytes = sum(f.stat().st_size for f in (root / "videos").rglob("*.mp4"))
    feature = next(f for f in info["features"].values() if f["dtype"] == "video")
    return {"dataset": str(root), "codec": feature["info"].get("video.codec"), "image_size": feature["shape"][0],
            "episodes": info["total_episodes"], "video_files": len(scans), "decoded_frames": frames,
            "video_mb": round(video_bytes / 1e6, 2),
            "check_videos_with_image_stats_s": round(with_stats, 3),
            "check_videos_with_image_stats_s_per_1000_frames": round(with_stats * per_k, 4),
            "check_videos_s": round(parallel, 3), "check_videos_s_per_1000_frames": round(parallel * per_k, 4),
            "image_stats_cost_ratio": round(with_stats / parallel, 2),
            "one_file_at_a_time_s_per_1000_frames": round(serial * per_k, 4),
            "hash_files_s": round(hashing, 3), "lerobot_first_last_frame_s": round(lerobot, 3)}


def record(out: Path, size: int, codec: str, episodes: int) -> Path:
    from so101_dataengine.demos import DemosConfig, record_demos
    from so101_dataengine.scenes.pick_place import PickPlaceConfig

    record_demos(DemosConfig(out=out, n=episodes, repo_id="local/bench", seed=100, vcodec=codec,
                             scene=PickPlaceConfig(image_size=size)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", default=None, help="existing dataset(s) to time")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    parser.add_argument("--codecs", nargs="+", default=["libsvtav1", "h264"])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        roots = args.dataset or [record(Path(scratch) / f"{codec}-{size}", size, codec, args.episodes)
                                 for codec in args.codecs for size in args.sizes]
        for root in roots:
            results.append(measure(root, args.repeats))
    emit({"machine": platform.node(), "cores": default_video_threads(), "repeats": args.repeats,
          "results": results}, args.out)


if __name__ == "__main__":
    main()
