"""``lerobot-eval --env.discover_packages_path=so101_dataengine.lerobot_env --env.type=so101_dataengine``: lerobot's
own way to load an environment package by name, which both lerobot lines have (0.4.4 has no ``lerobot_env_*``
plugin discovery and cannot record, but it has this flag). With each line's default vector env (0.6: one process
per env, started by forkserver; 0.4.4: all in one process, because its lerobot-eval cannot check an
``AsyncVectorEnv``'s sub-envs), it must score each episode as ``dataengine eval`` does on the same scenes."""

from __future__ import annotations

import json
import multiprocessing

import gymnasium as gym
import numpy as np
from conftest import SMALL_IMAGE
from lerobot_eval_plugin import EPISODES, lerobot_eval

from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.cli import main
from so101_dataengine.lerobot_env.config import PACKAGE
from so101_dataengine.lerobot_env.gym_env import PickPlaceGymEnv


def test_lerobot_eval_by_package_path_scores_as_dataengine_eval(act_checkpoint, tmp_path):
    result = lerobot_eval(None, act_checkpoint, tmp_path / "lerobot", f"--env.discover_packages_path={PACKAGE}",
                          async_envs=None)
    assert result.returncode == 0, result.stderr[-4000:]
    assert main(["--workspace", str(tmp_path / "ws"), "eval", "--policy", str(act_checkpoint), "--n", str(EPISODES),
                 "--seed", str(EVAL_SEED), "--num-envs", str(EPISODES), "--workers", "1", "--device", "cpu",
                 "--out", str(tmp_path / "ours")]) == 0
    ours = json.loads((tmp_path / "ours" / "eval.json").read_text())["policies"][0]
    (task,) = json.loads((tmp_path / "lerobot" / "eval_info.json").read_text())["per_task"]
    assert task["metrics"]["successes"] == [outcome == "SUCCESS" for outcome in ours["per_episode"]]


def _env() -> PickPlaceGymEnv:
    return PickPlaceGymEnv(image_size=SMALL_IMAGE)


def _first_step(forked: bool) -> dict:
    """Reset two envs on two eval scenes and step them once, in forked processes or in this one."""
    seeds = [EVAL_SEED, EVAL_SEED + 1]
    envs = gym.vector.AsyncVectorEnv([_env] * 2, context="fork") if forked else gym.vector.SyncVectorEnv([_env] * 2)
    try:
        envs.reset(seed=seeds)
        observation, *_ = envs.step(np.zeros((2, *envs.single_action_space.shape), np.float32))
        return observation
    finally:
        envs.close()


def _first_steps_into(results) -> None:
    results.put((_first_step(forked=True), _first_step(forked=False)))


def test_envs_in_forked_processes_render_what_one_process_renders():
    """gymnasium's AsyncVectorEnv makes one env in the calling process to read the spaces, then forks the sub-envs.
    An OpenGL context made before the fork hung every child's first render (seen under lerobot-eval 0.4.4 with
    async envs): the scene and its renderer are made at first use. Run in a fresh process, as lerobot-eval is one:
    this test process may hold OpenGL contexts of other tests, which no fork survives."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    fresh = context.Process(target=_first_steps_into, args=(results,))
    fresh.start()
    try:  # a hung render fails the test after 2 minutes
        got, want = results.get(timeout=120)
    finally:
        fresh.kill()
    for camera, images in want["pixels"].items():
        assert images.shape == (2, SMALL_IMAGE, SMALL_IMAGE, 3) and images.std() > 0
        np.testing.assert_array_equal(got["pixels"][camera], images)
    np.testing.assert_array_equal(got["agent_pos"], want["agent_pos"])
