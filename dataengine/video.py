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


class VideoWriter:
    """An MP4 (yuv420p) written frame by frame with PyAV, so a recorder never holds an episode's frames in memory.

    x264 ``ultrafast``: 0.40 ms per 224 px frame vs 1.30 for ``medium`` on the 2-core machine, files ~2.6x larger
    (~1 KiB per frame, still ~150x smaller than raw) and no less accurate (mean |error| 1.6 vs 1.7 of 255).
    One encoder thread (``threads=1``): the rollout engine runs hundreds of encoders side by side on its own
    threads, and x264's default of ~1.5 threads per core for each of them oversubscribed the machine.
    PyAV releases the GIL while converting and encoding, so writers on different threads run in parallel.
    """

    def __init__(self, path: Path, fps: int, codec: str = "libx264", crf: int = 18, preset: str = "ultrafast"):
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = ({"crf": str(crf), "preset": preset, "threads": "1"} if codec == "libx264"
                                else {"crf": str(crf)})
        self._sized = False

    def add(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if not self._sized:
            self._stream.height, self._stream.width = image.shape[:2]
            self._sized = True
        self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._sized:
            self._container.mux(self._stream.encode())
        self._container.close()


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
