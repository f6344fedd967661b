"""``dataengine publish``: verify a dataset, then make it a new immutable version of a repo (locally or on the Hub).

``publish(config)`` is the whole step as a function (``dataengine cycle`` composes it with the hooks).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.locks import exclusive_lock
from so101_dataengine.base.preflight import check_repo_id
from so101_dataengine.base.workspace import Workspace
from so101_dataengine.formats.v3_dataset import is_v3_dataset, read_info
from so101_dataengine.publish.hub import publish_to_hub
from so101_dataengine.publish.lerobot_cache import refresh_lerobot_cache
from so101_dataengine.publish.manifest import content_id, hash_files
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.staging import build_version
from so101_dataengine.publish.version import TARGETS, PublishConfig, PublishResult


def publish(config: PublishConfig, say: Callable[[str], None] = print) -> PublishResult:
    check_repo_id(config.repo_id)
    if config.target not in TARGETS:
        raise DataEngineError(f"unknown target {config.target!r}: use --to local or --to hub")
    source = Path(config.dataset)
    if not is_v3_dataset(source):
        raise DataEngineError(f"{source} is not a LeRobot v3 dataset (no meta/info.json): pass a dataset directory")
    registry = LocalRegistry(Workspace.default().registry(config.registry).resolve())
    lock = registry.repo_dir(config.repo_id) / ".lock"
    with exclusive_lock(lock, f"publish of {config.repo_id}", "--registry", on_wait=say):
        say(f"hashing {source} ...")
        files = hash_files(source)
        if config.target == "local":
            result = _publish_local(config, registry, source, files, say)
            newest = registry.version_path(config.repo_id, registry.versions(config.repo_id)[-1].tag)
        else:
            result, newest = publish_to_hub(config, source, files, say), None
        result.notes += refresh_lerobot_cache(config.repo_id, newest)
    return result


def _publish_local(config: PublishConfig, registry: LocalRegistry, source: Path, files: dict,
                   say: Callable[[str], None]) -> PublishResult:
    repo_id = config.repo_id
    registry.clean_staging(repo_id)
    registry.point_codebase_tag(repo_id)
    versions = registry.versions(repo_id)
    parent = versions[-1] if versions else None
    previous_episodes = parent.total_episodes if parent else 0
    same = registry.find_content(repo_id, content_id(files))
    if same is not None:  # previous_episodes: same.parent's, so a retried publish still triggers growth hooks
        before = registry.resolve(repo_id, same.parent).total_episodes if same.parent else 0
        return PublishResult(repo_id, same.tag, False, "local", str(registry.version_path(repo_id, same.tag)), same,
                             previous_episodes=before)
    previous_info = read_info(registry.version_path(repo_id, parent.tag)) if parent else None
    staging = registry.new_staging_dir(repo_id)
    try:
        manifest = build_version(config, source, files, parent, previous_info, registry.repo_dir(repo_id) / "objects",
                                 staging, registry.root, say)
    except DataEngineError:
        shutil.rmtree(staging, ignore_errors=True)  # a refused dataset leaves no staged copy in the registry
        raise
    path = registry.commit(repo_id, staging, manifest.tag)
    return PublishResult(repo_id, manifest.tag, True, "local", str(path), manifest, previous_episodes)
