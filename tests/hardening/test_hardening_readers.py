"""Hostile inputs, part 3: the dataset readers of ``dataengine train`` and ``dataengine classifier train --demos``.

``train`` hands the dataset to lerobot-train, which reads ``meta/info.json``, ``meta/stats.json``, meta/episodes,
``meta/tasks.parquet``, the data parquet files and the videos; ``classifier train --demos`` reads the same through
lerobot's ``LeRobotDataset`` and the episodes' outcomes from ``meta/dataengine.json``. Each file of a real
``dataengine demos`` dataset is damaged the way a killed copy, a hand edit or another tool does (cut in half, a JSON
list where an object belongs, a value of the wrong type, deleted) and the real command is run on it: exit status 2,
exactly one ``error:`` line naming the file and its fix, no traceback (neither ours nor lerobot-train's), nothing
at ``--out``, every input byte-identical afterwards (``docs/guarantees.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY_ACT
from test_hardening_inputs import DATA, EPISODES, VIDEO, _damaged_copy, assert_one_error_line, cut, json_array, zero

from so101_dataengine.cli import main

INFO, STATS, ENGINE, TASKS = "meta/info.json", "meta/stats.json", "meta/dataengine.json", "meta/tasks.parquet"
REWRITE = "write or copy the dataset again"
"""The fix for a damaged file lerobot wrote (``v3_dataset.DAMAGED``)."""
STATS_FIX = "dataengine stats fix"
PROVENANCE = "write the dataset again with 'dataengine curate' or 'dataengine demos'"
COMPLETE = "copy the complete dataset"


def _edit(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A damage (called ``name`` in the test ids) that rewrites one value of a JSON file: a hand edit, or another
    tool's idea of the format."""

    def damage(path: Path) -> None:
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document))

    damage.__name__ = name
    return damage


def deleted(path: Path) -> None:
    path.unlink()


fps_a_string = _edit("fps_a_string", lambda info: info.update(fps="thirty"))
std_a_string = _edit("std_a_string", lambda stats: stats["action"].update(std="wide"))
config_a_list = _edit("config_a_list", lambda meta: meta.update(config=[]))
metrics_a_string = _edit("metrics_a_string", lambda meta: meta["episodes"][1].update(metrics="SUCCESS"))
outcome_a_number = _edit("outcome_a_number", lambda meta: meta["episodes"][0]["metrics"].update(outcome=1))
an_episode_dropped = _edit("an_episode_dropped", lambda meta: meta.update(episodes=meta["episodes"][:1]))

TRAIN_DAMAGE = [
    (INFO, cut, REWRITE), (INFO, json_array, REWRITE), (INFO, fps_a_string, REWRITE),
    (STATS, cut, STATS_FIX), (STATS, json_array, STATS_FIX), (STATS, std_a_string, STATS_FIX),
    (STATS, deleted, STATS_FIX),
    (ENGINE, cut, PROVENANCE), (ENGINE, json_array, PROVENANCE), (ENGINE, config_a_list, PROVENANCE),
    (EPISODES, cut, REWRITE), (TASKS, cut, REWRITE), (DATA, cut, REWRITE), (DATA, deleted, COMPLETE),
    (VIDEO, deleted, COMPLETE),
]
CLASSIFIER_DAMAGE = [
    (ENGINE, json_array, PROVENANCE), (ENGINE, metrics_a_string, PROVENANCE), (ENGINE, outcome_a_number, PROVENANCE),
    (ENGINE, an_episode_dropped, PROVENANCE),
    (INFO, fps_a_string, REWRITE), (STATS, cut, STATS_FIX), (DATA, cut, REWRITE), (VIDEO, deleted, COMPLETE),
]


def _ids(cases: list[tuple]) -> list[str]:
    return [f"{relative.split('/')[-1]}-{how.__name__}" for relative, how, _ in cases]


def _train(dataset: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """``dataengine train`` as a user runs it: one step of a small ACT, its own workspace and --out."""
    out = tmp_path / "train"
    return ["--workspace", str(tmp_path / "workspace"), "train", "--dataset", str(dataset), "--steps", "1",
            "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--out", str(out), "--", *TINY_ACT], out


@pytest.mark.parametrize("relative,how,fix", TRAIN_DAMAGE, ids=_ids(TRAIN_DAMAGE))
def test_a_damaged_dataset_file_in_train(demo_dataset, tmp_path, capfd, relative, how, fix):
    damaged, _ = _damaged_copy(demo_dataset.out, tmp_path, relative, how)
    argv, out = _train(damaged, tmp_path)
    line = assert_one_error_line(argv, capfd, relative, [damaged], out)
    assert fix in line, line
    assert not (tmp_path / "workspace" / "policies.jsonl").exists(), "no training was recorded"


@pytest.mark.parametrize("relative,how,fix", CLASSIFIER_DAMAGE, ids=_ids(CLASSIFIER_DAMAGE))
def test_a_damaged_demos_dataset_file_in_classifier_train(demo_dataset, tmp_path, capfd, relative, how, fix):
    damaged, _ = _damaged_copy(demo_dataset.out, tmp_path, relative, how)
    out = tmp_path / "classifier"
    line = assert_one_error_line(["classifier", "train", "--demos", str(damaged), "--out", str(out), "--epochs", "1",
                                  "--image-size", "32"], capfd, relative, [damaged], out)
    assert fix in line, line


@pytest.mark.parametrize("cache", ["frame-cache", "no-frame-cache"])
@pytest.mark.parametrize("how", [cut, zero], ids=["cut", "zeroed-inside"])
def test_a_damaged_video_stops_train_before_lerobot_train_starts(demo_dataset, tmp_path, capfd, cache, how):
    """With the frame cache every frame is decoded while it is built; without it, the same full decode runs before
    training starts: either way a damaged video is one line, not lerobot-train dying on that episode mid-training."""
    damaged, _ = _damaged_copy(demo_dataset.out, tmp_path, VIDEO, how)
    argv, out = _train(damaged, tmp_path)
    flags = ["--no-frame-cache"] if cache == "no-frame-cache" else []
    line = assert_one_error_line([*argv[:-len(TINY_ACT) - 1], *flags, "--", *TINY_ACT], capfd, str(damaged),
                                 [damaged], out)
    assert "again" in line, line
    assert not (tmp_path / "workspace" / "policies.jsonl").exists(), "no training was recorded"


def test_the_fix_train_names_for_damaged_stats_works(demo_dataset, tmp_path, capfd):
    """A cut ``meta/stats.json``: train names ``dataengine stats fix DATASET``; that command, run as named, makes
    the dataset trainable again (lerobot-train runs and leaves a checkpoint)."""
    damaged, _ = _damaged_copy(demo_dataset.out, tmp_path, STATS, cut)
    argv, out = _train(damaged, tmp_path)
    line = assert_one_error_line(argv, capfd, STATS, [damaged], out)
    command = line.split("run '", 1)[1].split("'", 1)[0]
    assert command == f"dataengine stats fix {damaged}"
    assert main(command.split()[1:]) == 0
    assert main(argv) == 0
    assert (out / "checkpoints" / "last" / "pretrained_model" / "config.json").is_file()
