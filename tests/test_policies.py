"""ACT behind the batched interface behaves exactly like lerobot's own single-env evaluation path."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dataengine.errors import DataEngineError
from rollouts.policies import ActPolicy, inspect_act_checkpoint
from scenes.pick_place import PickPlaceConfig, PickPlaceEnv


def _lerobot_reference_actions(checkpoint, observations):
    """lerobot's documented eval path: processors from the checkpoint, policy.reset(), select_action per step."""
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    policy = ACTPolicy.from_pretrained(checkpoint).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(checkpoint))
    policy.reset()
    actions = []
    for obs in observations:
        batch = {"observation.state": torch.from_numpy(obs.state)[None]}
        for key, image in obs.images.items():
            batch[key] = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            actions.append(post(policy.select_action(pre(batch)))[0].numpy())
    return np.stack(actions)


def test_per_env_queues_match_lerobot_for_staggered_episodes(act_checkpoint):
    """Two environments whose episodes start at different steps each get exactly lerobot's single-env actions."""
    size = inspect_act_checkpoint(act_checkpoint)
    env_a, env_b = (PickPlaceEnv(PickPlaceConfig(image_size=size)) for _ in range(2))
    obs_a = [env_a.reset(1)] + [env_a.step(np.zeros(6)) for _ in range(11)]
    obs_b = [env_b.reset(2)] + [env_b.step(np.zeros(6)) for _ in range(11)]
    policy = ActPolicy(act_checkpoint, device="cpu")
    policy.reset(0, env_a, 1)
    got_a, got_b = [], []
    for t in range(12):
        if t == 3:
            policy.reset(1, env_b, 2)  # env b starts its episode 3 steps later
        if t >= 3:
            a, b = policy.act([0, 1], [obs_a[t], obs_b[t - 3]])
            got_a.append(a)
            got_b.append(b)
        else:
            got_a.append(policy.act([0], [obs_a[t]])[0])
    np.testing.assert_allclose(np.stack(got_a), _lerobot_reference_actions(act_checkpoint, obs_a), atol=1e-4)
    np.testing.assert_allclose(np.stack(got_b), _lerobot_reference_actions(act_checkpoint, obs_b[:9]), atol=1e-4)


def test_temporal_ensembling_runs_one_policy_call_per_step(act_checkpoint):
    env = PickPlaceEnv(PickPlaceConfig(image_size=inspect_act_checkpoint(act_checkpoint)))
    policy = ActPolicy(act_checkpoint, device="cpu", temporal_ensemble_coeff=0.01)
    calls = []
    original = policy.predict_chunks
    policy.predict_chunks = lambda obs: calls.append(len(obs)) or original(obs)
    policy.reset(0, env, 0)
    obs = env.reset(0)
    for _ in range(4):
        obs = env.step(policy.act([0], [obs])[0])
    assert calls == [1, 1, 1, 1]


def _copy_with_config(checkpoint, tmp_path, edit):
    copy = tmp_path / "pretrained_model"
    shutil.copytree(checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_checkpoint_needing_a_missing_camera_is_refused_with_the_list(act_checkpoint, tmp_path):
    def add_camera(config):
        config["input_features"]["observation.images.side"] = {"type": "VISUAL", "shape": [3, 64, 64]}

    with pytest.raises(DataEngineError, match="needs observation.images.side which the scene does not provide"):
        inspect_act_checkpoint(_copy_with_config(act_checkpoint, tmp_path, add_camera))


def test_non_act_and_non_checkpoints_are_refused(act_checkpoint, tmp_path):
    with pytest.raises(DataEngineError, match="'diffusion' policy"):
        inspect_act_checkpoint(_copy_with_config(act_checkpoint, tmp_path, lambda c: c.update(type="diffusion")))
    with pytest.raises(DataEngineError, match="not a LeRobot checkpoint"):
        inspect_act_checkpoint(tmp_path)


def test_nan_producing_checkpoint_fails_clearly(act_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(act_checkpoint, broken)
    weights = load_file(broken / "model.safetensors")
    weights["model.action_head.bias"] = torch.full_like(weights["model.action_head.bias"], float("nan"))
    save_file(weights, broken / "model.safetensors")
    env = PickPlaceEnv(PickPlaceConfig(image_size=inspect_act_checkpoint(broken)))
    policy = ActPolicy(broken, device="cpu")
    policy.reset(0, env, 0)
    with pytest.raises(DataEngineError, match="NaN"):
        policy.act([0], [env.reset(0)])
