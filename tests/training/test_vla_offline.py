"""SmolVLA, a VLA, through the engine offline: ``dataengine train --policy smolvla`` on a tiny SmolVLM written here
(``so101_dataengine.training.tiny_vlm``: random weights, a tokenizer trained here), then a rollout of its checkpoint. Real lerobot
code all the way: SmolVLA's constructor reads the VLM's config and processor, its preprocessor tokenizes the task
string with the VLM's tokenizer, lerobot-train trains it, the engine loads it from the checkpoint. (Pi0 and Pi0.5
cannot be built offline: docs/design.md, "Rollouts", says why.)"""

from __future__ import annotations

import json
import shutil

import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.lerobot_policy import inspect_checkpoint
from so101_dataengine.rollouts.run import rollout
from so101_dataengine.scenes.pick_place import PickPlaceConfig
from so101_dataengine.training.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_smolvla_trains_on_a_local_vlm_and_rolls_out(smolvla_checkpoint, tiny_vlm, workspace, tmp_path):
    config = json.loads((smolvla_checkpoint / "config.json").read_text())
    assert config["type"] == "smolvla" and config["vlm_model_name"] == str(tiny_vlm)
    assert config["resize_imgs_with_padding"] == [64, 64]  # the tiny VLM's vision input, read from its config
    preprocessor = json.loads((smolvla_checkpoint / "policy_preprocessor.json").read_text())
    assert any(step.get("config", {}).get("tokenizer_name") == str(tiny_vlm) for step in preprocessor["steps"])
    assert workspace.newest_policy("smolvla") == smolvla_checkpoint.resolve()

    run = tmp_path / "rollout"
    summary = rollout(RolloutConfig(policy="smolvla", n=2, out=run, num_envs=2, chunk_size=2,
                                    scene=PickPlaceConfig(image_size=None, max_episode_steps=12),
                                    executor=ExecutorConfig(workers=1)), workspace)
    assert summary.episodes == 2
    store = EpisodeStore.open(run)
    for episode in (0, 1):
        meta = store.read_meta(episode)
        assert meta["policy"]["kind"] == "smolvla" and meta["policy"]["path"] == str(smolvla_checkpoint.resolve())
        assert meta["length"] == 12 and store.read(episode).actions.shape == (12, 6)


def test_a_checkpoint_whose_vlm_directory_is_gone_is_one_error_line(smolvla_checkpoint, tmp_path):
    copy = tmp_path / "pretrained_model"
    shutil.copytree(smolvla_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "vlm_model_name": str(tmp_path / "deleted-vlm")}))
    with pytest.raises(DataEngineError, match=r"trained on the VLM directory .*deleted-vlm \(vlm_model_name\), "
                                              r"which is gone"):
        inspect_checkpoint(copy)


def test_smolvla_without_a_local_vlm_is_one_error_line(demo_dataset, workspace, capsys):
    runs = set((workspace.root / "train").glob("*"))
    assert main(["--workspace", str(workspace.root), "train", "--policy", "smolvla", "--dataset",
                 str(demo_dataset.out)]) == 2
    assert ("smolvla builds its VLM from hub files by default (HuggingFaceTB/SmolVLM2-500M-Video-Instruct): pass a "
            "local one after '--' as --policy.vlm_model_name=DIR") in capsys.readouterr().err
    with pytest.raises(DataEngineError, match=r"is not a local VLM directory \(no config.json\)"):
        train(TrainConfig(dataset=str(demo_dataset.out), policy="smolvla",
                          extra_args=["--policy.vlm_model_name=HuggingFaceTB/SmolVLM2-500M-Video-Instruct"]),
              workspace)
    assert set((workspace.root / "train").glob("*")) == runs, "refused before any run directory is made"
