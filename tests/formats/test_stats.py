import numpy as np

from so101_dataengine.formats.stats import ImageStats, VectorStats, merge_all


def test_image_stats_are_exact_and_merge_exactly():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 12, 10, 3), dtype=np.uint8)
    parts = [ImageStats(), ImageStats()]
    parts[0].update(frames[:11])
    parts[1].update(frames[11:])
    stats = merge_all([{"img": parts[0]}, {"img": parts[1]}])["img"].to_lerobot()
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(stats["mean"].ravel(), pixels.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats["std"].ravel(), pixels.std(0), atol=1e-12)
    np.testing.assert_allclose(stats["min"].ravel(), pixels.min(0))
    np.testing.assert_allclose(stats["max"].ravel(), pixels.max(0))
    for key, q in [("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)]:
        np.testing.assert_allclose(stats[key].ravel(), np.quantile(pixels, q, axis=0), atol=1e-12)
    assert stats["mean"].shape == (3, 1, 1) and stats["count"].tolist() == [30]


def test_uniform_noise_std_is_not_lerobots_overflowed_value():
    """lerobot 0.4.4 reports std ~0.0002 for uniform uint8 noise (batch**2 overflows); the truth is ~0.29."""
    frames = np.random.default_rng(1).integers(0, 256, (180, 32, 32, 3), dtype=np.uint8)
    stats = ImageStats()
    stats.update(frames)
    assert np.all(np.abs(stats.to_lerobot()["std"] - 0.2887) < 0.005)


def test_vector_stats_match_numpy():
    values = np.random.default_rng(2).normal(size=(100, 6))
    stats = VectorStats()
    stats.update(values[:40])
    stats.update(values[40:])
    out = stats.to_lerobot()
    np.testing.assert_allclose(out["std"], values.std(0))
    np.testing.assert_allclose(out["q90"], np.quantile(values, 0.9, axis=0))
