"""``publish --to hub`` against a TEST DOUBLE of the Hub's HTTP API (tests/hub_double.py: the real Hub is
unreachable here), and lerobot's own revision resolution (``get_safe_version``, ``LeRobotDataset``) against it."""

from __future__ import annotations

import pytest
from hub_double import start_hub_double

from so101_dataengine.publish.publish import PublishConfig, publish
from so101_dataengine.publish.tags import CODEBASE_TAG

REPO = "lab/so101_hub"
SECRET = "hf_test_token_that_must_never_be_printed"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The double on a local port as HF_ENDPOINT, online, with a token; lerobot's cache root per test."""
    import huggingface_hub.constants as hf_constants

    from so101_dataengine.lerobot_compat import lerobot_home_bindings

    server, hub = start_hub_double(tmp_path / "hub_blobs")
    endpoint = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr("huggingface_hub.file_download.HUGGINGFACE_CO_URL_TEMPLATE", template, raising=False)  # < 1.0
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    for target, value in lerobot_home_bindings(tmp_path / "lerobot_home"):
        monkeypatch.setattr(target, value)
    yield hub
    server.shutdown()


def test_hub_publish_tags_moves_v3_and_lerobot_resolves_the_newest(hub, demo_dataset, grown_dataset, tmp_path,
                                                                   capsys):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.utils import get_safe_version

    config = dict(repo_id=REPO, target="hub", registry=tmp_path / "registry")
    first = publish(PublishConfig(dataset=demo_dataset.out, **config))
    assert first.created and first.tag.startswith("ds-0001-")
    # A machine downloads v3.0 (= the first version) into lerobot's per-repo cache...
    assert LeRobotDataset(REPO, video_backend="pyav").meta.total_episodes == 2

    second = publish(PublishConfig(dataset=grown_dataset.out, message="third episode", **config))
    assert second.created and second.tag.startswith("ds-0002-")
    # Everything about v3.0 is checked on the publish that made the version, before any re-publish (which repairs
    # a stale tag or cache, and would hide a publish that forgot to move it).
    repo = hub.repos[REPO]
    assert set(repo["tags"]) == {first.tag, second.tag, CODEBASE_TAG}
    assert repo["tags"][CODEBASE_TAG] == repo["tags"][second.tag] == repo["branches"]["main"]
    assert repo["tags"][first.tag] != repo["tags"][second.tag]  # the first version is still there, by its tag
    # lerobot's own resolution: the dataset tags are not versions to it, v3.0 is, and it is the newest data.
    assert get_safe_version(REPO, "v3.0") == "v3.0"
    # ... and after the publish the engine dropped that stale cache, so the same call now gets the new data.
    assert LeRobotDataset(REPO, video_backend="pyav").meta.total_episodes == 3
    old = LeRobotDataset(REPO, revision=first.tag, root=tmp_path / "v1", video_backend="pyav")
    assert old.meta.total_episodes == 2 and old[0]["observation.images.wrist"].shape == (3, 64, 64)

    tags = dict(repo["tags"])
    again = publish(PublishConfig(dataset=grown_dataset.out, **config))
    assert not again.created and again.tag == second.tag and hub.repos[REPO]["tags"] == tags
    assert SECRET not in capsys.readouterr().out


def test_a_concurrent_hub_commit_makes_the_publish_fail_not_interleave(hub, demo_dataset, grown_dataset, tmp_path,
                                                                       monkeypatch):
    from huggingface_hub import HfApi

    from so101_dataengine.base.errors import DataEngineError

    publish(PublishConfig(dataset=demo_dataset.out, repo_id=REPO, target="hub", registry=tmp_path / "registry"))
    real_upload = HfApi.upload_folder

    def someone_else_commits_first(self, **kwargs):
        HfApi().upload_file(path_or_fileobj=b"x", path_in_repo="other.txt", repo_id=REPO, repo_type="dataset")
        return real_upload(self, **kwargs)

    monkeypatch.setattr(HfApi, "upload_folder", someone_else_commits_first)
    with pytest.raises(DataEngineError, match="the Hub refused the publish"):
        publish(PublishConfig(dataset=grown_dataset.out, repo_id=REPO, target="hub", registry=tmp_path / "registry"))
    assert len([t for t in hub.repos[REPO]["tags"] if t.startswith("ds-")]) == 1
