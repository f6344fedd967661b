"""Shared fixtures. Everything is real: MuJoCo physics and EGL rendering, lerobot's writer, loader and trainer."""

from __future__ import annotations

import os
import subprocess
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded: tests use only what the project makes
os.environ["HF_LEROBOT_HOME"] = tempfile.mkdtemp(prefix="dataengine-tests-lerobot-home-")
"""Publishing refreshes lerobot's cache link of the repo id it publishes (``~/.cache/huggingface/lerobot/OWNER/
NAME``): a test that publishes without the ``lerobot_home`` fixture, or a command run as a subprocess, must not
re-point the links of the machine's user. Set before lerobot is first imported, which reads it once."""

import pytest

from so101_dataengine.demos import DemosConfig, record_demos
from so101_dataengine.scenes.pick_place import PickPlaceConfig

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


@pytest.fixture(scope="session")
def grown_dataset(tmp_path_factory, demo_dataset):
    """The demo dataset's two episodes (same seeds) plus a third: what a later curation round would publish."""
    config = DemosConfig(out=tmp_path_factory.mktemp("datasets") / "grown", n=3, repo_id=demo_dataset.repo_id,
                         seed=demo_dataset.seed, scene=demo_dataset.scene)
    record_demos(config)
    return config


TINY_ACT = ["--policy.dim_model=64", "--policy.n_heads=2", "--policy.dim_feedforward=128",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=5"]
"""A small ACT (same code, smaller layers) so CPU training and inference stay fast in tests."""


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    from so101_dataengine.base.workspace import Workspace

    return Workspace(tmp_path_factory.mktemp("workspace"))


@pytest.fixture(scope="session")
def act_checkpoint(demo_dataset, workspace):
    """A real ACT checkpoint trained by ``dataengine train`` (lerobot-train) on the demo dataset: 60 steps at
    batch 8 is more than one epoch of the ~400-frame dataset, which exercises step-targeted training."""
    from so101_dataengine.training.train import TrainConfig, train

    config = TrainConfig(dataset=str(demo_dataset.out), steps=60, batch_size=8, num_workers=0, save_freq=1000,
                         device="cpu", extra_args=TINY_ACT)
    return train(config, workspace)


TINY_DIFFUSION = ["--policy.down_dims=[32,64]", "--policy.kernel_size=3", "--policy.n_groups=4",
                  "--policy.diffusion_step_embed_dim=32", "--policy.spatial_softmax_num_keypoints=8",
                  "--policy.n_obs_steps=2", "--policy.horizon=8", "--policy.n_action_steps=4",
                  "--policy.num_train_timesteps=10"]
"""A small Diffusion Policy (same code: ResNet18 encoder, U-Net, DDPM) with a 2-observation history, 8-step horizon,
4 executed actions and 10 denoising steps, so CPU training and inference stay fast in tests."""


@pytest.fixture(scope="session")
def diffusion_checkpoint(demo_dataset, workspace):
    """A real Diffusion Policy checkpoint trained by ``dataengine train --policy diffusion`` (lerobot-train) on the
    demo dataset; a few steps: the tests compare the engine with lerobot on the same weights, not its success."""
    from so101_dataengine.training.train import TrainConfig, train

    config = TrainConfig(dataset=str(demo_dataset.out), policy="diffusion", steps=10, batch_size=4, num_workers=0,
                         save_freq=1000, device="cpu", extra_args=TINY_DIFFUSION)
    return train(config, workspace)


TINY_SMOLVLA = ["--policy.chunk_size=10", "--policy.n_action_steps=5", "--policy.num_steps=2"]
"""SmolVLA on the tiny VLM of ``tiny_vlm``, with chunks of 10 (5 executed) and 2 flow-matching steps, so CPU
training and inference stay fast in tests."""


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """A SmolVLM directory written here (``so101_dataengine.training.tiny_vlm``: random weights, a tokenizer trained here), so
    SmolVLA is built offline; skipped where transformers (the ``vla`` extra) is not installed."""
    pytest.importorskip("transformers", reason="SmolVLA needs transformers (the project's 'vla' extra)")
    from so101_dataengine.training.tiny_vlm import write_tiny_vlm

    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-smolvlm")


@pytest.fixture(scope="session")
def smolvla_checkpoint(tiny_vlm, demo_dataset, workspace):
    """A real SmolVLA checkpoint trained by ``dataengine train --policy smolvla`` (lerobot-train) on the demo
    dataset with the tiny VLM; a few steps: the tests drive the code path, not its success."""
    from so101_dataengine.training.train import TrainConfig, train

    config = TrainConfig(dataset=str(demo_dataset.out), policy="smolvla", steps=3, batch_size=4, num_workers=0,
                         save_freq=1000, device="cpu",
                         extra_args=[f"--policy.vlm_model_name={tiny_vlm}", *TINY_SMOLVLA])
    return train(config, workspace)


@pytest.fixture
def lerobot_home(tmp_path, monkeypatch):
    """lerobot's cache root for this test (lerobot reads HF_LEROBOT_HOME once, at import): publishing refreshes
    the cache of the repo id it publishes, which must not touch the user's real cache."""
    from so101_dataengine.lerobot_compat import lerobot_home_bindings

    home = tmp_path / "lerobot_home"
    for target, value in lerobot_home_bindings(home):
        monkeypatch.setattr(target, value)
    return home


REQUIRE_SLURM = "DATAENGINE_REQUIRE_SLURM"
"""Set to 1 (``.ci/run`` does) and a missing Slurm fails the Slurm tests instead of skipping them: a CI machine
whose slurm-wlm install broke must not pass with the only real-cluster test silently skipped."""


@pytest.fixture(scope="session")
def slurm(tmp_path_factory, request):
    """A real single-node Slurm (``tests/slurm_cluster.py``), started once for every test that needs one; skipped,
    saying why, where slurm-wlm and munge are not installed, failed instead with ``DATAENGINE_REQUIRE_SLURM=1``.
    That it ran is one line in pytest's output (even with ``-q``), so CI's log shows it."""
    import slurm_cluster

    reason = slurm_cluster.missing()
    if reason:
        if os.environ.get(REQUIRE_SLURM) == "1":
            pytest.fail(f"{REQUIRE_SLURM}=1 but no real Slurm here: {reason}")
        pytest.skip(f"no real Slurm here: {reason}")
    env, daemons = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    version = subprocess.run(["sinfo", "--version"], env=env, capture_output=True, text=True).stdout.strip()
    _announce(request.config, f"real Slurm started for the Slurm tests ({version}, SLURM_CONF={env['SLURM_CONF']})")
    yield env
    slurm_cluster.stop(daemons)


def _announce(config: pytest.Config, line: str) -> None:
    """One line in pytest's own output, past output capture (``-q`` hides what a passing test prints)."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        config.pluginmanager.getplugin("terminalreporter").write(f"\n[dataengine tests] {line}\n")  # own line
