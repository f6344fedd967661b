"""Shared fixtures. Everything is real: MuJoCo physics and EGL rendering, lerobot's writer, loader and trainer."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded: tests use only what the project makes

import pytest

from dataengine.config import DemosConfig
from dataengine.demos import record_demos
from scenes.pick_place import PickPlaceConfig

SMALL_IMAGE = 64
"""Small frames keep CPU rendering and encoding fast in tests; the code paths are the same as at 224 px."""


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """A real 2-episode dataset made by ``dataengine demos``; returns its config (``.out`` is the root)."""
    out = tmp_path_factory.mktemp("datasets") / "demos"
    config = DemosConfig(out=out, n=2, repo_id="local/test_demos", seed=100,
                         scene=PickPlaceConfig(image_size=SMALL_IMAGE))
    record_demos(config)
    return config
