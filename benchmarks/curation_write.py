"""Write throughput (frames/s into a finished LeRobot v3 dataset): curation's writer vs lerobot's own
``LeRobotDataset.add_frame / save_episode`` path, in its default mode (frames written as images, encoded at
``save_episode``) and its streaming mode (frames straight to the encoder: faster, but it lost a frame under load,
see ``tests/lerobot_recorder.py``), on the same stored episodes, same codec and resolution, side by side in one run.
Both read the episodes from the store.

    python benchmarks/curation_write.py --episodes 16 --image-size 224 --vcodec libsvtav1
    python benchmarks/curation_write.py --run RUN --workers 16          (an existing rollout run)

Ours includes everything up to a finished dataset: parallel encoding (dask workers already started; their
start-up is reported apart), exact stats decoded from the written videos, concatenation and metadata.
lerobot's includes its finalize(), with its own (sampled, overflowing) stats.
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
from so101_dataengine.base.executors import ExecutorConfig, dask_client, wait_all  # noqa: E402
from so101_dataengine.formats.features import ROBOT_TYPE, so101_features  # noqa: E402
from so101_dataengine.formats.store import EpisodeStore  # noqa: E402
from so101_dataengine.formats.v3_writer import DatasetLayout, EncodeTask, build_info, encode_episode, write_dataset  # noqa: E402


def make_run(root: Path, episodes: int, image_size: int) -> Path:
    from so101_dataengine.cli import main

    run = root / "run"
    assert main(["rollout", "--policy", "scripted", "--n", str(episodes), "--num-envs", str(min(episodes, 8)),
                 "--image-size", str(image_size), "--out", str(run)]) == 0
    return run


def ours(run: Path, out: Path, vcodec: str, workers: int) -> tuple[float, float, int]:
    """(seconds, cluster start-up seconds, frames)."""
    store = EpisodeStore.open(run)
    fps = int(store.manifest["scene"]["fps"])
    size = int(store.manifest["scene"]["image_size"])
    t0 = time.perf_counter()
    with dask_client(ExecutorConfig(workers=workers)) as client:
        client.run(lambda: __import__("so101_dataengine.formats.v3_writer"))  # imports done: measure the work, not start-up
        startup = time.perf_counter() - t0
        start = time.perf_counter()
        tasks = [EncodeTask(str(run), i, str(out / "tmp" / f"{i:06d}"), fps, vcodec, None)
                 for i in store.completed_ids()]
        encoded = wait_all(client.map(encode_episode, tasks, pure=False), lambda: None)
        info = build_info(so101_features(size), fps, {k: Path(v) for k, v in encoded[0].videos.items()}, ROBOT_TYPE)
        write_dataset(DatasetLayout(out / "dataset", info), encoded)
        seconds = time.perf_counter() - start
    return seconds, startup, sum(len(e) for e in encoded)


def lerobots(run: Path, out: Path, vcodec: str, streaming: bool) -> tuple[float, int]:
    from so101_dataengine.lerobot_compat import create_dataset

    store = EpisodeStore.open(run)
    fps = int(store.manifest["scene"]["fps"])
    size = int(store.manifest["scene"]["image_size"])
    start = time.perf_counter()
    dataset = create_dataset("local/bench", fps, so101_features(size), out, ROBOT_TYPE, vcodec, streaming)
    frames = 0
    for i in store.completed_ids():
        episode = store.read(i)
        for t in range(len(episode.states)):
            frame = {"observation.state": episode.states[t], "action": episode.actions[t], "task": episode.meta["task"]}
            frame.update({key: images[t] for key, images in episode.images.items()})
            dataset.add_frame(frame)
        dataset.save_episode()
        frames += len(episode.states)
    dataset.finalize()
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="an existing rollout run (default: record one)")
    parser.add_argument("--episodes", type=int, default=8, help="episodes to record when no --run is given")
    parser.add_argument("--image-size", type=int, default=224, help="camera size when recording a run")
    parser.add_argument("--vcodec", default="libsvtav1", help="libsvtav1 (lerobot's default) or h264")
    parser.add_argument("--workers", type=int, default=None, help="dask workers for ours (default: one per core)")
    parser.add_argument("--baselines", default="classic,streaming",
                        help="lerobot's writer modes to compare with: classic (its default: frames as images, encoded "
                             "at save_episode) and/or streaming (frames straight to the encoder)")
    parser.add_argument("--out", default=os.environ.get("OUT") and str(Path(os.environ["OUT"]) / "curation_write.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or make_run(tmp, args.episodes, args.image_size)
        workers = args.workers or os.cpu_count() or 1
        our_seconds, startup, frames = ours(run, tmp / "ours", args.vcodec, workers)
        theirs = {mode: lerobots(run, tmp / f"lerobot-{mode}", args.vcodec, mode == "streaming")
                  for mode in args.baselines.split(",")}
        assert all(frames == their_frames for _seconds, their_frames in theirs.values())
        store = EpisodeStore.open(run)
        manifest, cameras = store.manifest, len(store.read_meta(0)["cameras"])
    results = {
        "benchmark": "curation_write",
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "episodes": manifest["n"],
        "frames": frames,
        "image_size": int(manifest["scene"]["image_size"]),
        "cameras": cameras,
        "vcodec": args.vcodec,
        "workers": workers,
        "ours_frames_per_s": frames / our_seconds,
        "ours_seconds": our_seconds,
        "ours_cluster_startup_seconds": startup,
    }
    for mode, (seconds, _frames) in theirs.items():
        results[f"lerobot_{mode}_frames_per_s"] = frames / seconds
        results[f"lerobot_{mode}_seconds"] = seconds
        results[f"speedup_vs_{mode}"] = seconds / our_seconds
    emit(results, args.out)


if __name__ == "__main__":
    main()
