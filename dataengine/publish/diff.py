"""``dataengine diff V1 V2``: which episodes a version added or removed, by episode identity (see
``manifest.episode_identities``: provenance run/episode id when known, else a hash of states and actions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.formats.v3_dataset import is_v3_dataset
from so101_dataengine.publish.manifest import VersionManifest, episode_identities
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.tags import is_dataset_tag


@dataclass
class EpisodeSet:
    label: str
    episodes: list[dict]


@dataclass
class VersionDiff:
    old: EpisodeSet
    new: EpisodeSet
    added: list[dict]
    removed: list[dict]
    kept: int


def resolve_spec(spec: str, registry: LocalRegistry) -> EpisodeSet:
    """``OWNER/NAME@REF`` (a tag, ``v3.0`` or a sequence number), a bare dataset tag (searched in every repo of the
    registry), or a dataset directory (e.g. what you are about to publish)."""
    if "@" in spec:
        repo_id, ref = spec.rsplit("@", 1)
        version = registry.resolve(repo_id, ref)
        return EpisodeSet(f"{repo_id}@{version.tag}", version.episodes)
    path = Path(spec)
    if spec and is_v3_dataset(path):  # Path("") is the current directory, which the user did not name
        return EpisodeSet(str(path), episode_identities(path))
    # only a real tag is looked up: '..' or '' would name the versions directory itself, '*' or '?' a pattern
    tagged = Path(registry.root).glob(f"*/*/versions/{spec}") if is_dataset_tag(spec) else ()
    matches = [VersionManifest.read(p) for p in tagged if p.is_dir()]
    if len(matches) == 1:
        return EpisodeSet(f"{matches[0].repo_id}@{spec}", matches[0].episodes)
    if len(matches) > 1:
        raise DataEngineError(f"tag {spec} exists in {len(matches)} repos: write OWNER/NAME@{spec}")
    raise DataEngineError(f"{spec!r} is neither OWNER/NAME@TAG, a published tag in {registry.root}, nor a dataset "
                          "directory: see 'dataengine versions REPO_ID'")


def diff_versions(old: EpisodeSet, new: EpisodeSet) -> VersionDiff:
    old_ids = {e["id"] for e in old.episodes}
    new_ids = {e["id"] for e in new.episodes}
    return VersionDiff(old, new, added=[e for e in new.episodes if e["id"] not in old_ids],
                       removed=[e for e in old.episodes if e["id"] not in new_ids], kept=len(old_ids & new_ids))
