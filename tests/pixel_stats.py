"""The reference for a dataset's stats, independent of the project's stats code (``dataengine/formats/stats.py``): mean and
std per image channel computed in float64 over every pixel that lerobot's own loader returns, and of every vector
feature over every row lerobot reads, which a dataset's ``meta/stats.json`` must equal. A test comparing written
stats with the project's own computation would pass whatever bug that computation has."""

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


VECTORS = ("observation.state", "action")


def assert_stats_exact(dataset, stats: dict, cameras: list[str], vectors: tuple[str, ...] = VECTORS) -> None:
    """``stats`` (a ``meta/stats.json``) equals the float64 reference over the whole ``LeRobotDataset``: image
    mean/std within 1e-6 (float32 pixels through the decoder), vector mean/std within rtol 1e-6."""
    for key, (mean, std) in exact_image_mean_std(dataset, cameras).items():
        np.testing.assert_allclose(np.ravel(stats[key]["mean"]), mean, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(np.ravel(stats[key]["std"]), std, atol=1e-6, err_msg=key)
    columns = dataset.hf_dataset.with_format("numpy")
    for key in vectors:
        values = np.asarray(columns[key], dtype=np.float64)
        np.testing.assert_allclose(stats[key]["mean"], values.mean(0), rtol=1e-6, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(stats[key]["std"], values.std(0), rtol=1e-6, atol=1e-9, err_msg=key)
