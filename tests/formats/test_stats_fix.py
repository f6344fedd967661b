"""`dataengine stats fix`: a dataset written by lerobot's own writer (broken image stats, uint8 overflow) gets exact
stats, atomically, with a report of what changed; data and videos are never touched."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from lerobot_recorder import write_with_lerobot
from pixel_stats import assert_stats_exact

from so101_dataengine.cli import main
from so101_dataengine.formats.episode import record_episode
from so101_dataengine.formats.features import so101_features
from so101_dataengine.lerobot_compat import LEROBOT_06
from so101_dataengine.scenes.expert import ScriptedExpert
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv


def _digest(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def lerobot_written(tmp_path):
    """One expert episode written by lerobot's add_frame/save_episode with lerobot's own stats left in place."""
    env = PickPlaceEnv(PickPlaceConfig(image_size=32))
    expert = ScriptedExpert(env)
    try:
        episode = record_episode(env, 7, lambda _obs: expert.act(), expert.reset)
    finally:
        env.close()
    root = tmp_path / "ds"
    write_with_lerobot(root, "local/broken", 30, so101_features(32), [episode.frames])
    return root


def test_stats_fix_replaces_lerobots_overflowed_image_std_and_reports_it(lerobot_written, capsys):
    root = lerobot_written
    broken = json.loads((root / "meta" / "stats.json").read_text())
    lerobot_std = max(np.ravel(broken["observation.images.wrist"]["std"]))
    if LEROBOT_06:  # 0.6 fixed the overflow, but still estimates image stats from a sample of frames, not exactly
        assert lerobot_std > 0.02
    else:
        assert lerobot_std < 0.02, "lerobot 0.4.4's uint8 overflow"
    media = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] in ("data", "videos")]
    before = _digest(media)

    assert main(["stats", "fix", str(root), "--dry-run"]) == 0
    assert "would change" in capsys.readouterr().out
    assert json.loads((root / "meta" / "stats.json").read_text()) == broken, "--dry-run writes nothing"

    assert main(["stats", "fix", str(root)]) == 0
    out = capsys.readouterr().out
    assert "observation.images.wrist" in out and "std" in out and "data and videos untouched" in out
    fixed = json.loads((root / "meta" / "stats.json").read_text())
    assert _digest(media) == before
    assert sorted(p.name for p in root.iterdir()) == ["data", "meta", "videos"], "no staging left behind"

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from so101_dataengine.lerobot_compat.video import video_backend

    loaded = LeRobotDataset("local/broken", root=root, video_backend=video_backend())
    assert_stats_exact(loaded, fixed, ["observation.images.overhead", "observation.images.wrist"])
    np.testing.assert_array_equal(np.ravel(loaded.meta.stats["observation.images.wrist"]["std"]),  # lerobot reads it
                                  np.ravel(fixed["observation.images.wrist"]["std"]))
    assert min(np.ravel(fixed["observation.images.wrist"]["std"])) > 0.02

    assert main(["stats", "fix", str(root)]) == 0  # a second run finds nothing to change
    assert "0 stats changed" in capsys.readouterr().out


def test_stats_fix_refuses_what_is_not_a_finished_v3_dataset(tmp_path, capsys):
    assert main(["stats", "fix", str(tmp_path)]) == 2
    assert "not a LeRobot v3 dataset" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
