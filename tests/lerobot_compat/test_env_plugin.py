"""``lerobot-eval --env.type=so101_dataengine``: lerobot's own evaluation script, finding the scene through the
plugin distribution as lerobot 0.6 finds plugins, evaluates a checkpoint on exactly the scenes, cameras, units and
seeds of ``dataengine eval``: same success per episode, and the same episodes frame by frame."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_IMAGE
from lerobot_eval_plugin import EPISODES, install_plugin, lerobot_eval, recordings

from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.lerobot_compat.env_plugin import (
    ENV_PLUGINS,
    ENV_PLUGINS_MISSING,
    SCENE,
    STATE,
    SUCCESS,
    decode_scene,
)
from so101_dataengine.rollouts.lerobot_policy import read_policy_config
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

pytestmark = pytest.mark.skipif(not ENV_PLUGINS, reason=ENV_PLUGINS_MISSING)


def _columns(dataset) -> dict[str, np.ndarray]:
    table = pa.concat_tables([pq.read_table(f) for f in sorted((dataset / "data").glob("*/*.parquet"))])
    return {name: np.asarray(table[name].to_pylist()) for name in ("index", STATE, "action", SCENE, SUCCESS)}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, act_checkpoint):
    """The same ACT checkpoint evaluated on the same 2 scenes by lerobot-eval (recording) and by dataengine eval."""
    tmp = tmp_path_factory.mktemp("lerobot_eval")
    site = install_plugin(tmp / "plugin")
    result = lerobot_eval(site, act_checkpoint, tmp / "lerobot", "--eval.recording=true")
    assert result.returncode == 0, result.stderr[-4000:]
    assert main(["--workspace", str(tmp / "ws"), "eval", "--policy", str(act_checkpoint), "--n", str(EPISODES),
                 "--seed", str(EVAL_SEED), "--num-envs", str(EPISODES), "--workers", "1", "--device", "cpu",
                 "--out", str(tmp / "ours")]) == 0
    return tmp / "lerobot", json.loads((tmp / "ours" / "eval.json").read_text())["policies"][0]


def test_lerobot_eval_scores_each_episode_as_dataengine_eval_does(evaluated):
    lerobot_out, ours = evaluated
    (task,) = json.loads((lerobot_out / "eval_info.json").read_text())["per_task"]
    assert task["metrics"]["successes"] == [outcome == "SUCCESS" for outcome in ours["per_episode"]]


def test_lerobot_eval_plays_the_engines_episodes(evaluated, act_checkpoint):
    """Episode k of lerobot-eval is the engine's episode k: scene seed EVAL_SEED + k, the same initial state, the
    engine's render of that scene as its first camera frames, and the same first chunk of actions (same cameras,
    image size, units and normalisation in, same actions out). Later frames are compared only by the outcome: the
    first actions already differ by float32 rounding (~1e-5 degrees: lerobot-eval batches both envs into one
    forward pass from a contiguous image tensor, the engine runs one per lane from a permuted one), which the
    physics amplifies over 450 steps."""
    lerobot_out, ours = evaluated
    chunk = read_policy_config(act_checkpoint)["n_action_steps"]
    store = EpisodeStore.open(ours["run_dir"])
    datasets = recordings(lerobot_out)
    assert len(datasets) == EPISODES
    scene = PickPlaceEnv(PickPlaceConfig(image_size=SMALL_IMAGE))
    for k, dataset in enumerate(datasets):
        columns, stored = _columns(dataset), store.read(k)
        assert {decode_scene(row) for row in columns[SCENE]} == {(EVAL_SEED + k, False)}
        assert stored.meta["seed"] == EVAL_SEED + k
        np.testing.assert_array_equal(columns[STATE][0], stored.states[0])
        np.testing.assert_allclose(columns["action"][:chunk], stored.actions[:chunk], atol=1e-3)
        np.testing.assert_allclose(columns[STATE][:chunk], stored.states[:chunk], atol=1e-3)
        assert bool(columns[SUCCESS].any()) == (stored.meta["metrics"]["outcome"] == "SUCCESS")
        first = _first_frames(dataset)
        reference = scene.reset(EVAL_SEED + k).images
        other = scene.reset(EVAL_SEED + 1 - k).images
        for key, image in first.items():
            error = np.abs(image.astype(int) - reference[key]).mean()
            assert error < 0.5 * np.abs(image.astype(int) - other[key]).mean(), key
    scene.close()


def _first_frames(dataset) -> dict[str, np.ndarray]:
    """The first frame of each camera, as lerobot's own loader returns it (decoded from the recording's video)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from so101_dataengine.lerobot_compat.video import video_backend

    item = LeRobotDataset(f"local/{dataset.name}", root=dataset, video_backend=video_backend())[0]
    return {key: (item[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for key in item if key.startswith("observation.images.")}
