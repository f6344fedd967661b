"""The network: one timm backbone shared by every camera view, pooled features concatenated, a linear head.

Input is uint8 frames ``(B, V, H, W, 3)`` at any size: conversion, resizing (antialiased) and ImageNet
normalisation happen on the device inside ``forward``, so scoring ships only uint8 pixels to the GPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading
from so101_dataengine.base.preflight import check_device

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def create_backbone(name: str) -> nn.Module:
    """A timm model without classifier (global-pooled features), randomly initialised: never a download."""
    import timm

    if not timm.is_model(name):
        raise DataEngineError(f"unknown timm backbone {name!r}: pick one from timm.list_models(), e.g. regnetx_002")
    return timm.create_model(name, pretrained=False, num_classes=0)


def feature_width(backbone: nn.Module) -> int:
    """Width of the pooled features: timm's ``head_hidden_size`` where a pre-logits head (e.g. MobileNetV3's
    1x1 conv after pooling) widens ``num_features``."""
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


class SuccessNet(nn.Module):
    def __init__(self, backbone: str, views: int, image_size: int):
        super().__init__()
        self.image_size = image_size
        self.views = views
        self.backbone = create_backbone(backbone)
        self.head = nn.Linear(feature_width(self.backbone) * views, 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, V, H, W, 3)`` -> normalised float ``(B*V, 3, S, S)``, channels-last."""
        b, v, h, w, _ = frames.shape
        x = frames.reshape(b * v, h, w, 3).permute(0, 3, 1, 2).float()
        if (h, w) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared ``(B*V, 3, S, S)`` -> ``(B,)`` success logits."""
        features = self.backbone(x)
        return self.head(features.reshape(-1, self.views * features.shape[-1])).squeeze(-1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.logits(self.prepare(frames))


def load_weights(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing, unreadable or foreign file (safetensors' Rust reader raises
    its own ``SafetensorError``, e.g. "header too large" for any other file) is one error line naming it and ``fix``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if Path(path).is_dir():  # safetensors says only "No such device" of one
        raise DataEngineError(f"{path} is a directory, not a safetensors file: {fix}")
    with reading(path, fix, "not a safetensors file", also=(SafetensorError,)):
        return load_file(path)


def load_backbone_weights(net: SuccessNet, path: Path, backbone: str) -> None:
    """Start the backbone from a local safetensors file (e.g. ImageNet weights saved once); shapes must fit."""
    path = Path(path)
    loaded = load_weights(path, f"pass a local .safetensors file of {backbone} as --pretrained")
    weights = {k: v for k, v in loaded.items() if not k.startswith(("fc.", "head.", "classifier."))}
    try:
        missing, _unexpected = net.backbone.load_state_dict(weights, strict=False)
    except RuntimeError as error:
        raise DataEngineError(f"--pretrained {path} does not fit backbone {backbone} "
                              f"({str(error).splitlines()[1].strip()}): pass weights of {backbone}") from None
    if len(missing) == len(net.backbone.state_dict()):
        raise DataEngineError(f"--pretrained {path} holds no weights of backbone {backbone}: "
                              f"pass weights of {backbone}")


def pick_device(device: str | None) -> torch.device:
    """The torch device to train or score on; a name torch does not know is one error line, not torch's
    ``RuntimeError`` listing its two dozen backends."""
    check_device("--device", device)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DataEngineError(f"--device {device} but no CUDA GPU is visible: use --device cpu")
    return torch.device(device)
