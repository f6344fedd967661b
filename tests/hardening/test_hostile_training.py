"""Hostile inputs, training and the classifier: options lerobot-train or torch would die on with a traceback, a
run to resume whose last checkpoint is incomplete, a weights file that is not safetensors, and labels given as a
range past the run's end, a reversed range or a directory.

Each case runs the real command and asserts what ``docs/guarantees.md`` promises: exit status 2, exactly one
``error:`` line naming the flag or file, no traceback, nothing written (no ``--out``, no frame cache, no labels
file or lock), and every input byte-identical afterwards. The checks must come before any expensive work: before
lerobot-train starts, before a dataset is decoded, before a range of ids is expanded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hardening_inputs import assert_one_error_line

from so101_dataengine.cli import main
from so101_dataengine.training.train import RESUME_FILES

TRAIN = ["train", "--device", "cpu", "--num-workers", "0", "--batch-size", "2", "--steps", "2"]
CLASSIFIER_TRAIN = ["classifier", "train", "--device", "cpu", "--workers", "1", "--epochs", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real finished rollout run: 2 scripted-expert episodes (ids 0 and 1) at 32 px."""
    out = tmp_path_factory.mktemp("hostile_training") / "run"
    assert main(["rollout", "--policy", "scripted", "--n", "2", "--num-envs", "2", "--workers", "1",
                 "--image-size", "32", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("option,flag", [
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--save-freq", "0"], "--save-freq"),
    (["--num-workers", "-1"], "--num-workers"),
    (["--device", "quantum"], "--device"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_bad_train_option_is_one_error_line_before_the_dataset_is_read(demo_dataset, tmp_path, capfd, option,
                                                                         flag):
    """lerobot-train refuses these only after loading the dataset and the policy, with ~140 lines of traceback
    (``--save-freq 0`` even after its first step): the engine refuses them before it builds the frame cache."""
    out, workspace = tmp_path / "run", tmp_path / "ws"
    assert_one_error_line(["--workspace", str(workspace), *TRAIN, "--dataset", str(demo_dataset.out), *option,
                           "--out", str(out)], capfd, flag, [demo_dataset.out], out)
    assert not workspace.exists(), "the frame cache was built before the option was checked"


def _checkpoint(run: Path, files: tuple[str, ...]) -> None:
    """A run directory as lerobot-train leaves it, with only ``files`` in ``checkpoints/000004`` (``last`` points
    there): what a save cut short, or a hand copy of part of a run, leaves."""
    step = run / "checkpoints" / "000004"
    (step / "pretrained_model").mkdir(parents=True)
    for name in files:
        (step / name).parent.mkdir(parents=True, exist_ok=True)
        (step / name).write_text("{}")
    (run / "checkpoints" / "last").symlink_to("000004")


@pytest.mark.parametrize("files,named", [
    ((), "pretrained_model/train_config.json"),
    (tuple(f for f in RESUME_FILES if f != "pretrained_model/train_config.json"), "pretrained_model/train_config.json"),
    (tuple(f for f in RESUME_FILES if not f.startswith("training_state/")), "training_state/training_step.json"),
], ids=["pretrained_model_only", "no_train_config", "no_training_state"])
def test_resuming_an_incomplete_checkpoint_is_one_error_line_naming_what_is_missing(demo_dataset, tmp_path, capfd,
                                                                                    files, named):
    """lerobot-train takes a missing ``train_config.json`` for a Hub repo id and dies in its validation: the
    engine names the missing file and the two ways on."""
    run = tmp_path / "run"
    _checkpoint(run, files)
    line = assert_one_error_line(["--workspace", str(tmp_path / "ws"), *TRAIN, "--dataset", str(demo_dataset.out),
                                  "--resume", "--out", str(run)], capfd, named, [run, demo_dataset.out])
    assert "cannot resume" in line and "drop --resume" in line
    assert not (tmp_path / "ws").exists()


def test_resuming_a_checkpoint_with_a_damaged_train_config_is_one_error_line(demo_dataset, tmp_path, capfd):
    run = tmp_path / "run"
    _checkpoint(run, RESUME_FILES)
    (run / "checkpoints" / "000004" / "pretrained_model" / "train_config.json").write_text('{"policy": ')
    line = assert_one_error_line(["--workspace", str(tmp_path / "ws"), *TRAIN, "--dataset", str(demo_dataset.out),
                                  "--resume", "--out", str(run)], capfd, "train_config.json is damaged",
                                 [run, demo_dataset.out])
    assert "drop --resume" in line


def _not_safetensors(tmp_path: Path) -> Path:
    path = tmp_path / "weights.safetensors"
    path.write_text("these are not weights\n" * 100)
    return path


@pytest.mark.parametrize("option,flag", [
    (["--pretrained", "NOT_SAFETENSORS"], "weights.safetensors is damaged (not a safetensors file"),
    (["--pretrained", "A_DIRECTORY"], "is a directory, not a safetensors file"),
    (["--device", "quantum"], "--device"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--patience", "-1"], "--patience"),
    (["--patience", "0"], "--patience"),
    (["--min-improvement", "nan"], "--min-improvement"),
    (["--min-improvement", "-1"], "--min-improvement"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_bad_classifier_train_option_is_one_error_line_before_any_episode_is_read(run, tmp_path, capfd, option,
                                                                                    flag):
    """Torch refuses a NaN learning rate only once every frame is loaded, safetensors and torch raise their own
    errors, and a negative patience trained silently: each is one line, and the run's episodes are not read."""
    weights = _not_safetensors(tmp_path)
    (tmp_path / "a_directory").mkdir()
    given = [{"NOT_SAFETENSORS": str(weights), "A_DIRECTORY": str(tmp_path / "a_directory")}.get(a, a) for a in option]
    out = tmp_path / "artifact"
    assert_one_error_line([*CLASSIFIER_TRAIN, "--runs", str(run), *given, "--out", str(out)], capfd, flag,
                          [run, weights], out)


@pytest.mark.parametrize("episodes,named", [
    ("0-99999999999", "has no episode 99999999999 (it has 2 episodes, ids 0-1)"),
    ("0,5-3", "the range 5-3 ends before it starts"),
])
def test_a_bad_episode_range_is_one_error_line_and_writes_no_label(run, tmp_path, capfd, episodes, named):
    """A range is checked against the run before it is expanded (``0-99999999999`` was a ``MemoryError``), and a
    reversed one is refused (it labelled nothing and said so with exit status 0)."""
    labels = tmp_path / "labels" / "labels.jsonl"
    labels.parent.mkdir()
    assert_one_error_line(["classifier", "label", str(run), "--labels", str(labels), "--episodes", episodes,
                           "--success"], capfd, named, [run])
    assert list(labels.parent.iterdir()) == [], "a labels file or its lock was written"


@pytest.mark.parametrize("verdict", [["--episodes", "0", "--success"], []], ids=["label", "show"])
def test_labels_given_as_a_directory_is_one_error_line(run, tmp_path, capfd, verdict):
    """The same line as the review page's: writing crashed renaming a file over the directory, and showing
    reported 'no labels' with exit status 0."""
    directory = tmp_path / "labels"
    directory.mkdir()
    (directory / "keep.txt").write_text("mine\n")
    assert_one_error_line(["classifier", "label", str(run), "--labels", str(directory), *verdict], capfd,
                          f"--labels {directory} is a directory: pass a file path such as {directory}/labels.jsonl",
                          [run, directory])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"], "a lock file was written beside it"
