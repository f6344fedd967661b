"""lerobot 0.4.4's ``pyav`` video decoding, written on PyAV directly (``install_video_fallback`` installs it).

lerobot 0.4.4's ``pyav`` backend decodes through ``torchvision.io.VideoReader``, which torchvision 0.26 removed
(the GPU machine's torch 2.11 image has it, and lerobot-train died there on the first batch with
"module 'torchvision.io' has no attribute 'VideoReader'"), and its ``torchcodec`` backend needs the system's
FFmpeg. When VideoReader is missing, we replace that one function with the same algorithm written on PyAV
directly (seek to the key frame before the first timestamp, decode to the last, pick the closest frames within
the tolerance), so lerobot's loader and trainer keep working unchanged. Like lerobot's torchcodec decoder cache,
opened files are kept open per process: a v3 video file holds many episodes, and re-opening it for every sample
(parsing its index each time) made data loading, not the GPU, the limit of lerobot-train. lerobot 0.6 decodes with PyAV itself, so there it is not needed.
"""

from __future__ import annotations

import collections
import os

import av
import numpy as np
import torch

_OPEN_LIMIT = 32
"""Open video files kept per process (a dataset has two cameras x a few chunk files)."""
_open_containers: collections.OrderedDict[tuple[int, str], av.container.InputContainer] = collections.OrderedDict()


def _container(video_path) -> av.container.InputContainer:
    """An open container for ``video_path``, reused by later calls of this process (keyed by pid too: a
    dataloader worker forked from a process that had files open must not share their read positions)."""
    key = (os.getpid(), str(video_path))
    container = _open_containers.get(key)
    if container is None:
        container = _open_containers[key] = av.open(key[1])
        while len(_open_containers) > _OPEN_LIMIT:
            _open_containers.popitem(last=False)[1].close()
    _open_containers.move_to_end(key)
    return container


def decode_video_frames_pyav(video_path, timestamps: list[float], tolerance_s: float, backend: str = "pyav",
                             log_loaded_timestamps: bool = False) -> torch.Tensor:
    """Drop-in for ``lerobot.datasets.video_utils.decode_video_frames_torchvision``: (N, 3, H, W) float in [0, 1]."""
    from lerobot.datasets.video_utils import FrameTimestampError

    first, last = min(timestamps), max(timestamps)
    frames, times = [], []
    container = _container(video_path)
    stream = container.streams.video[0]
    container.seek(int(first / stream.time_base), stream=stream, backward=True, any_frame=False)
    for frame in container.decode(stream):
        frames.append(frame)
        times.append(float(frame.pts * stream.time_base))
        if times[-1] >= last:
            break
    distance = torch.cdist(torch.tensor(timestamps)[:, None], torch.tensor(times)[:, None], p=1)
    closest_distance, closest = distance.min(1)
    if not bool((closest_distance < tolerance_s).all()):
        raise FrameTimestampError(
            f"query timestamps {timestamps} are further than {tolerance_s} s from any frame of {video_path}"
        )
    images = np.stack([frames[i].to_ndarray(format="rgb24") for i in closest.tolist()])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
