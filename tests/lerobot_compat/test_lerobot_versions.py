"""The engine on both lerobot lines (0.4.4 on Python 3.11, 0.6.1 on Python >= 3.12) through one adapter,
``so101_dataengine.lerobot_compat``: every lerobot name it lists resolves on the installed lerobot, a broken config is
one line naming the line that wrote it, and, where the other stack is installed (``.ci/run`` installs both and
names it in ``$DATAENGINE_OTHER_PYTHON``), a checkpoint and a dataset made there are used here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ACT

from so101_dataengine import lerobot_compat
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.rollouts.lerobot_policy import inspect_checkpoint
from so101_dataengine.rollouts.policies import LeRobotPolicy
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

OTHER_PYTHON = "DATAENGINE_OTHER_PYTHON"
"""The other stack's interpreter (a venv's bin/python with the project installed), set by ``.ci/run``."""


def test_every_lerobot_name_of_the_adapter_resolves_on_the_installed_lerobot():
    for name in lerobot_compat._NAMES:
        assert getattr(lerobot_compat, name) is not None, name
    reader = lerobot_compat.dataset_reader_class()
    assert callable(reader._query_videos) and callable(reader._query_hf_dataset)
    with pytest.raises(AttributeError):
        lerobot_compat.no_such_lerobot_name  # noqa: B018


def test_info_json_from_the_adapter_is_what_lerobots_loader_reads(tmp_path):
    features = dict(lerobot_compat.DEFAULT_FEATURES)
    info = lerobot_compat.empty_dataset_info(30, features, "so_follower")
    assert isinstance(info, dict) and info["fps"] == 30 and info["codebase_version"] == "v3.0"
    lerobot_compat.write_info({**info, "total_episodes": 2}, tmp_path)
    loader = "lerobot.datasets.io_utils" if lerobot_compat.LEROBOT_06 else "lerobot.datasets.utils"
    loaded = __import__(loader, fromlist=["load_info"]).load_info(tmp_path)
    assert (loaded.total_episodes if lerobot_compat.LEROBOT_06 else loaded["total_episodes"]) == 2


def test_a_broken_config_of_the_installed_line_says_the_config_is_invalid(act_checkpoint, tmp_path):
    """Written by the installed line (the fixture was trained here), yet unparseable: retraining is the fix."""
    import json
    import shutil

    broken = shutil.copytree(act_checkpoint, tmp_path / "broken")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "chunk_size": "ten"}))
    writer, same = lerobot_compat.policy_config_writer(config)
    assert same and writer == lerobot_compat.LINES[lerobot_compat.LEROBOT_06]
    with pytest.raises(DataEngineError, match=rf"written by {writer}: the config itself is invalid") as error:
        inspect_checkpoint(broken)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def other_python() -> Path:
    python = os.environ.get(OTHER_PYTHON)
    if not python:
        pytest.skip(f"${OTHER_PYTHON} is not set: no other lerobot stack to exchange checkpoints with (.ci/run "
                    "sets it)")
    return Path(python)


def _run_other(python: Path, *args: str) -> None:
    """``dataengine ARGS`` on the other stack, offline, its output shown only when it fails."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(python), "-m", "so101_dataengine.cli", *args], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_checkpoint_trained_on_the_other_lerobot_line_rolls_out_here(other_python, demo_dataset, tmp_path):
    out = tmp_path / "other-train"
    _run_other(other_python, "--workspace", str(tmp_path / "other-workspace"), "train", "--dataset",
               str(demo_dataset.out), "--steps", "2", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
               "--no-frame-cache", "--out", str(out), "--", *TINY_ACT)
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    size = inspect_checkpoint(checkpoint)
    env = PickPlaceEnv(PickPlaceConfig(image_size=size))
    try:
        policy = LeRobotPolicy(checkpoint, device="cpu")
        policy.reset(0, env, 3)
        actions = np.stack([policy.act([0], [env.reset(3)])[0] for _ in range(3)])
    finally:
        env.close()
    assert actions.shape == (3, 6) and np.isfinite(actions).all()


def test_a_dataset_written_on_the_other_lerobot_line_loads_here(other_python, tmp_path):
    from so101_dataengine.lerobot_compat.video import video_backend

    out = tmp_path / "other-demos"
    _run_other(other_python, "demos", "--n", "1", "--image-size", "32", "--vcodec", "h264", "--out", str(out),
               "--repo-id", "local/other_demos")
    dataset = lerobot_compat.LeRobotDataset("local/other_demos", root=out, video_backend=video_backend())
    sample = dataset[len(dataset) - 1]
    assert dataset.meta.total_episodes == 1
    assert sample["observation.images.wrist"].shape == (3, 32, 32)
