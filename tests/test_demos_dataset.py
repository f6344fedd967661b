"""`dataengine demos` writes a dataset that lerobot itself loads, trains on, and normalises correctly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from pixel_stats import assert_stats_exact

from so101_dataengine.cli import main
from so101_dataengine.demos import DemosConfig, shard_plan
from so101_dataengine.lerobot_compat.video import video_backend

CAMERAS = ["observation.images.overhead", "observation.images.wrist"]


@pytest.fixture(scope="module")
def loaded(demo_dataset):
    return LeRobotDataset(demo_dataset.repo_id, root=demo_dataset.out, video_backend=video_backend())


def test_lerobot_loads_it_offline_with_so101_features(loaded, demo_dataset):
    size = demo_dataset.scene.image_size
    assert loaded.num_episodes == 2 and loaded.fps == 30
    assert loaded.meta.robot_type == "so101_follower"
    assert loaded.meta.camera_keys == CAMERAS
    assert loaded.meta.features["observation.state"]["names"][0] == "shoulder_pan.pos"
    item = loaded[5]
    assert item["observation.images.wrist"].shape == (3, size, size)
    assert item["task"] == "pick up the cube and place it in the bowl"
    meta = json.loads((demo_dataset.out / "meta" / "dataengine.json").read_text())
    assert [e["metrics"]["outcome"] for e in meta["episodes"]] == ["SUCCESS", "SUCCESS"]
    assert meta["config"]["scene"]["image_size"] == size


def test_stats_equal_numpy_over_every_decoded_pixel_and_row(loaded):
    """Every image channel's and vector's mean/std in meta/stats.json equals a float64 computation over all of
    the data lerobot's loader returns."""
    assert_stats_exact(loaded, loaded.meta.stats, CAMERAS)
    for key in CAMERAS:
        stats = loaded.meta.stats[key]
        assert np.all(np.asarray(stats["std"]) > 0.02), "image std collapsed (lerobot's uint8 overflow)"
        assert {"min", "max", "q01", "q50", "q99", "count"} <= set(stats)


def test_per_episode_stats_were_rewritten_too(demo_dataset):
    import pyarrow.parquet as pq

    table = pq.read_table(next((demo_dataset.out / "meta" / "episodes").glob("chunk-*/file-*.parquet")))
    for std in table.column("stats/observation.images.overhead/std").to_pylist():
        assert np.all(np.asarray(std).ravel() > 0.02)


def test_each_episode_is_one_parquet_row_group_as_lerobot_06_writes_them(demo_dataset, grown_dataset):
    """lerobot 0.6 writes one row group per episode, so a reader fetches one episode's rows alone
    (``read_row_group(i)``); so does the engine's one writer of data files (``write_dataset``, which curation uses
    too), checked here on two demo datasets (2 and 3 episodes)."""
    import pyarrow.parquet as pq

    for dataset in (demo_dataset, grown_dataset):
        groups = []
        for path in sorted((dataset.out / "data").glob("chunk-*/file-*.parquet")):
            parquet = pq.ParquetFile(path)
            groups += [set(parquet.read_row_group(g, columns=["episode_index"]).column(0).to_pylist())
                       for g in range(parquet.num_row_groups)]
        assert groups == [{episode} for episode in range(dataset.n)]


def test_lerobot_train_runs_act_on_it_offline_on_cpu(demo_dataset, tmp_path):
    out = tmp_path / "train"
    command = [
        os.path.join(os.path.dirname(sys.executable), "lerobot-train"),
        f"--dataset.repo_id={demo_dataset.repo_id}", f"--dataset.root={demo_dataset.out}",
        f"--dataset.video_backend={video_backend()}",
        "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null",  # no ImageNet download: offline
        "--steps=2", "--batch_size=2", "--num_workers=0", "--save_freq=2", "--wandb.enable=false",
        f"--output_dir={out}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "checkpoints" / "000002" / "pretrained_model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--render-preset", "ugly"], "unknown render preset"),
        (["--repo-id", "no_slash"], "OWNER/NAME"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["demos", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_output_is_never_touched(demo_dataset, capsys):
    before = sorted(p.name for p in demo_dataset.out.rglob("*"))
    assert main(["demos", "--n", "1", "--out", str(demo_dataset.out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in demo_dataset.out.rglob("*")) == before


def test_unwritable_output_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["demos", "--n", "1", "--out", str(blocker / "ds")]) == 2
    assert "cannot write under" in capsys.readouterr().err


def test_interrupted_run_leaves_no_partial_dataset(tmp_path, monkeypatch):
    from so101_dataengine import demos
    from so101_dataengine.demos import DemosConfig
    from so101_dataengine.scenes.pick_place import PickPlaceConfig

    def explode(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demos, "write_dataset", explode)
    with pytest.raises(KeyboardInterrupt):
        demos.record_demos(DemosConfig(out=tmp_path / "ds", n=1, scene=PickPlaceConfig(image_size=32)))
    assert list(tmp_path.iterdir()) == []


def test_sharded_demos_on_dask_merge_into_one_exact_dataset(tmp_path):
    """--workers 2: two shards recorded and encoded by dask workers, laid out as one dataset with exact stats."""
    out = tmp_path / "ds"
    assert main(["demos", "--n", "3", "--workers", "2", "--image-size", "32", "--out", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["ds"], "staging shards must be cleaned up"
    dataset = LeRobotDataset("local/so101_pick_place_demos", root=out, video_backend=video_backend())
    assert dataset.num_episodes == 3
    seeds = [e["seed"] for e in json.loads((out / "meta" / "dataengine.json").read_text())["episodes"]]
    assert len(set(seeds)) == 3
    # The expert succeeds on each of these scenes, so the dataset's scenes are exactly the planned ones, in shard order.
    config = DemosConfig(out=str(out), n=3, workers=2)
    assert seeds == [first + k for first, size in shard_plan(config) for k in range(size)] == [0, 1, 9]
    assert_stats_exact(dataset, dataset.meta.stats, CAMERAS)
    assert len(dataset) == sum(dataset.meta.episodes[i]["length"] for i in range(3))
