"""Publishing to the local registry, for real: real datasets from ``dataengine demos``, lerobot's own loader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.cli import main
from so101_dataengine.publish.manifest import VersionManifest, sha256_file
from so101_dataengine.publish.publish import PublishConfig, publish
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.tags import CODEBASE_TAG, dataset_tag

REPO = "lab/so101_pick_place"


def test_dataset_tags_cannot_be_taken_for_codebase_versions():
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION
    from lerobot.datasets.utils import is_valid_version

    assert CODEBASE_TAG == CODEBASE_VERSION
    for sequence in (1, 42, 12345):
        tag = dataset_tag(sequence, "0123456789abcdef")
        assert not is_valid_version(tag), tag  # else lerobot's get_safe_version would treat it as a codebase version


def test_publish_versions_idempotence_card_cache_and_diff(demo_dataset, grown_dataset, tmp_path, lerobot_home, capsys):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    registry = tmp_path / "registry"
    first = publish(PublishConfig(dataset=demo_dataset.out, repo_id=REPO, registry=registry, message="first"))
    assert first.created and first.tag.startswith("ds-0001-")
    v1 = LocalRegistry(registry).version_path(REPO, first.tag)
    before = {p: sha256_file(v1 / p) for p in first.manifest.files}

    # The same content again: no new version, and the CLI says so.
    assert main(["publish", str(demo_dataset.out), "--repo-id", REPO, "--registry", str(registry), "--no-hooks"]) == 0
    assert f"already published as {REPO} {first.tag}; no new version" in capsys.readouterr().out
    assert [v.tag for v in LocalRegistry(registry).versions(REPO)] == [first.tag]

    second = publish(PublishConfig(dataset=grown_dataset.out, repo_id=REPO, registry=registry))
    versions = LocalRegistry(registry).versions(REPO)
    assert [v.tag for v in versions] == [first.tag, second.tag] and second.tag.startswith("ds-0002-")
    assert versions[1].parent == first.tag and versions[1].total_episodes == 3
    assert LocalRegistry(registry).refs(REPO) == {CODEBASE_TAG: second.tag}
    # The earlier version is untouched, byte for byte; unchanged files are shared (content-addressed).
    assert {p: sha256_file(v1 / p) for p in first.manifest.files} == before
    v2 = LocalRegistry(registry).version_path(REPO, second.tag)
    assert os.stat(v1 / "meta/tasks.parquet").st_ino == os.stat(v2 / "meta/tasks.parquet").st_ino
    # Each version verifies against its own manifest.
    manifest = VersionManifest.read(v2)
    assert all(sha256_file(v2 / p) == e["sha256"] for p, e in manifest.files.items())

    # lerobot's cache of the repo id now is the newest version: a plain LeRobotDataset(repo_id) gets 3 episodes.
    assert LeRobotDataset(REPO, video_backend="pyav").meta.total_episodes == 3
    assert LeRobotDataset(REPO, root=v1, video_backend="pyav").meta.total_episodes == 2

    card = (v2 / "README.md").read_text()
    assert f'revision="{second.tag}"' in card and "episodes: 3" in card and "100.0%" in card

    assert main(["versions", REPO, "--registry", str(registry)]) == 0
    listing = capsys.readouterr().out
    assert first.tag[:12] in listing and "v3.0" in listing
    assert main(["diff", f"{REPO}@1", f"{REPO}@{CODEBASE_TAG}", "--registry", str(registry)]) == 0
    diff = capsys.readouterr().out
    assert "+1 added, -0 removed, 2 kept" in diff
    assert main(["diff", f"{REPO}@2", f"{REPO}@1", "--registry", str(registry)]) == 0
    assert "+0 added, -1 removed, 2 kept" in capsys.readouterr().out


def test_user_data_in_lerobots_cache_is_moved_aside_not_deleted(demo_dataset, tmp_path, lerobot_home):
    own = lerobot_home / REPO
    own.mkdir(parents=True)
    (own / "notes.txt").write_text("mine")
    result = publish(PublishConfig(dataset=demo_dataset.out, repo_id=REPO, registry=tmp_path / "registry"))
    assert (lerobot_home / REPO).resolve() == LocalRegistry(tmp_path / "registry").version_path(REPO, result.tag)
    (aside,) = (lerobot_home / "lab").glob("so101_pick_place.replaced-*")
    assert (aside / "notes.txt").read_text() == "mine"


def _copy(dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    return copy


def test_verification_rejects_missing_shards_and_bad_image_stats(demo_dataset, tmp_path, lerobot_home):
    registry = tmp_path / "registry"
    broken = _copy(demo_dataset.out, tmp_path)
    next((broken / "videos" / "observation.images.wrist").rglob("*.mp4")).unlink()
    with pytest.raises(DataEngineError, match=r"1 shard\(s\) missing: videos/observation.images.wrist/chunk-000"):
        publish(PublishConfig(dataset=broken, repo_id=REPO, registry=registry))
    shutil.rmtree(broken)

    broken = _copy(demo_dataset.out, tmp_path)
    stats = json.loads((broken / "meta" / "stats.json").read_text())
    stats["observation.images.overhead"]["std"] = [[[0.002]], [[0.002]], [[0.002]]]  # lerobot's sampled stats
    (broken / "meta" / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(DataEngineError, match="image stats of 'observation.images.overhead'.*dataengine stats"):
        publish(PublishConfig(dataset=broken, repo_id=REPO, registry=registry))
    del stats["action"]["std"]
    (broken / "meta" / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(DataEngineError, match="stats of 'action' lack std"):
        publish(PublishConfig(dataset=broken, repo_id=REPO, registry=registry))
    assert LocalRegistry(registry).versions(REPO) == []  # nothing was published


def test_a_crash_mid_publish_leaves_earlier_versions_and_no_partial_one(demo_dataset, grown_dataset, tmp_path,
                                                                        lerobot_home, monkeypatch):
    registry = LocalRegistry(tmp_path / "registry")
    first = publish(PublishConfig(dataset=demo_dataset.out, repo_id=REPO, registry=registry.root))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after staging, before the version becomes visible

    monkeypatch.setattr(LocalRegistry, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        publish(PublishConfig(dataset=grown_dataset.out, repo_id=REPO, registry=registry.root))
    assert [v.tag for v in registry.versions(REPO)] == [first.tag]
    assert registry.refs(REPO)[CODEBASE_TAG] == first.tag
    monkeypatch.undo()
    second = publish(PublishConfig(dataset=grown_dataset.out, repo_id=REPO, registry=registry.root))
    assert second.created and [v.tag for v in registry.versions(REPO)] == [first.tag, second.tag]
    assert not any((registry.repo_dir(REPO) / ".staging").iterdir())


def test_two_publishes_at_once_do_not_interleave(demo_dataset, grown_dataset, tmp_path):
    registry = tmp_path / "registry"
    env = dict(os.environ, HF_LEROBOT_HOME=str(tmp_path / "lerobot_home"))
    procs = [subprocess.Popen([sys.executable, "-m", "so101_dataengine.cli", "publish", str(d), "--repo-id", REPO,
                               "--registry", str(registry), "--no-hooks"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for d in (demo_dataset.out, grown_dataset.out)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    versions = LocalRegistry(registry).versions(REPO)
    assert [v.sequence for v in versions] == [1, 2] and {v.total_episodes for v in versions} == {2, 3}
    assert versions[1].parent == versions[0].tag
    for v in versions:
        root = LocalRegistry(registry).version_path(REPO, v.tag)
        assert all(sha256_file(root / p) == e["sha256"] for p, e in v.files.items())


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert main(["publish", str(tmp_path), "--repo-id", REPO, "--registry", str(tmp_path / "r"), "--no-hooks"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path} is not a LeRobot v3 dataset (no meta/info.json): "
                                               "pass a dataset directory")
    assert main(["publish", str(tmp_path), "--repo-id", "no-slash", "--no-hooks"]) == 2
    assert "is not of the form OWNER/NAME" in capsys.readouterr().err
    assert main(["versions", REPO, "--registry", str(tmp_path / "r")]) == 0
    assert "no published versions" in capsys.readouterr().out
    assert main(["diff", f"{REPO}@1", f"{REPO}@2", "--registry", str(tmp_path / "r")]) == 2
    assert "run 'dataengine publish' first" in capsys.readouterr().err
