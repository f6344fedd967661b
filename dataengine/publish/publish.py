"""``dataengine publish``: verify a dataset, then make it a new immutable version of a repo (locally or on the Hub).

``publish(config)`` is the whole step as a function (``dataengine cycle`` composes it with the hooks).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.preflight import check_repo_id
from so101_dataengine.publish.card import render_card
from so101_dataengine.publish.lerobot_cache import refresh_lerobot_cache
from so101_dataengine.base.locks import exclusive_lock
from so101_dataengine.publish.manifest import VersionManifest, content_id, episode_identities, hash_files
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.staging import stage_version
from so101_dataengine.publish.tags import dataset_tag
from so101_dataengine.publish.verify import read_info, verify_dataset

TARGETS = ("local", "hub")


def default_registry() -> Path:
    """``$DATAENGINE_REGISTRY``, else ``registry/`` in the workspace (``$DATAENGINE_WORKSPACE`` or ./outputs)."""
    if "DATAENGINE_REGISTRY" in os.environ:
        return Path(os.environ["DATAENGINE_REGISTRY"])
    return Path(os.environ.get("DATAENGINE_WORKSPACE", "outputs")) / "registry"


@dataclass
class PublishConfig:
    """``dataengine publish``."""

    dataset: Path
    repo_id: str
    target: str = "local"
    """``local`` (the registry directory) or ``hub`` (the Hugging Face Hub, or ``$HF_ENDPOINT``)."""
    message: str = ""
    registry: Path | None = None
    """Local registry root; default :func:`default_registry`. With ``hub`` it only holds the publish lock."""
    private: bool = False
    """Create the Hub repo private (if it does not exist yet)."""


@dataclass
class PublishResult:
    repo_id: str
    tag: str
    created: bool
    """False when the same content was already published (as ``tag``): nothing new was made."""
    target: str
    location: str
    """The version's directory (local) or its Hub URL."""
    manifest: VersionManifest
    previous_episodes: int
    """Episodes in the version before this one (0 if none): hooks may fire only on enough growth."""
    notes: list[str] = field(default_factory=list)


def publish(config: PublishConfig, say: Callable[[str], None] = print) -> PublishResult:
    check_repo_id(config.repo_id)
    if config.target not in TARGETS:
        raise DataEngineError(f"unknown target {config.target!r}: use --to local or --to hub")
    source = Path(config.dataset)
    if not (source / "meta" / "info.json").is_file():
        raise DataEngineError(f"{source} is not a LeRobot v3 dataset (no meta/info.json): pass a dataset directory")
    registry = LocalRegistry(Path(config.registry or default_registry()).resolve())
    lock = registry.repo_dir(config.repo_id) / ".lock"
    with exclusive_lock(lock, f"publish of {config.repo_id}", on_wait=say):
        say(f"hashing {source} ...")
        files = hash_files(source)
        if config.target == "local":
            result = _publish_local(config, registry, source, files, say)
            newest = registry.version_path(config.repo_id, registry.versions(config.repo_id)[-1].tag)
        else:
            from so101_dataengine.publish.hub import publish_to_hub

            result, newest = publish_to_hub(config, source, files, say), None
        result.notes += refresh_lerobot_cache(config.repo_id, newest)
    return result


def new_manifest(config: PublishConfig, source: Path, files: dict, parent: VersionManifest | None) -> VersionManifest:
    episodes = episode_identities(source)
    cid = content_id(files)
    sequence = parent.sequence + 1 if parent else 1
    return VersionManifest(repo_id=config.repo_id, tag=dataset_tag(sequence, cid), sequence=sequence, content_id=cid,
                           created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), parent=parent.tag if parent else None,
                           message=config.message, total_episodes=len(episodes),
                           total_frames=sum(e["length"] for e in episodes), episodes=episodes, files=files)


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
    say("verifying (shards, stats, features, every video frame, lerobot's loader) ...")
    previous_info = read_info(registry.version_path(repo_id, parent.tag)) if parent else None
    verify_dataset(source, repo_id, previous_info)
    manifest = new_manifest(config, source, files, parent)
    staging = registry.new_staging_dir(repo_id)
    stage_version(source, files, registry.repo_dir(repo_id) / "objects", staging, manifest.to_json(),
                  render_card(source, manifest, registry.root), say)
    path = registry.commit(repo_id, staging, manifest.tag)
    return PublishResult(repo_id, manifest.tag, True, "local", str(path), manifest, previous_episodes)
