"""Success-classifier scoring throughput (frames/s; a frame = every camera view) on CPU and CUDA.

    python benchmarks/classifier_throughput.py --devices cpu,cuda            # H100/H200 goal: >= 20,000 frames/s

Per device, side by side:
- ``baseline``: fp32, contiguous (NCHW) tensors, batch 256;
- ``ours``: what ``SuccessClassifier.score_frames`` does: channels_last, bf16 autocast on CUDA, large batches;
each measured two ways: ``resident`` (uint8 frames at the stored size already on the device, e.g. decoded there;
resize + normalise + network) and ``from_host`` (uint8 frames in host memory, copied per batch, as
``score_episodes`` after a CPU decode). Random weights: speed does not depend on them. Writes JSON to stdout and
to ``--out`` or ``$OUT/classifier_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import nullcontext

import numpy as np
import torch

from benchmarks.report import emit
from so101_dataengine.classifier.artifact import ArtifactConfig, SuccessClassifier
from so101_dataengine.classifier.config import FrameSampling, ModelConfig
from so101_dataengine.classifier.model import SuccessNet


def _rate(run, frames: int, seconds: float, device: str) -> float:
    """Frames/s of ``run()`` repeated for about ``seconds`` after one warm-up call."""
    run()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        calls += 1
    sync()
    return calls * frames / (time.perf_counter() - start)


def measure(device: str, args) -> dict:
    torch.backends.cudnn.benchmark = True
    model = ModelConfig(backbone=args.backbone, image_size=args.image_size)
    net = SuccessNet(model.backbone, len(model.views), model.image_size)
    config = ArtifactConfig(model, FrameSampling(), args.frame_size, 0.5, 0.99)
    clf = SuccessClassifier(net, config, {}, "bench", None, device)
    on_cuda = device.startswith("cuda")
    batch = args.cuda_batch if on_cuda else args.cpu_batch
    shape = (batch, len(model.views), args.frame_size, args.frame_size, 3)
    host = torch.from_numpy(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    resident = host.to(device)
    results = {"device": torch.cuda.get_device_name(0) if on_cuda else f"cpu ({torch.get_num_threads()} threads)",
               "batch": batch}

    baseline_net = SuccessNet(model.backbone, len(model.views), model.image_size).to(device).eval()

    @torch.inference_mode()
    def baseline(frames):
        for start in range(0, len(frames), 256):
            x = frames[start : start + 256].to(device)
            b, v, h, w, _ = x.shape
            x = x.reshape(b * v, h, w, 3).permute(0, 3, 1, 2).float().contiguous()
            x = torch.nn.functional.interpolate(x, size=(args.image_size,) * 2, mode="bilinear", antialias=True)
            torch.sigmoid(baseline_net.logits((x - baseline_net.mean) / baseline_net.std))

    for name, frames in (("resident", resident), ("from_host", host)):
        results[f"baseline_fp32_{name}"] = _rate(lambda f=frames: baseline(f), batch, args.seconds, device)
        with torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else nullcontext():
            results[f"ours_{name}"] = _rate(lambda f=frames: clf.score_frames(f), batch, args.seconds, device)
        results[f"speedup_{name}"] = results[f"ours_{name}"] / results[f"baseline_fp32_{name}"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument("--backbone", default=ModelConfig.backbone)
    parser.add_argument("--image-size", type=int, default=ModelConfig.image_size, help="network input size")
    parser.add_argument("--frame-size", type=int, default=224, help="stored frame size (resized on the device)")
    parser.add_argument("--cpu-batch", type=int, default=64)
    parser.add_argument("--cuda-batch", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per measurement")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {"backbone": args.backbone, "image_size": args.image_size, "frame_size": args.frame_size,
               "views": len(ModelConfig().views)}
    for device in args.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            results[device] = "skipped: no CUDA device"
            continue
        results[device] = measure(device, args)
    out = args.out or (os.path.join(os.environ["OUT"], "classifier_throughput.json") if os.environ.get("OUT") else None)
    emit(results, out)


if __name__ == "__main__":
    main()
