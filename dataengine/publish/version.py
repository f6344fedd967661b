"""What a publish is asked (``PublishConfig``), what it made (``PublishResult``), and the manifest of a new version:
shared by the local and the Hub targets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.publish.manifest import VersionManifest, content_id, episode_identities
from so101_dataengine.publish.tags import dataset_tag

TARGETS = ("local", "hub")


@dataclass
class PublishConfig:
    """``dataengine publish``."""

    dataset: Path
    repo_id: str
    target: str = "local"
    """``local`` (the registry directory) or ``hub`` (the Hugging Face Hub, or ``$HF_ENDPOINT``)."""
    message: str = ""
    registry: Path | None = None
    """Local registry root; default the default workspace's (``Workspace.registry``). With ``hub`` it only holds
    the publish lock."""
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


def new_manifest(config: PublishConfig, source: Path, files: dict, parent: VersionManifest | None) -> VersionManifest:
    episodes = episode_identities(source)
    cid = content_id(files)
    sequence = parent.sequence + 1 if parent else 1
    return VersionManifest(repo_id=config.repo_id, tag=dataset_tag(sequence, cid), sequence=sequence, content_id=cid,
                           created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), parent=parent.tag if parent else None,
                           message=config.message, total_episodes=len(episodes),
                           total_frames=sum(e["length"] for e in episodes), episodes=episodes, files=files)
