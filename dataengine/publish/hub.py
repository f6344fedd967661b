"""``--to hub``: a version becomes a commit on the repo's ``main``, tagged ``ds-NNNN-<content id>``, and the
codebase tag ``v3.0`` moves to it (delete + create: Hub tags cannot be moved in place).

The token comes from huggingface_hub's usual places (``HF_TOKEN``, ``hf auth login``) and is never printed: errors
show the Hub's message only. Concurrency: the local lock serialises this machine; across machines the upload names
the ``main`` commit it builds on (``parent_commit``), so a concurrent publish makes it fail instead of interleave.
Earlier versions stay reachable by their tags (Hub history is never rewritten).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.formats.v3_dataset import read_info
from so101_dataengine.publish.manifest import MANIFEST, VersionManifest, content_id
from so101_dataengine.publish.staging import build_version
from so101_dataengine.publish.tags import CODEBASE_TAG, CONTENT_ID_LENGTH, is_dataset_tag, tag_sequence
from so101_dataengine.publish.version import PublishResult

REPO_TYPE = "dataset"


def _manifest_at(api, repo_id: str, tag: str) -> VersionManifest:
    path = api.hf_hub_download(repo_id, MANIFEST, repo_type=REPO_TYPE, revision=tag)
    return VersionManifest.read(Path(path).parent.parent)


def publish_to_hub(config, source: Path, files: dict, say: Callable[[str], None]):
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RevisionNotFoundError

    from so101_dataengine.lerobot_compat import hub_unreachable_errors

    api = HfApi()
    repo_id = config.repo_id
    try:
        url = api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True, private=config.private)
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
        tags = {t.name: t.target_commit for t in refs.tags}
        versions = sorted((t for t in tags if is_dataset_tag(t)), key=tag_sequence)
        parent = _manifest_at(api, repo_id, versions[-1]) if versions else None
        cid = content_id(files)
        same = next((t for t in versions if t.endswith(cid[:CONTENT_ID_LENGTH])), None)
        if same is not None:
            if versions and tags.get(CODEBASE_TAG) != tags[versions[-1]]:
                _move_codebase_tag(api, repo_id, tags[versions[-1]], RevisionNotFoundError)
            manifest = _manifest_at(api, repo_id, same)
            before = _manifest_at(api, repo_id, manifest.parent).total_episodes if manifest.parent else 0
            return PublishResult(repo_id, same, False, "hub", f"{url}/tree/{same}", manifest, before)
        previous_info = None
        if parent is not None:
            info_path = api.hf_hub_download(repo_id, "meta/info.json", repo_type=REPO_TYPE, revision=parent.tag)
            previous_info = read_info(Path(info_path).parent.parent)
        main = next((b.target_commit for b in refs.branches if b.name == "main"), None)
        with tempfile.TemporaryDirectory(prefix="dataengine-publish-") as tmp:
            staging = Path(tmp) / "version"
            manifest = build_version(config, source, files, parent, previous_info, Path(tmp) / "objects", staging,
                                     None, say)
            say(f"uploading {len(files)} files to {repo_id} ...")
            commit = api.upload_folder(repo_id=repo_id, repo_type=REPO_TYPE, folder_path=staging, revision="main",
                                       commit_message=f"{manifest.tag}: {config.message or 'new version'}",
                                       delete_patterns="*", parent_commit=main)
        api.create_tag(repo_id, tag=manifest.tag, revision=commit.oid, repo_type=REPO_TYPE,
                       tag_message=config.message or None)
        _move_codebase_tag(api, repo_id, commit.oid, RevisionNotFoundError)
    except HfHubHTTPError as error:
        raise DataEngineError(f"the Hub refused the publish of {repo_id}: {str(error).splitlines()[0]}") from None
    except OfflineModeIsEnabled:
        raise DataEngineError(f"cannot publish {repo_id} to the Hub: HF_HUB_OFFLINE is set; unset it (or publish "
                              "to the local registry: --to local)") from None
    except hub_unreachable_errors() as error:  # no answer at all: refused, timed out, no route, DNS
        reason = type(error).__name__ + (": connection refused" if "refused" in str(error) else "")
        raise DataEngineError(f"cannot reach the Hub at {constants.ENDPOINT} ({reason}): check the network and "
                              "HF_ENDPOINT, then publish again (it continues from what the Hub has; a version is "
                              "tagged only once complete)") from None
    return PublishResult(repo_id, manifest.tag, True, "hub", f"{url}/tree/{manifest.tag}", manifest,
                         parent.total_episodes if parent else 0)


def _move_codebase_tag(api, repo_id: str, commit: str, not_found: type[Exception]) -> None:
    with contextlib.suppress(not_found):
        api.delete_tag(repo_id, tag=CODEBASE_TAG, repo_type=REPO_TYPE)
    api.create_tag(repo_id, tag=CODEBASE_TAG, revision=commit, repo_type=REPO_TYPE)
