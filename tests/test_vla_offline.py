"""SmolVLA, a VLA, through the engine offline: ``dataengine train --policy smolvla`` on a tiny SmolVLM written here
(``dataengine.tiny_vlm``: random weights, a tokenizer trained here), then ``dataengine rollout`` of its checkpoint.
Real lerobot code all the way: SmolVLA's constructor reads the VLM's config and processor, its preprocessor
tokenizes the task string with the VLM's tokenizer, lerobot-train trains it, the engine loads it from the
checkpoint. (Pi0 and Pi0.5 cannot be built offline: docs/design.md, "Rollouts", says why.)"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers", reason="SmolVLA needs transformers (the project's 'vla' extra)")

from dataengine.cli import main  # noqa: E402
from dataengine.config import RolloutConfig  # noqa: E402
from dataengine.errors import DataEngineError  # noqa: E402
from dataengine.executors import ExecutorConfig  # noqa: E402
from dataengine.rollout import rollout  # noqa: E402
from dataengine.train import TrainConfig, train  # noqa: E402
from rollouts.store import EpisodeStore  # noqa: E402
from scenes.pick_place import PickPlaceConfig  # noqa: E402

TINY_SMOLVLA = ["--policy.chunk_size=10", "--policy.n_action_steps=5", "--policy.num_steps=2"]
"""Chunks of 10 with 5 executed and 2 flow-matching steps, so CPU training and inference stay fast."""


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from dataengine.tiny_vlm import write_tiny_vlm

    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-smolvlm")


def test_smolvla_trains_on_a_local_vlm_and_rolls_out(tiny_vlm, demo_dataset, workspace, tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["--workspace", str(workspace.root), "train", "--policy", "smolvla", "--dataset",
                 str(demo_dataset.out), "--steps", "3", "--batch-size", "4", "--num-workers", "0", "--device", "cpu",
                 "--out", str(out), "--", f"--policy.vlm_model_name={tiny_vlm}", *TINY_SMOLVLA]) == 0
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["type"] == "smolvla" and config["vlm_model_name"] == str(tiny_vlm)
    assert config["resize_imgs_with_padding"] == [64, 64]  # the tiny VLM's vision input, read from its config
    preprocessor = (checkpoint / "policy_preprocessor.json").read_text()
    assert f'"tokenizer_name": "{tiny_vlm}"' in preprocessor
    assert workspace.newest_policy("smolvla") == checkpoint.resolve()

    run = tmp_path / "rollout"
    summary = rollout(RolloutConfig(policy="smolvla", n=2, out=run, num_envs=2, chunk_size=2,
                                    scene=PickPlaceConfig(image_size=None, max_episode_steps=12),
                                    executor=ExecutorConfig(workers=1)), workspace)
    assert summary.episodes == 2
    store = EpisodeStore.open(run)
    for episode in (0, 1):
        meta = store.read_meta(episode)
        assert meta["policy"]["kind"] == "smolvla" and meta["policy"]["path"] == str(checkpoint.resolve())
        assert meta["length"] == 12 and store.read(episode).actions.shape == (12, 6)


def test_smolvla_without_a_local_vlm_is_one_error_line(demo_dataset, workspace, tmp_path):
    with pytest.raises(DataEngineError, match=r"smolvla builds its VLM from hub files by default "
                                              r"\(HuggingFaceTB/SmolVLM2-500M-Video-Instruct\): pass a local one"):
        train(TrainConfig(dataset=str(demo_dataset.out), policy="smolvla"), workspace)
    with pytest.raises(DataEngineError, match=r"is not a local VLM directory \(no config.json\)"):
        train(TrainConfig(dataset=str(demo_dataset.out), policy="smolvla",
                          extra_args=["--policy.vlm_model_name=HuggingFaceTB/SmolVLM2-500M-Video-Instruct"]),
              workspace)
    assert not list((workspace.root / "train").glob("smolvla-*")), "refused before any run directory is made"
