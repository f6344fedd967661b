"""LeRobot checkpoints behind the batched interface behave exactly like lerobot's own single-env evaluation path.

The reference is lerobot's documented loop, one fresh policy per environment: config and processors from the
checkpoint, ``policy.reset()``, ``select_action`` per step, the postprocessor on each action. Diffusion samples
noise: the engine draws each episode's noise (prior and every DDPM step) from a generator seeded with the
episode's seed, so the reference seeds torch's global generator with the same seed after ``reset()`` and passes the
prior it draws from it as ``select_action(noise=...)``: both paths then consume one stream of random numbers in the
same order, and their actions agree exactly, not merely in distribution. SmolVLA's flow matching likewise: the
engine draws each chunk's noise from the episode's generator, the reference passes the same draws.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.rollouts.lerobot_policy import DRIVES, inspect_checkpoint
from so101_dataengine.rollouts.policies import LeRobotPolicy
from so101_dataengine.scenes.pick_place import TASK, PickPlaceConfig, PickPlaceEnv

EXACT = dict(rtol=1e-5, atol=1e-5)
"""Equal to float32 rounding (actions are degrees, up to ~100): batches of 2 and of 1, or a chunk unnormalised at
once instead of action by action, may round differently in the last bit; any real difference is orders larger."""


def _reference_actions(checkpoint, observations, seed=0, edit=None):
    """lerobot's own single-environment path for one episode (a fresh policy, as an eval script would make)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    config = PreTrainedConfig.from_pretrained(checkpoint)
    config.device = "cpu"
    if edit is not None:
        edit(config)
    policy = get_policy_class(config.type).from_pretrained(checkpoint, config=config).eval()
    pre, post = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    policy.reset()
    torch.manual_seed(seed)
    actions = []
    for t, obs in enumerate(observations):
        batch = {"observation.state": torch.from_numpy(obs.state)[None]}
        for key, image in obs.images.items():
            batch[key] = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        if DRIVES[config.type].language:  # as lerobot's env processing adds the env's task string
            batch["task"] = TASK
        kwargs = {}
        if config.type == "diffusion" and t % config.n_action_steps == 0:  # select_action generates now
            kwargs["noise"] = torch.randn((1, config.horizon, config.action_feature.shape[0]))
        elif config.type == "smolvla" and t % config.n_action_steps == 0:
            kwargs["noise"] = torch.randn((1, config.chunk_size, config.max_action_dim))
        with torch.inference_mode():
            actions.append(post(policy.select_action(pre(batch), **kwargs))[0].numpy())
    return np.stack(actions)


def _episode(size, seed, steps):
    env = PickPlaceEnv(PickPlaceConfig(image_size=size))
    return env, [env.reset(seed)] + [env.step(np.zeros(6)) for _ in range(steps - 1)]


def _staggered(policy, size, steps=12, delay=3):
    """Slot 0 runs an episode (seed 1); slot 1 starts its own (seed 2) ``delay`` steps later; one batched call
    per step for the active slots. Returns both episodes' observations and the actions each slot got."""
    env_a, obs_a = _episode(size, 1, steps)
    env_b, obs_b = _episode(size, 2, steps - delay)
    policy.reset(0, env_a, 1)
    got_a, got_b = [], []
    for t in range(steps):
        if t == delay:
            policy.reset(1, env_b, 2)
        if t >= delay:
            a, b = policy.act([0, 1], [obs_a[t], obs_b[t - delay]])
            got_a.append(a)
            got_b.append(b)
        else:
            got_a.append(policy.act([0], [obs_a[t]])[0])
    return (obs_a, np.stack(got_a)), (obs_b, np.stack(got_b))


@pytest.fixture(params=["act", "diffusion", "smolvla"])
def checkpoint(request):
    return request.getfixturevalue(f"{request.param}_checkpoint")


def test_staggered_environments_each_get_exactly_lerobots_single_env_actions(checkpoint):
    """Two environments whose episodes start at different steps (so their chunks are generated at different
    steps, and Diffusion's histories differ) each get exactly lerobot's single-env actions."""
    size = inspect_checkpoint(checkpoint)
    policy = LeRobotPolicy(checkpoint, device="cpu")
    (obs_a, got_a), (obs_b, got_b) = _staggered(policy, size)
    np.testing.assert_allclose(got_a, _reference_actions(checkpoint, obs_a, seed=1), **EXACT)
    np.testing.assert_allclose(got_b, _reference_actions(checkpoint, obs_b, seed=2), **EXACT)
    assert not np.allclose(got_a[:4], got_a[4:8])  # new chunks, not a constant: the comparison means something


def _ensemble(config) -> None:
    """lerobot's own temporal ensembling (``ACTTemporalEnsembler`` inside ``select_action``), as documented."""
    config.temporal_ensemble_coeff, config.n_action_steps = ENSEMBLE_COEFF, 1


ENSEMBLE_COEFF = 0.01


@pytest.mark.parametrize("kind", ["act", "diffusion", "smolvla", "act-ensembled"])
def test_restarting_a_slot_mid_chunk_starts_the_new_episode_fresh(kind, request):
    """The users' worst bug (no policy.reset() between episodes: 73 % -> 23 %): an episode started in a slot
    whose queue still holds actions of the last one, whose observation history is full, or whose ensembler holds
    the last episode's chunks, must act exactly like a fresh lerobot policy."""
    ensembled = kind == "act-ensembled"
    checkpoint = request.getfixturevalue(f"{kind.removesuffix('-ensembled')}_checkpoint")
    size = inspect_checkpoint(checkpoint)
    policy = LeRobotPolicy(checkpoint, device="cpu", temporal_ensemble_coeff=ENSEMBLE_COEFF if ensembled else None)
    env_a, obs_a = _episode(size, 1, 7)
    policy.reset(0, env_a, 1)
    for obs in obs_a:  # 7 steps: 1 or 3 actions of the current chunk are left (chunks of 4 or 5)
        policy.act([0], [obs])
    left = policy._slots[0]
    assert left.ensembler.ensembled_actions is not None if ensembled else left.actions  # state to forget
    env_b, obs_b = _episode(size, 5, 9)
    policy.reset(0, env_b, 5)
    got = np.stack([policy.act([0], [obs])[0] for obs in obs_b])
    np.testing.assert_allclose(got, _reference_actions(checkpoint, obs_b, seed=5, edit=_ensemble if ensembled
                                                       else None), **EXACT)


def test_temporal_ensembling_gives_lerobots_ensembled_actions(act_checkpoint):
    """Per-slot ensemblers, staggered, against lerobot's ACTPolicy with temporal_ensemble_coeff (select_action)."""
    size = inspect_checkpoint(act_checkpoint)
    policy = LeRobotPolicy(act_checkpoint, device="cpu", temporal_ensemble_coeff=ENSEMBLE_COEFF)
    (obs_a, got_a), (obs_b, got_b) = _staggered(policy, size, steps=8, delay=2)
    np.testing.assert_allclose(got_a, _reference_actions(act_checkpoint, obs_a, edit=_ensemble), **EXACT)
    np.testing.assert_allclose(got_b, _reference_actions(act_checkpoint, obs_b, edit=_ensemble), **EXACT)
    plain = _reference_actions(act_checkpoint, obs_a)
    assert not np.allclose(got_a[1:], plain[1:], atol=1e-4)  # ensembling changed the actions


def test_predicted_chunks_leave_the_slots_alone(diffusion_checkpoint, act_checkpoint):
    """``predict_chunks`` (for forward-simulating what the policy intends): the whole remaining chunk in LeRobot
    units, and the next action the slot executes is the same with or without it."""
    for checkpoint, length in ((act_checkpoint, 10), (diffusion_checkpoint, 8 - 2 + 1)):
        size = inspect_checkpoint(checkpoint)
        policy = LeRobotPolicy(checkpoint, device="cpu")
        env, obs = _episode(size, 3, 2)
        policy.reset(0, env, 3)
        chunks = policy.predict_chunks(obs[:1])
        assert tuple(chunks.shape) == (1, length, 6)
        first = policy.act([0], obs[:1])[0]
        if checkpoint == act_checkpoint:  # memoryless: the executed chunk is the predicted one
            np.testing.assert_allclose(first, chunks[0, 0].numpy(), **EXACT)
        assert tuple(policy.predict_chunks(obs[1:], slots=[0]).shape) == (1, length, 6)
        np.testing.assert_allclose(policy.act([0], obs[1:])[0],
                                   _reference_actions(checkpoint, obs, seed=3)[1], **EXACT)


def test_n_action_steps_is_checked_against_what_the_type_can_execute(diffusion_checkpoint, act_checkpoint):
    with pytest.raises(DataEngineError, match=r"--n-action-steps 8 must be between 1 and the horizon - n_obs_steps "
                                              r"\+ 1 7"):
        LeRobotPolicy(diffusion_checkpoint, device="cpu", n_action_steps=8)
    with pytest.raises(DataEngineError, match="must be between 1 and the chunk size 10"):
        LeRobotPolicy(act_checkpoint, device="cpu", n_action_steps=11)
    with pytest.raises(DataEngineError, match="temporal ensembling is ACT's"):
        LeRobotPolicy(diffusion_checkpoint, device="cpu", temporal_ensemble_coeff=0.01)
    assert LeRobotPolicy(diffusion_checkpoint, device="cpu", n_action_steps=7).identity.kind == "diffusion"


def _copy_with_config(checkpoint, tmp_path, edit):
    copy = tmp_path / "pretrained_model"
    shutil.copytree(checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def _one_line_error(checkpoint, match):
    with pytest.raises(DataEngineError, match=match) as error:
        inspect_checkpoint(checkpoint)
    assert "\n" not in str(error.value)


def test_checkpoint_needing_a_missing_camera_is_refused_with_the_list(act_checkpoint, tmp_path):
    def add_camera(config):
        config["input_features"]["observation.images.side"] = {"type": "VISUAL", "shape": [3, 64, 64]}

    _one_line_error(_copy_with_config(act_checkpoint, tmp_path, add_camera),
                    "needs observation.images.side which the scene does not provide")


def test_undrivable_types_and_non_checkpoints_are_refused(act_checkpoint, tmp_path):
    _one_line_error(_copy_with_config(act_checkpoint, tmp_path, lambda c: c.update(type="vqbet")),
                    r"holds a 'vqbet' policy, which the engine cannot drive: it drives act, diffusion, smolvla, pi0")
    _one_line_error(tmp_path / "nothing", "not a LeRobot checkpoint")


def test_a_config_from_a_newer_lerobot_loads_without_its_unknown_fields(act_checkpoint, tmp_path):
    """lerobot 0.6.1 writes ``pretrained_revision`` (and more), which 0.4.4's draccus rejects outright."""
    def newer(config):
        config.update(pretrained_revision=None, some_field_of_lerobot_9=[1, 2])

    newer_checkpoint = _copy_with_config(act_checkpoint, tmp_path, newer)
    assert inspect_checkpoint(newer_checkpoint) == 64
    env, obs = _episode(64, 4, 3)
    got = []
    for checkpoint in (act_checkpoint, newer_checkpoint):
        policy = LeRobotPolicy(checkpoint, device="cpu")
        policy.reset(0, env, 4)
        got.append(np.stack([policy.act([0], [o])[0] for o in obs]))
    np.testing.assert_array_equal(got[0], got[1])


def test_an_unparseable_config_is_one_line_naming_both_lerobots(act_checkpoint, tmp_path):
    from so101_dataengine.lerobot_compat import LEROBOT_06, LEROBOT_VERSION

    def broken_from_the_other_line(config):  # only lerobot 0.6 writes pretrained_revision
        config.update(chunk_size="ten")
        if LEROBOT_06:
            config.pop("pretrained_revision", None)
        else:
            config.update(pretrained_revision="main")

    writer = "lerobot <= 0.5" if LEROBOT_06 else r"lerobot >= 0.6 \(fields .* dropped: pretrained_revision\)"
    _one_line_error(_copy_with_config(act_checkpoint, tmp_path, broken_from_the_other_line),
                    rf"cannot be parsed by the installed lerobot {LEROBOT_VERSION}: .*chunk_size.*written by {writer}: "
                    rf"run it with lerobot .* or retrain it with lerobot {LEROBOT_VERSION}")


def test_nan_producing_checkpoint_fails_clearly(act_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(act_checkpoint, broken)
    weights = load_file(broken / "model.safetensors")
    weights["model.action_head.bias"] = torch.full_like(weights["model.action_head.bias"], float("nan"))
    save_file(weights, broken / "model.safetensors")
    env = PickPlaceEnv(PickPlaceConfig(image_size=inspect_checkpoint(broken)))
    policy = LeRobotPolicy(broken, device="cpu")
    policy.reset(0, env, 0)
    with pytest.raises(DataEngineError, match="NaN"):
        policy.act([0], [env.reset(0)])


def test_diffusion_rollout_through_the_engine(diffusion_checkpoint, workspace, tmp_path):
    """``dataengine rollout --policy diffusion``: the newest trained diffusion, recorded as such, episodes stored."""
    from so101_dataengine.base.executors import ExecutorConfig
    from so101_dataengine.formats.store import EpisodeStore
    from so101_dataengine.rollouts.config import RolloutConfig
    from so101_dataengine.rollouts.run import rollout

    config = RolloutConfig(policy="diffusion", n=2, out=tmp_path / "run", num_envs=2, chunk_size=2,
                           scene=PickPlaceConfig(image_size=None, max_episode_steps=12),
                           executor=ExecutorConfig(workers=1))
    assert rollout(config, workspace).episodes == 2
    meta = EpisodeStore.open(tmp_path / "run").read_meta(1)
    assert meta["policy"]["kind"] == "diffusion" and meta["policy"]["path"] == str(diffusion_checkpoint.resolve())
    assert 0 < meta["length"] <= 12
