"""How the episode store keeps camera frames: one Motion-JPEG stream per camera, plus a frame index.

Recording has to keep up with the engine: on the GPU machine x264 (even ``ultrafast``) costs ~1.3 ms per 224 px
frame under full load and was the wall at ~3,700 env-steps/s; Pillow's libjpeg-turbo encodes the same frame in
~0.16 ms (3x cheaper per core, ``benchmarks/frame_encoding.py``) and is more accurate at quality 90 (mean |error|
1.2 of 255 vs 1.6). Frames are independent, so any one can be decoded without the ones before it. Files are ~6x
larger than H.264 (~6 KB per frame): the store is a working format; curation writes the compact final videos.

A stream is plain concatenated JPEG files (``ffplay -f mjpeg FILE`` plays it); ``offsets`` (frames + 1 byte
positions) and ``crc32`` (one CRC-32 per frame) are kept beside it, in the episode's ``data.npz``. The checksums are
why a flipped byte that still decodes (a JPEG has no checksum of its own: it decodes to a slightly wrong picture)
is caught when that frame is read, instead of being trained on; zlib's CRC-32 costs ~1 ms per MB, far below the
decoding it guards. Streams recorded before checksums existed have none and are read unchecked.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading

JPEG_QUALITY = 90
"""Default quality; 4:2:0 chroma subsampling (Pillow's default), as the final H.264/AV1 videos have anyway."""


@dataclass(frozen=True)
class StreamIndex:
    """Where each frame of a stream lies (``offsets``: frames + 1 byte positions) and its CRC-32 (``crc32``: one
    per frame; None for a stream recorded before checksums were kept)."""

    offsets: np.ndarray
    crc32: np.ndarray | None = None


class JpegStreamWriter:
    """Appends RGB frames to a Motion-JPEG file as they arrive. Pillow releases the GIL while encoding, so
    writers on different threads run in parallel."""

    def __init__(self, path: Path, quality: int = JPEG_QUALITY):
        self._file = open(path, "wb")
        self._quality = quality
        self.offsets = [0]
        self.checksums: list[int] = []

    def add(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, format="JPEG", quality=self._quality)
        frame = encoded.getbuffer()
        self._file.write(frame)
        self.checksums.append(zlib.crc32(frame))
        self.offsets.append(self.offsets[-1] + len(frame))

    def close(self) -> StreamIndex:
        """Finish the file; returns its frame index."""
        self._file.close()
        return StreamIndex(np.asarray(self.offsets, dtype=np.int64), np.asarray(self.checksums, dtype=np.uint32))


def check_stream_size(path: Path, size: int, offsets: np.ndarray, fix: str) -> None:
    """A stream of ``size`` bytes must end where its frame index (rising from 0) says: a cut or appended-to file is
    caught by its size alone, before any frame is decoded."""
    if len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or size != offsets[-1]:
        raise DataEngineError(f"{path} is damaged ({size} bytes, its frame index in data.npz says "
                              f"{int(offsets[-1]) if len(offsets) else 0}: cut short or overwritten): {fix}")


def read_jpeg_stream(path: Path, index: StreamIndex, frames: slice | np.ndarray | None = None,
                     fix: str = "record it again") -> np.ndarray:
    """Frames (N, H, W, 3) uint8 of a stream; ``frames`` (a slice or indices) decodes only those.

    A stream cut short (its size is not the index's last offset) fails before any decoding, a frame whose bytes
    do not match their checksum or that does not decode fails naming the frame: each as one error line naming the
    file and ``fix``."""
    path = Path(path)
    offsets = index.offsets
    with reading(path, fix):
        data = path.read_bytes()
    check_stream_size(path, len(data), offsets, fix)
    if index.crc32 is not None and len(index.crc32) != len(offsets) - 1:
        raise DataEngineError(f"{path} is damaged (its frame index has {len(offsets) - 1} frames, its checksums "
                              f"{len(index.crc32)}): {fix}")
    indices = np.arange(len(offsets) - 1)
    if frames is not None:
        indices = indices[frames]
    images = []
    for i in indices:
        frame = data[offsets[i] : offsets[i + 1]]
        if index.crc32 is not None and zlib.crc32(frame) != int(index.crc32[i]):
            raise DataEngineError(f"{path} is damaged (frame {i}'s bytes do not match their checksum: changed after "
                                  f"recording): {fix}")
        with reading(path, fix, f"frame {i} is not a complete JPEG"):
            images.append(np.asarray(Image.open(io.BytesIO(frame)).convert("RGB")))
    return np.stack(images) if images else np.empty((0, 0, 0, 3), np.uint8)
