import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.workspace import POLICY_INDEX, Workspace
from so101_dataengine.training.train import TrainConfig, fewer_demos_than_the_recipe, resolve_dataset, train


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


def _normalizer_state(checkpoint: Path) -> dict[str, np.ndarray]:
    """What lerobot's normalizer step in the checkpoint's preprocessor applies (its saved state)."""
    steps = json.loads((checkpoint / "policy_preprocessor.json").read_text())["steps"]
    (state_file,) = [step["state_file"] for step in steps if step["registry_name"] == "normalizer_processor"]
    return load_file(checkpoint / state_file)


def test_the_checkpoint_normalises_with_the_datasets_stats(act_checkpoint, demo_dataset):
    """A policy acts in the units it was trained in only if its preprocessor carries the dataset's stats."""
    stats = json.loads((demo_dataset.out / "meta" / "stats.json").read_text())
    applied = _normalizer_state(act_checkpoint)
    for key in ("observation.state", "action"):
        for stat in ("mean", "std"):
            np.testing.assert_allclose(applied[f"{key}.{stat}"], np.asarray(stats[key][stat]), rtol=1e-6)


def test_training_lowers_the_action_loss_on_its_dataset(act_checkpoint, demo_dataset):
    """60 steps of lerobot-train: the trained ACT's chunks (normalised, as its L1 loss sees them) are much closer
    to the dataset's actions than an untrained ACT's of the same config; a training that did not learn fails."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from torch.utils.data import default_collate

    from so101_dataengine.lerobot_compat.video import video_backend

    config = PreTrainedConfig.from_pretrained(act_checkpoint)
    config.device = "cpu"
    trained = get_policy_class("act").from_pretrained(act_checkpoint, config=config).eval()
    torch.manual_seed(0)
    untrained = get_policy_class("act")(config).eval()
    preprocess, _ = make_pre_post_processors(config, pretrained_path=str(act_checkpoint))
    fps = json.loads((demo_dataset.out / "meta" / "info.json").read_text())["fps"]
    dataset = LeRobotDataset(demo_dataset.repo_id, root=demo_dataset.out, video_backend=video_backend(),
                             delta_timestamps={"action": [i / fps for i in range(config.chunk_size)]})
    batch = preprocess(default_collate([dataset[i] for i in range(0, len(dataset), len(dataset) // 16)]))

    def action_l1(policy) -> float:
        with torch.inference_mode():
            error = (policy.predict_action_chunk(batch) - batch["action"]).abs()
        return float(error[~batch["action_is_pad"]].mean())

    trained_l1, untrained_l1 = action_l1(trained), action_l1(untrained)
    assert trained_l1 < 0.75 * untrained_l1, (trained_l1, untrained_l1)  # measured: 0.53 vs 0.88-0.96 untrained


def test_act_shortcut_finds_the_newest_trained_checkpoint(act_checkpoint, workspace, tmp_path):
    assert workspace.newest_policy("act") == act_checkpoint.resolve()
    several = Workspace(tmp_path / "ws")
    runs = [tmp_path / name / "pretrained_model" for name in ("old", "middle", "new", "deleted")]
    for run in runs:
        run.mkdir(parents=True)
        several.record_policy("act", run)
        several.record_policy("diffusion", tmp_path)  # other types, recorded in between, are not candidates
    runs[-1].rmdir()  # the newest checkpoint was removed since: the newest that still exists is meant
    assert several.newest_policy("act") == runs[2].resolve()


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


def test_a_dataset_smaller_than_the_recipes_gets_a_note_naming_both_counts(demo_dataset, tmp_path):
    """The recipe's success came from its number of demos: a user training on fewer is told before the run."""
    assert fewer_demos_than_the_recipe(demo_dataset.out) == (
        f"note: {demo_dataset.out} holds 2 episodes; the default recipe reached >= 80 % with 400 (docs/act_recipe.md)")
    big = shutil.copytree(demo_dataset.out / "meta", tmp_path / "big" / "meta")
    info = json.loads((big / "info.json").read_text())
    (big / "info.json").write_text(json.dumps({**info, "total_episodes": 400}))
    assert fewer_demos_than_the_recipe(big.parent) is None


def test_diffusion_trains_offline_with_its_own_recipe(diffusion_checkpoint, demo_dataset, workspace):
    """``--policy diffusion``: lerobot's diffusion type, from-scratch backbone, a crop that fits the 64 px images,
    the preset lr and no ACT-only fields; indexed so ``rollout --policy diffusion`` finds it."""
    config = json.loads((diffusion_checkpoint / "config.json").read_text())
    assert config["type"] == "diffusion" and config["n_obs_steps"] == 2 and config["horizon"] == 8
    assert config["pretrained_backbone_weights"] is None and config["crop_shape"] == [57, 57]
    assert config["optimizer_lr"] == 1e-4
    index = [json.loads(line) for line in (workspace.root / POLICY_INDEX).read_text().splitlines()]
    recorded = [e["kind"] for e in index if e["checkpoint"] == str(diffusion_checkpoint.resolve())]
    assert recorded == ["diffusion"], "indexed as a diffusion policy (other tests may train newer ones later)"
    run = json.loads((diffusion_checkpoint.parents[2] / "dataengine_train.json").read_text())
    assert not any("optimizer_lr_backbone" in arg for arg in run["command"])
    assert run["config"]["steps"] == 10 and run["config"]["batch_size"] == 4


def test_each_type_gets_its_recipe_where_the_user_gives_nothing(demo_dataset, tmp_path):
    from so101_dataengine.training.train import POLICY_RECIPES, lerobot_train_command

    dataset = resolve_dataset(str(demo_dataset.out))
    for policy in ("act", "diffusion"):
        recipe = POLICY_RECIPES[policy]
        command = lerobot_train_command(TrainConfig(dataset=str(demo_dataset.out), policy=policy), dataset,
                                        tmp_path, "cpu")
        assert f"--policy.type={policy}" in command and f"--steps={recipe.steps}" in command
        assert f"--batch_size={recipe.batch_size}" in command
        assert [a for a in command if a.startswith("--policy.optimizer_lr")] == [
            f"--policy.{name}={recipe.learning_rate}" for name in recipe.lr_fields]
    act = lerobot_train_command(TrainConfig(dataset=str(demo_dataset.out), steps=7, learning_rate=3e-5), dataset,
                                tmp_path, "cpu")
    assert "--steps=7" in act and "--policy.optimizer_lr_backbone=3e-05" in act
    assert not any(a.startswith("--policy.crop_shape") for a in act)
    assert fewer_demos_than_the_recipe(demo_dataset.out, "diffusion") is None  # no measured recipe to compare with


def test_untrainable_types_are_refused_with_the_reason(demo_dataset, workspace):
    with pytest.raises(DataEngineError, match="unknown policy 'tdmpc': use one of act, diffusion"):
        train(TrainConfig(dataset=str(demo_dataset.out), policy="tdmpc"), workspace)
    for policy in ("pi0", "pi05"):  # smolvla: tests/training/test_vla_offline.py
        with pytest.raises(DataEngineError, match=rf"{policy} cannot be trained offline here: .*hub files.*"
                                                  r"dataengine/hooks/templates"):
            train(TrainConfig(dataset=str(demo_dataset.out), policy=policy), workspace)


def test_epochs_become_steps_for_the_datasets_size_capped_by_steps(demo_dataset, workspace):
    """A grown version trained with ``--epochs`` sees each frame as often as a small one; ``--steps`` caps it."""
    from so101_dataengine.training.train import with_epochs

    frames = json.loads((demo_dataset.out / "meta" / "info.json").read_text())["total_frames"]
    config = TrainConfig(dataset=str(demo_dataset.out), epochs=2.5, batch_size=8)
    assert with_epochs(config, demo_dataset.out).steps == -(-5 * frames // 16)  # ceil(2.5 x frames / 8)
    capped = TrainConfig(dataset=str(demo_dataset.out), epochs=1000, steps=7, batch_size=8)
    assert with_epochs(capped, demo_dataset.out).steps == 7
    recipe = TrainConfig(dataset=str(demo_dataset.out), epochs=1)  # the type's batch size when none is given
    assert with_epochs(recipe, demo_dataset.out).steps == -(-frames // 128)
    with pytest.raises(DataEngineError, match="--epochs must be above 0"):
        train(TrainConfig(dataset=str(demo_dataset.out), epochs=0), workspace)
    with pytest.raises(DataEngineError, match="--epochs must be above 0 and finite, got inf"):
        train(TrainConfig(dataset=str(demo_dataset.out), epochs=float("inf"), steps=10), workspace)


def test_epochs_that_give_a_whole_number_of_steps_give_exactly_that_number():
    """The payoff's students get ``--epochs`` = teacher's steps x batch / base frames: on the base itself that
    must give the teacher's steps again, not one more from float noise (16 / 423 x 423 / 4 = 4.0000000001)."""
    from so101_dataengine.training.train import steps_for_epochs

    for frames in range(100, 3000, 7):
        for steps, batch in ((4, 4), (2000, 128), (3, 64)):
            assert steps_for_epochs(steps * batch / frames, frames, batch, None) == steps
    assert steps_for_epochs(0.01, 423, 4, None) == 2  # 1.0575 steps: a partial step still counts
