"""How big a rollout each worker runs: the automatic batch-size ladder.

The users found their batch size by hand (8, 12, 16, ... until out of memory). Here the engine does it: workers
and lanes follow the machine's cores, and the number of environments per worker is the largest rung of a ladder
whose GPU memory (measured on a worker: the policy's peak at that batch, plus the worker's CUDA context and tiled
framebuffer) fits the GPU's memory shared by the workers, and whose host memory fits the machine's; no more
environments than a worker has episodes. The plan and its reasons are printed and saved with the run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

ENV_LADDER = (8, 16, 32, 64, 128, 256)
"""Candidate environments per worker, tried from small to large."""
CPU_ONLY_ENVS = 8
"""Without a GPU the policy's convolutions cost the same per sample at any batch: 8 was measured best on CPU."""
GPU_MEMORY_SHARE = 0.85
"""Fraction of the GPU's memory the workers may plan to use (the rest: fragmentation, other processes)."""
HOST_BYTES_PER_ENV = 16 << 20
"""Host memory per environment: its MjData, two live H.264 encoders and frames in flight (measured ~5 MiB at 224 px, with margin)."""
HOST_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Capacity:
    workers: int
    num_envs: int
    lanes: int
    reason: str

    def describe(self) -> str:
        return f"{self.workers} workers x {self.num_envs} envs x {self.lanes} lanes ({self.reason})"


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def default_lanes(cores: int, workers: int) -> int:
    return max(1, cores // workers - 1)


def measure_policy_memory(spec, image_size: int, rungs: tuple[int, ...] = ENV_LADDER) -> dict:
    """Run on a worker: the policy's peak GPU memory at each batch size, climbing the ladder until out of memory.
    Returns ``{"peak": {batch: bytes}, "total": bytes, "overhead": bytes}`` (empty without CUDA)."""
    import torch

    from so101_dataengine.rollouts.engine import policy_for_worker
    from so101_dataengine.scenes.pick_place import Observation
    from so101_dataengine.scenes.render import CAMERA_NAMES, image_feature_key

    if spec.checkpoint is None or not torch.cuda.is_available():  # the scripted experts run on the CPU
        return {}
    policy = policy_for_worker(spec)
    if not policy.device.startswith("cuda"):
        return {}
    image = np.zeros((image_size, image_size, 3), dtype=np.uint8)
    observation = Observation(np.zeros(6, dtype=np.float32), {image_feature_key(c): image for c in CAMERA_NAMES})
    peak = {}
    for batch in rungs:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            policy.predict_chunks([observation] * batch)
        except torch.cuda.OutOfMemoryError:
            break
        peak[batch] = torch.cuda.max_memory_allocated()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    overhead = total - free - torch.cuda.memory_reserved()  # CUDA context, cuDNN/cuBLAS workspaces
    return {"peak": peak, "total": total, "overhead": overhead}


def framebuffer_bytes(envs: int, image_size: int, cameras: int = 2) -> int:
    """The tiled offscreen buffer: colour + depth-stencil, 4 bytes each per pixel."""
    return envs * cameras * image_size * image_size * 8


def plan(memory: dict, image_size: int, episodes: int, workers: int, lanes: int | None, num_envs: int | None,
         workers_per_gpu: int, cores: int | None = None, host_bytes: int | None = None) -> Capacity:
    """Choose environments per worker (unless given) from measured GPU memory, host memory and the episode count."""
    cores = cores or os.cpu_count() or 1
    lanes = lanes or default_lanes(cores, workers)
    host_bytes = host_bytes or _available_host_memory()
    per_worker_episodes = math.ceil(episodes / workers)
    if num_envs is not None:
        return Capacity(workers, num_envs, lanes, "environments given")
    if not memory:
        envs = min(CPU_ONLY_ENVS, per_worker_episodes)
        return Capacity(workers, envs, lanes, f"no GPU policy: {envs} envs per worker")
    fits_gpu = [b for b, peak in memory["peak"].items()
                if workers_per_gpu * (memory["overhead"] + peak + framebuffer_bytes(b, image_size))
                <= GPU_MEMORY_SHARE * memory["total"]]
    fits_host = [b for b in ENV_LADDER if workers * b * HOST_BYTES_PER_ENV <= HOST_MEMORY_SHARE * host_bytes]
    candidates = sorted(set(fits_gpu) & set(fits_host))
    if not candidates:
        return Capacity(workers, ENV_LADDER[0], lanes, "nothing on the ladder fits: using the smallest rung")
    best = candidates[-1]
    limit = ("the ladder's top" if best == ENV_LADDER[-1] else
             "GPU memory" if best == max(fits_gpu) else "host memory")
    gib = (memory["overhead"] + memory["peak"][best] + framebuffer_bytes(best, image_size)) / 2**30
    envs = min(best, per_worker_episodes)
    reason = (f"{best} envs/worker fit ({gib:.1f} GiB GPU each, {workers_per_gpu} per GPU of "
              f"{memory['total'] / 2**30:.0f} GiB; limited by {limit})")
    if envs < best:
        reason += f"; {envs} used: {episodes} episodes over {workers} workers"
    return Capacity(workers, envs, lanes, reason)


def _available_host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 8 << 30
