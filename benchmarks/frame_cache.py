"""lerobot's training data loading with and without the decoded-frame cache, side by side on the same dataset.

    python benchmarks/frame_cache.py --dataset DEMOS_DIR --workers 2 --batches 20 [--out results.json]

Each configuration runs a torch DataLoader over lerobot's ``LeRobotDataset`` with ACT's sampling (the current
frame of both cameras and a 100-action chunk, shuffled, batch ``--batch-size``), as lerobot-train does, and reports
samples/s after a warm-up batch. The baseline decodes frames from the videos (the video backend that works here);
"cached" reads them from ``so101_dataengine.lerobot_compat.frame_cache`` (built first, its build time reported separately).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.report import emit
from so101_dataengine.formats.v3_dataset import read_info
from so101_dataengine.lerobot_compat import LeRobotDataset, frame_cache
from so101_dataengine.lerobot_compat.video import video_backend

ACT_CHUNK = 100


def samples_per_second(root: Path, batch_size: int, workers: int, batches: int) -> float:
    fps = read_info(root)["fps"]
    dataset = LeRobotDataset("local/bench", root=root, video_backend=video_backend(),
                             delta_timestamps={"action": [k / fps for k in range(ACT_CHUNK)]})
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=False, drop_last=True)
    batch_iter = iter(loader)
    next(batch_iter)  # warm-up: worker start, first file opens
    started = time.perf_counter()
    for _ in range(batches):
        next(batch_iter)
    return batches * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="a LeRobot v3 dataset (e.g. from dataengine demos)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    decoded = samples_per_second(args.dataset, args.batch_size, args.workers, args.batches)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        cache_dir = frame_cache.build(args.dataset, Path(scratch), Console(stderr=True))
        build_seconds = time.perf_counter() - started
        frame_cache.install(cache_dir)
        cached = samples_per_second(args.dataset, args.batch_size, args.workers, args.batches)
    emit({"dataset": str(args.dataset), "video_backend": video_backend(), "batch_size": args.batch_size,
          "workers": args.workers, "batches": args.batches, "decoded_samples_per_s": decoded,
          "cached_samples_per_s": cached, "speedup": cached / decoded, "cache_build_seconds": build_seconds}, args.out)


if __name__ == "__main__":
    main()
