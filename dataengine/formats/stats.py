"""Exact, floating-point statistics for LeRobot v3 datasets (``meta/stats.json`` and per-episode stats).

Why not lerobot's own: lerobot 0.4.4's ``RunningQuantileStats.update`` squares the uint8 pixel batch (``batch**2``
wraps around), so image std comes out ~100x too small (~0.002 instead of ~0.29) and normalised pixels blow up to
-245..312 in training; it also samples images. Here:

* images: a 256-bin histogram per channel of *every* pixel of *every* frame, as the trainer decodes it from the
  video. From counts, mean/std/min/max and quantiles are exact (quantiles equal ``np.quantile(..., "linear")``)
  and histograms merge exactly across episodes and datasets;
* vectors (state, action, ...): all values kept in float64, quantiles by ``np.quantile``.

Output keys and shapes are lerobot 0.4.4's: min, max, mean, std, count, q01, q10, q50, q90, q99; images in [0, 1]
with shape (3, 1, 1), vectors (dim,), count (1,) = number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)
_LEVELS = np.arange(256, dtype=np.float64)


def _quantile_key(q: float) -> str:
    return f"q{int(round(q * 100)):02d}"


@dataclass
class ImageStats:
    """Per-channel pixel histograms of uint8 RGB frames."""

    histogram: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), dtype=np.int64))
    frames: int = 0

    def update(self, frames: np.ndarray) -> None:
        """Add frames of shape (N, H, W, 3), uint8."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
        for c in range(3):
            self.histogram[c] += np.bincount(frames[..., c].ravel(), minlength=256)
        self.frames += frames.shape[0]

    def merge(self, other: "ImageStats") -> None:
        self.histogram += other.histogram
        self.frames += other.frames

    def to_lerobot(self) -> dict[str, np.ndarray]:
        counts = self.histogram.astype(np.float64)
        total = counts.sum(axis=1)
        mean = counts @ _LEVELS / total
        var = counts @ (_LEVELS**2) / total - mean**2
        present = self.histogram > 0
        stats = {
            "min": np.array([_LEVELS[p].min() for p in present]),
            "max": np.array([_LEVELS[p].max() for p in present]),
            "mean": mean,
            "std": np.sqrt(np.maximum(var, 0.0)),
        }
        for q in QUANTILES:
            stats[_quantile_key(q)] = np.array([_histogram_quantile(h, q) for h in self.histogram])
        out = {k: (v / 255.0).reshape(3, 1, 1) for k, v in stats.items()}
        out["count"] = np.array([self.frames])
        return out


def _histogram_quantile(histogram: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) of the values a histogram of 0..255 counts."""
    cumulative = np.cumsum(histogram)
    position = q * (cumulative[-1] - 1)
    lower, upper = int(np.floor(position)), int(np.ceil(position))
    value_at = lambda rank: float(np.searchsorted(cumulative, rank, side="right"))  # noqa: E731
    low = value_at(lower)
    return low + (value_at(upper) - low) * (position - lower)


@dataclass
class VectorStats:
    """All values of a (N, dim) numeric feature, in float64."""

    chunks: list[np.ndarray] = field(default_factory=list)

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.chunks.append(values.reshape(values.shape[0], -1))

    def merge(self, other: "VectorStats") -> None:
        self.chunks.extend(other.chunks)

    def to_lerobot(self) -> dict[str, np.ndarray]:
        values = np.concatenate(self.chunks, axis=0)
        stats = {
            "min": values.min(axis=0),
            "max": values.max(axis=0),
            "mean": values.mean(axis=0),
            "std": values.std(axis=0),
            "count": np.array([values.shape[0]]),
        }
        for q in QUANTILES:
            stats[_quantile_key(q)] = np.quantile(values, q, axis=0)
        return stats


FeatureStats = ImageStats | VectorStats


def merge_all(per_episode: list[dict[str, FeatureStats]]) -> dict[str, FeatureStats]:
    """Exact dataset-level accumulators from per-episode ones (inputs are left unchanged)."""
    merged: dict[str, FeatureStats] = {}
    for episode in per_episode:
        for key, stats in episode.items():
            target = merged.setdefault(key, type(stats)())
            target.merge(stats)
    return merged


def to_lerobot(stats: dict[str, FeatureStats]) -> dict[str, dict[str, np.ndarray]]:
    return {key: s.to_lerobot() for key, s in stats.items()}
