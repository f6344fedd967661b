"""Video: the decoding backend that works on this machine, and PyAV encode/decode helpers.

lerobot 0.4.4 defaults to torchcodec whenever the package is installed, but torchcodec needs the system's FFmpeg
shared libraries and fails at first use without them ("Could not load libtorchcodec"), deep inside training.
We try to load it once and fall back to PyAV (which bundles its own FFmpeg) instead of crashing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)


@functools.cache
def video_backend() -> str:
    """``"torchcodec"`` when it can really decode here, else ``"pyav"``."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loading it loads libtorchcodec + FFmpeg)
    except Exception as error:  # torchcodec raises RuntimeError/OSError/ImportError depending on what is missing
        log.info("torchcodec unusable (%s); decoding videos with pyav", str(error).splitlines()[0])
        from dataengine.lerobot_compat import install_video_fallback

        install_video_fallback()  # lerobot's pyav path itself needs torchvision.io.VideoReader
        return "pyav"
    return "torchcodec"


def encode_frames(path: Path, frames: np.ndarray, fps: int, codec: str = "libx264", crf: int = 18,
                  preset: str = "ultrafast") -> None:
    """Write (T, H, W, 3) uint8 frames as an MP4 (yuv420p) with PyAV.

    ``ultrafast`` x264: 0.40 ms per 224 px frame vs 1.30 for ``medium`` on the 2-core machine, files ~2.6x larger
    (~1 KiB per frame, still ~150x smaller than raw) and no less accurate (mean |error| 1.6 vs 1.7 of 255).
    Encoding is a third of the rollout engine's time on CPU, so speed wins here."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {"crf": str(crf)}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def iter_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame (H, W, 3) uint8 of a video file with its timestamp in seconds, decoded with PyAV, one at a time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24"), float(frame.pts * stream.time_base)


def decode_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames (N, H, W, 3) uint8 of a (short) video file and their timestamps in seconds."""
    frames, times = zip(*iter_frames(path))
    return np.stack(frames), np.asarray(times)
