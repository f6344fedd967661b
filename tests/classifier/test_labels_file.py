"""A labels file is read strictly: a verdict is JSON true or false, never a string that Python would call truthy."""

import json

import pytest

from so101_dataengine.classifier.labels import read_labels
from so101_dataengine.base.errors import DataEngineError


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
