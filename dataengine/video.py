"""Pick the video decoding backend that works on this machine.

lerobot 0.4.4 defaults to torchcodec whenever the package is installed, but torchcodec needs the system's FFmpeg
shared libraries and fails at first use without them ("Could not load libtorchcodec"), deep inside training.
We try to load it once and fall back to PyAV (which bundles its own FFmpeg) instead of crashing.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def video_backend() -> str:
    """``"torchcodec"`` when it can really decode here, else ``"pyav"``."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loading it loads libtorchcodec + FFmpeg)
    except Exception as error:  # torchcodec raises RuntimeError/OSError/ImportError depending on what is missing
        log.info("torchcodec unusable (%s); decoding videos with pyav", str(error).splitlines()[0])
        return "pyav"
    return "torchcodec"
