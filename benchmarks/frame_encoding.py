"""How fast can a rollout worker record frames? x264 (the engine's streaming encoder) vs JPEG on the CPU vs JPEG
batched on the GPU (nvJPEG through torchvision), on real rendered frames of the scene, one process and P processes
at once (the engine runs one worker per core). Produces the "frame encoding" rows of docs/benchmarks.md.

    python benchmarks/frame_encoding.py --procs 1,16 --seconds 8
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from benchmarks.report import emit  # noqa: E402


def scene_frames(count: int, image_size: int) -> np.ndarray:
    """``count`` frames of both cameras from seeded scenes, as the engine records them."""
    from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

    env = PickPlaceEnv(PickPlaceConfig(image_size=image_size))
    frames = []
    for seed in range(count // 2):
        frames.extend(env.reset(seed).images.values())
    return np.stack(frames[:count])


def x264_encoder(frames: np.ndarray):
    """The episode store's former recorder: a streaming MP4, x264 ``ultrafast``, crf 18, one thread per encoder."""
    import av

    container = av.open(str(Path(tempfile.mkdtemp()) / "v.mp4"), mode="w")
    stream = container.add_stream("libx264", rate=30)
    stream.pix_fmt, stream.height, stream.width = "yuv420p", *frames.shape[1:3]
    stream.options = {"crf": "18", "preset": "ultrafast", "threads": "1"}

    def encode() -> None:
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    return encode


def pillow_encoder(frames: np.ndarray):
    import io

    from PIL import Image

    images = [Image.fromarray(f) for f in frames]

    def encode() -> None:
        for image in images:
            image.save(io.BytesIO(), format="JPEG", quality=90)
    return encode


def nvjpeg_encoder(frames: np.ndarray):
    import torch
    from torchvision.io import encode_jpeg

    def encode() -> None:
        batch = torch.from_numpy(frames).to("cuda").permute(0, 3, 1, 2).contiguous()
        _ = [e.cpu() for e in encode_jpeg(list(batch.unbind(0)), quality=90)]
    return encode


ENCODERS = {"x264": x264_encoder, "jpeg-pillow": pillow_encoder, "jpeg-nvjpeg": nvjpeg_encoder}


def worker(method: str, frames: np.ndarray, seconds: float, barrier, queue) -> None:
    """Warm up, wait for every process, then encode for ``seconds``: start-up never counts."""
    encode = ENCODERS[method](frames)
    encode()
    barrier.wait()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encode()
        done += len(frames)
    queue.put(done / (time.perf_counter() - start))


def measure(method: str, frames: np.ndarray, procs: int, seconds: float) -> float:
    """Frames per second of ``procs`` processes encoding at once (sum of their rates)."""
    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(procs)
    workers = [ctx.Process(target=worker, args=(method, frames, seconds, barrier, queue)) for _ in range(procs)]
    for w in workers:
        w.start()
    total = sum(queue.get() for _ in workers)
    for w in workers:
        w.join()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", default="1,16")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=96, help="frames per GPU call (48 envs x 2 cameras)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    import torch

    frames = scene_frames(args.batch, args.image_size)
    methods = ["x264", "jpeg-pillow"] + (["jpeg-nvjpeg"] if torch.cuda.is_available() else [])
    rows = []
    for procs in [int(p) for p in args.procs.split(",")]:
        for method in methods:
            rate = measure(method, frames, procs, args.seconds)
            rows.append({"method": method, "procs": procs, "frames_per_s": round(rate)})
            print(rows[-1], flush=True)
    from torchvision.io import decode_jpeg, encode_jpeg

    sizes = [len(encode_jpeg(torch.from_numpy(f).permute(2, 0, 1).contiguous(), quality=90)) for f in frames]
    decoded = decode_jpeg(encode_jpeg(torch.from_numpy(frames[0]).permute(2, 0, 1).contiguous(), quality=90))
    error = np.abs(decoded.permute(1, 2, 0).numpy().astype(int) - frames[0]).mean()
    emit({"rows": rows, "jpeg_bytes_per_frame": int(np.mean(sizes)),
                            "jpeg_mean_abs_error": float(error), "image_size": args.image_size}, args.out)


if __name__ == "__main__":
    main()
