"""The labels file: read strictly (a verdict is JSON true or false, never a string that Python would call truthy),
and written by several processes at once without losing a label (real processes, the real command)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.classifier.labels import labels_lock, read_labels
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.run import rollout
from so101_dataengine.scenes.pick_place import PickPlaceConfig


def _write(tmp_path, *rows) -> object:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_boolean_labels_are_read_and_the_last_line_wins(tmp_path):
    path = _write(tmp_path, {"run_id": "r", "episode_id": 3, "success": True},
                  {"run_id": "r", "episode_id": 3, "success": False})
    assert read_labels(path)[("r", 3)].success is False


@pytest.mark.parametrize("row,message", [
    ({"run_id": "r", "episode_id": 3, "success": "no"}, 'success must be true or false, got "no"'),
    ({"run_id": "r", "episode_id": 3, "success": 1}, "success must be true or false, got 1"),
    ({"run_id": "r", "episode_id": "3", "success": True}, 'episode_id must be an integer, got "3"'),
    ({"run_id": "r", "success": True}, "episode_id must be an integer, got null"),
    ("[1, 2]", "is not a label"),
    ('{"run_id": "r", "episode_id": 3, "succ', "is not a label"),
])
def test_a_mistyped_label_is_one_error_line_naming_the_line(tmp_path, row, message):
    path = _write(tmp_path, {"run_id": "r", "episode_id": 1, "success": True}, row)
    with pytest.raises(DataEngineError, match="line 2 is not a label") as error:
        read_labels(path)
    assert message in str(error.value) and "\n" not in str(error.value)


WRITER = Path(__file__).with_name("label_writer.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, workspace) -> Path:
    """Two short episodes of the scripted expert: something to label."""
    out = tmp_path_factory.mktemp("labels") / "run"
    rollout(RolloutConfig(policy="scripted", n=2, out=out, num_envs=2, executor=ExecutorConfig(workers=1),
                          scene=PickPlaceConfig(image_size=32, max_episode_steps=20)), workspace)
    return out


def writer(run: Path, labels: Path, name: str, count: int, go: Path) -> subprocess.Popen:
    """A ``dataengine classifier label`` process, started and ready: it writes ``count`` labels once ``go``
    exists."""
    process = subprocess.Popen([sys.executable, str(WRITER), str(run), str(labels), name, str(count), str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n", process.communicate()
    return process


def test_two_label_commands_at_once_lose_no_label(run_dir, tmp_path):
    """Two processes, 50 labels each, writing at the same moment: every one of the 100 lines is in the file."""
    labels, go = tmp_path / "labels.jsonl", tmp_path / "go"
    writers = [writer(run_dir, labels, name, 50, go) for name in ("a", "b")]
    go.touch()
    for process in writers:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert sorted(line["by"] for line in lines) == sorted(f"{n}-{i}" for n in "ab" for i in range(50))
    for name in "ab":  # each writer's own lines keep its order
        assert [l["by"] for l in lines if l["by"].startswith(name)] == [f"{name}-{i}" for i in range(50)]


def test_a_held_lock_makes_a_writer_wait_then_write(run_dir, tmp_path):
    """Another process holding the labels file's lock (here this one) stops the command until it lets go: the
    command neither fails nor writes over the file meanwhile, and then adds its label to what the holder wrote."""
    labels, go = tmp_path / "labels.jsonl", tmp_path / "go"
    go.touch()
    with labels_lock(labels):
        process = writer(run_dir, labels, "waiting", 1, go)
        assert "waiting for another write to the labels file" in process.stderr.readline()
        labels.write_text(json.dumps({"run_id": "other", "episode_id": 7, "success": False}) + "\n")
        time.sleep(1.0)
        assert process.poll() is None  # still waiting
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert [(l["run_id"], l.get("by")) for l in map(json.loads, labels.read_text().splitlines())] == [
        ("other", None), (EpisodeStore.open(run_dir).manifest["run_id"], "waiting-0")]
