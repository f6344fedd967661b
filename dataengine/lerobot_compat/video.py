"""Video: the decoding backend that works on this machine, and PyAV decoding helpers.

lerobot 0.4.4 defaults to torchcodec whenever the package is installed, but torchcodec needs the system's FFmpeg
shared libraries and fails at first use without them ("Could not load libtorchcodec"), deep inside training.
We try to load it once and fall back to PyAV (which bundles its own FFmpeg) instead of crashing. lerobot 0.6 makes
the same check for its default, but the engine passes its backend explicitly (to lerobot-train too), so both lines
decode the same way.
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
        from so101_dataengine.lerobot_compat import install_video_fallback

        install_video_fallback()  # lerobot 0.4.4's pyav path itself needs torchvision.io.VideoReader
        return "pyav"
    return "torchcodec"


def iter_frames(path: Path, start: float = 0.0) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame (H, W, 3) uint8 of a video file with its timestamp in seconds, decoded with PyAV, one at a time;
    with ``start``, from the key frame at or before ``start`` seconds (a v3 file holds many episodes back to back)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24"), float(frame.pts * stream.time_base)
