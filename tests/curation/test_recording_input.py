"""``dataengine curate`` takes a ``lerobot-eval --eval.recording`` dataset of the engine's scene next to rollout
runs: each recorded episode is replayed in the simulator (which checks it and measures its outcome), converted once
into an episode store run and curated like any rollout, into a dataset lerobot's own loader reads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_eval_plugin import EPISODES, install_plugin, lerobot_eval, recordings

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.cli import main
from so101_dataengine.formats.recording import convert_recording
from so101_dataengine.lerobot_compat.env_plugin import ENV_PLUGINS, ENV_PLUGINS_MISSING, STATE, SUCCESS

pytestmark = pytest.mark.skipif(not ENV_PLUGINS, reason=ENV_PLUGINS_MISSING)

REPO = "local/so101_with_recordings"
KEEP_ALL = ["--no-filter", "verdict", "--no-filter", "grip", "--no-filter", "motion", "--no-filter", "length"]
"""The tiny ACT's episodes fail, and its motion would fail the quality checks: keep every episode."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, act_checkpoint) -> list:
    """A real recording: lerobot-eval of the ACT checkpoint on 2 engine scenes, one dataset per sub-env."""
    tmp = tmp_path_factory.mktemp("recording")
    result = lerobot_eval(install_plugin(tmp / "plugin"), act_checkpoint, tmp / "eval", "--eval.recording=true")
    assert result.returncode == 0, result.stderr[-4000:]
    return recordings(tmp / "eval")


def _columns(root) -> dict[str, np.ndarray]:
    table = pa.concat_tables([pq.read_table(f) for f in sorted((root / "data").glob("*/*.parquet"))])
    return {name: np.asarray(table[name].to_pylist()) for name in table.column_names if name != "task_index"}


def test_curate_takes_recordings_next_to_a_rollout_run(recorded, demo_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("DATAENGINE_WORKSPACE", str(tmp_path / "ws"))
    run = tmp_path / "run"
    assert main(["rollout", "--policy", "scripted", "--n", "2", "--num-envs", "2", "--workers", "1",
                 "--image-size", "64", "--out", str(run)]) == 0
    out = tmp_path / "curated"
    assert main(["curate", "--runs", str(run), *map(str, recorded), "--base", str(demo_dataset.out), "--out", str(out),
                 "--repo-id", REPO, "--vcodec", "h264", "--workers", "1", *KEEP_ALL]) == 0

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from so101_dataengine.lerobot_compat.video import video_backend

    dataset = LeRobotDataset(REPO, root=out, video_backend=video_backend())
    assert dataset.meta.total_episodes == 2 + 2 + EPISODES  # demos, the rollouts, the recorded episodes
    provenance = json.loads((out / "meta" / "dataengine.json").read_text())["episodes"][-EPISODES:]
    curated = _columns(out)
    for k, (source, meta) in enumerate(zip(recorded, provenance)):
        assert meta["seed"] == EVAL_SEED + k and meta["policy_kind"] == "lerobot-eval recording"
        recording = _columns(source)
        assert (meta["metrics"]["outcome"] == "SUCCESS") == bool(recording[SUCCESS].any())
        assert meta["metrics"]["steps"] == len(recording["action"])
        rows = curated["episode_index"] == meta["episode_index"]
        np.testing.assert_array_equal(curated["observation.state"][rows], recording[STATE])
        np.testing.assert_array_equal(curated["action"][rows], recording["action"])
        assert dataset[int(np.flatnonzero(rows)[0])]["observation.images.wrist"].shape == (3, 64, 64)

    # converted once: a second curate of the same recordings reuses the converted runs
    cache = tmp_path / "ws" / "cache" / "recordings"
    converted = sorted(cache.iterdir())
    assert len(converted) == EPISODES
    stamps = [p.stat().st_mtime_ns for p in converted]
    assert main(["curate", "--runs", *map(str, recorded), "--out", str(tmp_path / "again"), "--vcodec", "h264",
                 "--workers", "1", *KEEP_ALL]) == 0
    assert [p.stat().st_mtime_ns for p in sorted(cache.iterdir())] == stamps


def test_a_recording_that_is_not_of_the_engines_scene_is_one_error(recorded, tmp_path):
    """A recording whose actions were changed no longer replays into its recorded states: refused, naming it."""
    forged = tmp_path / "forged"
    shutil.copytree(recorded[0], forged)
    (data,) = (forged / "data").glob("*/*.parquet")
    table = pq.read_table(data)
    actions = np.asarray(table["action"].to_pylist(), dtype=np.float32)
    actions[:, 0] += 5.0  # shoulder pan 5 degrees off at every step
    column = pa.array(actions.tolist(), type=table.schema.field("action").type)
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", column), data)
    with pytest.raises(DataEngineError, match="does not replay in the engine's scene"):
        convert_recording(forged, tmp_path / "run")
