"""The local registry: every published version of a repo side by side, immutable, content-addressed.

```
REGISTRY/OWNER/NAME/versions/ds-0002-1a2b3c4d5e6f/   a complete LeRobot v3 dataset (+ README.md card,
                                                   meta/version.json manifest), files read-only
REGISTRY/OWNER/NAME/objects/1a/1a2b...             each distinct file once, named by its sha256; versions hard-link
REGISTRY/OWNER/NAME/refs/v3.0                      the tag lerobot resolves by default -> the newest version
REGISTRY/OWNER/NAME/.lock, .staging/               the publish lock; versions being built
```
A version is built under ``.staging/`` and renamed into ``versions/`` in one step, so a crash leaves the earlier
versions untouched and the new one complete or absent; nothing under ``versions/`` is ever rewritten or deleted.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading, write_atomic
from so101_dataengine.base.preflight import check_repo_id
from so101_dataengine.publish.manifest import VersionManifest
from so101_dataengine.publish.tags import CODEBASE_TAG, is_dataset_tag, tag_sequence


@dataclass(frozen=True)
class LocalRegistry:
    root: Path

    def repo_dir(self, repo_id: str) -> Path:
        """The repo's directory; a repo id that is not OWNER/NAME (``../..``) never becomes a path."""
        return Path(self.root) / check_repo_id(repo_id)

    def version_path(self, repo_id: str, tag: str) -> Path:
        return self.repo_dir(repo_id) / "versions" / tag

    def versions(self, repo_id: str) -> list[VersionManifest]:
        """All versions, oldest first."""
        directory = self.repo_dir(repo_id) / "versions"
        tags = [p.name for p in directory.iterdir() if is_dataset_tag(p.name)] if directory.is_dir() else []
        return [VersionManifest.read(directory / t) for t in sorted(tags, key=tag_sequence)]

    def refs(self, repo_id: str) -> dict[str, str]:
        """Each ref's name and the tag it names (hidden files are an interrupted write's leftovers, not refs). A ref
        that cannot be read is one error line: ``publish`` rewrites ``refs/v3.0`` once the damaged one is gone."""
        directory = self.repo_dir(repo_id) / "refs"
        fix = f"remove it, then run 'dataengine publish' to {repo_id} again (it rewrites {CODEBASE_TAG})"
        if directory.exists() and not directory.is_dir():
            raise DataEngineError(f"{directory} is damaged (not a directory): {fix}")
        refs = {}
        for path in sorted(directory.iterdir()) if directory.is_dir() else ():
            if not path.name.startswith("."):
                with reading(path, fix, "not a tag name"):
                    refs[path.name] = path.read_text().strip()
        return refs

    def resolve(self, repo_id: str, ref: str) -> VersionManifest:
        """A dataset tag, the codebase tag (``v3.0``: the newest), or a sequence number (``3``)."""
        versions = self.versions(repo_id)
        if not versions:
            raise DataEngineError(f"no published versions of {repo_id} in {self.root}: run 'dataengine publish' first")
        tag = self.refs(repo_id).get(ref, ref)
        for version in versions:
            if version.tag == tag or (ref.isdigit() and version.sequence == int(ref)):
                return version
        raise DataEngineError(f"{repo_id} has no version {ref!r}: see 'dataengine versions {repo_id}'")

    def find_content(self, repo_id: str, content_id: str) -> VersionManifest | None:
        return next((v for v in self.versions(repo_id) if v.content_id == content_id), None)

    def clean_staging(self, repo_id: str) -> None:
        """Remove what a crashed publish left half-built: staged versions and object copies not yet renamed into
        place (call only while holding the publish lock)."""
        shutil.rmtree(self.repo_dir(repo_id) / ".staging", ignore_errors=True)
        for partial in (self.repo_dir(repo_id) / "objects").glob("*/.tmp-*"):
            partial.unlink(missing_ok=True)

    def new_staging_dir(self, repo_id: str) -> Path:
        path = self.repo_dir(repo_id) / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def commit(self, repo_id: str, staging: Path, tag: str) -> Path:
        """Make a staged version visible (one rename) and point the codebase tag at it."""
        target = self.version_path(repo_id, tag)
        if target.exists():
            raise DataEngineError(f"{repo_id} already has a version {tag}: publish again (nothing was changed)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        self.point_codebase_tag(repo_id)
        return target

    def point_codebase_tag(self, repo_id: str) -> None:
        """``refs/v3.0`` names the newest version (also repairs it after a crash between rename and this)."""
        versions = self.versions(repo_id)
        if versions and self.refs(repo_id).get(CODEBASE_TAG) != versions[-1].tag:
            (self.repo_dir(repo_id) / "refs").mkdir(parents=True, exist_ok=True)
            write_atomic(self.repo_dir(repo_id) / "refs" / CODEBASE_TAG, versions[-1].tag + "\n")
