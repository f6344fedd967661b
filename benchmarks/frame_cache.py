"""lerobot's training data loading with and without the decoded-frame cache, side by side on the same dataset.

    python -m benchmarks.frame_cache --dataset DEMOS_DIR --workers 2 --batches 20 [--out results.json]

Each configuration runs a torch DataLoader over lerobot's ``LeRobotDataset`` with ACT's sampling (the current
frame of both cameras and a 100-action chunk, shuffled, batch ``--batch-size``), loading as the installed
lerobot-train does (on 0.6: uint8 frames, workers started with spawn, prefetch 4), and reports samples/s after a
warm-up batch (worker start-up excluded). The baseline decodes frames from the videos (the video backend that works here);
"cached" reads them from ``so101_dataengine.lerobot_compat.frame_cache`` (built first, its build time reported separately).
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.report import emit
from so101_dataengine.formats.v3_dataset import read_info
from so101_dataengine.lerobot_compat import LEROBOT_VERSION, LeRobotDataset, frame_cache
from so101_dataengine.lerobot_compat.video import video_backend

ACT_CHUNK = 100


def lerobot_train_loading() -> tuple[dict, dict]:
    """How the installed lerobot-train loads: (LeRobotDataset options, DataLoader options). lerobot 0.6 asks for
    uint8 frames and starts its workers with spawn (prefetch 4, persistent); 0.4.4 has none of these options."""
    from lerobot.configs.train import TrainPipelineConfig

    defaults = {name: field.default for name, field in TrainPipelineConfig.__dataclass_fields__.items()}
    loader = {option: defaults[name] for name, option in (("prefetch_factor", "prefetch_factor"),
                                                          ("persistent_workers", "persistent_workers"),
                                                          ("dataloader_multiprocessing_context", "multiprocessing_context"))
              if name in defaults}
    dataset = {"return_uint8": True} if "return_uint8" in inspect.signature(LeRobotDataset.__init__).parameters else {}
    return dataset, loader


def samples_per_second(root: Path, batch_size: int, workers: int, batches: int) -> float:
    fps = read_info(root)["fps"]
    dataset_options, loader_options = lerobot_train_loading()
    dataset = LeRobotDataset("local/bench", root=root, video_backend=video_backend(),
                             delta_timestamps={"action": [k / fps for k in range(ACT_CHUNK)]}, **dataset_options)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, **loader_options)
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
    parser.add_argument("--cache-root", type=Path, default=None,
                        help="build the cache here and keep it (a workspace's cache/frames: `dataengine train` then "
                             "reuses it); default: a temporary directory")
    args = parser.parse_args()

    decoded = samples_per_second(args.dataset, args.batch_size, args.workers, args.batches)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        cache_dir = frame_cache.build(args.dataset, args.cache_root or Path(scratch), Console(stderr=True))
        build_seconds = time.perf_counter() - started
        frame_cache.install(cache_dir)
        cached = samples_per_second(args.dataset, args.batch_size, args.workers, args.batches)
    emit({"dataset": str(args.dataset), "lerobot": LEROBOT_VERSION, "video_backend": video_backend(),
          "loader": lerobot_train_loading()[1], "batch_size": args.batch_size,
          "workers": args.workers, "batches": args.batches, "decoded_samples_per_s": decoded,
          "cached_samples_per_s": cached, "speedup": cached / decoded, "cache_build_seconds": build_seconds}, args.out)


if __name__ == "__main__":
    main()
