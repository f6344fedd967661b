import json

import pytest

from dataengine.errors import DataEngineError
from dataengine.train import TrainConfig, resolve_dataset, train


def test_train_produces_a_lerobot_checkpoint_at_exactly_the_requested_step(act_checkpoint, demo_dataset):
    """60 steps at batch 8 over ~400 frames crosses epoch ends: the run must not stop at one."""
    frames = json.loads((demo_dataset.out / "meta" / "info.json").read_text())["total_frames"]
    assert frames / 8 < 60
    run = act_checkpoint.parents[2]
    assert json.loads((run / "checkpoints" / "last" / "training_state" / "training_step.json").read_text())["step"] == 60
    for name in ["config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"]:
        assert (act_checkpoint / name).is_file()
    assert json.loads((act_checkpoint / "config.json").read_text())["type"] == "act"
    assert json.loads((act_checkpoint / "config.json").read_text())["pretrained_backbone_weights"] is None


def test_act_shortcut_finds_the_newest_trained_checkpoint(act_checkpoint, workspace):
    assert workspace.newest_policy("act") == act_checkpoint.resolve()


def test_dataset_resolution_and_bad_input(demo_dataset, workspace, tmp_path):
    resolved = resolve_dataset(str(demo_dataset.out))
    assert resolved.repo_id == demo_dataset.repo_id
    with pytest.raises(DataEngineError, match="neither a local directory nor in the lerobot cache"):
        resolve_dataset("nobody/nothing")
    with pytest.raises(DataEngineError, match="not a LeRobot v3 dataset"):
        resolve_dataset(str(tmp_path))
    with pytest.raises(DataEngineError, match="--steps must be at least 1"):
        train(TrainConfig(dataset=str(demo_dataset.out), steps=0), workspace)
    with pytest.raises(DataEngineError, match="nothing to resume"):
        train(TrainConfig(dataset=str(demo_dataset.out), out=tmp_path / "new", resume=True), workspace)
