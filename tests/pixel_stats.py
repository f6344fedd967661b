"""The reference for image stats: mean and std per channel computed in float64 over every pixel that lerobot's own
loader returns, which a dataset's ``meta/stats.json`` must equal."""

from __future__ import annotations

import numpy as np


def exact_image_mean_std(dataset, cameras: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{camera key: (mean (3,), std (3,))}`` over every frame of a ``LeRobotDataset``."""
    sums = {key: np.zeros(3) for key in cameras}
    squares = {key: np.zeros(3) for key in cameras}
    count = 0
    for i in range(len(dataset)):
        item = dataset[i]
        for key in cameras:
            pixels = item[key].double().reshape(3, -1).numpy()
            sums[key] += pixels.sum(1)
            squares[key] += (pixels**2).sum(1)
        count += item[cameras[0]].shape[1] * item[cameras[0]].shape[2]
    means = {key: sums[key] / count for key in cameras}
    return {key: (means[key], np.sqrt(squares[key] / count - means[key] ** 2)) for key in cameras}
