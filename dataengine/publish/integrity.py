"""Tamper evidence for the local registry: every stored file re-hashed against its version's manifest.

Versions share unchanged files as hard links to one stored object (``objects/<sha[:2]>/<sha>``), so one changed
byte damages every version that has that file. ``verify_repo`` hashes each distinct inode once and reports each
damaged object with every version (and path) it affects; ``serve`` refuses to return a file whose bytes do not
match (:func:`file_matches`, cached per inode state so serving stays fast); and publish re-hashes a stored object
before it links it into a new version (``staging.reusable_object``).
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.publish.manifest import VersionManifest, content_id, sha256_file
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.tags import dataset_tag


def _state(st: os.stat_result) -> tuple:
    """What changes whenever the bytes may have: inode, size, mtime and ctime (ctime cannot be set back by hand)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


_hashes: dict[tuple, str] = {}
_hashes_lock = threading.Lock()


def cached_sha256(path: Path) -> str:
    """sha256 of a regular file, computed once per (inode, size, mtime, ctime) in this process."""
    before = os.stat(path)
    with _hashes_lock:
        known = _hashes.get(_state(before))
    if known is not None:
        return known
    digest = sha256_file(path)
    if _state(os.stat(path)) == _state(before):  # unchanged while hashing: safe to remember
        with _hashes_lock:
            _hashes[_state(before)] = digest
    return digest


def file_matches(path: Path, sha256: str) -> str | None:
    """None when ``path`` is a regular file with these bytes; else what is wrong with it (one phrase)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "is missing"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    found = cached_sha256(path)
    return None if found == sha256 else f"has sha256 {found[:12]}..., its manifest says {sha256[:12]}..."


@dataclass
class Damage:
    """One damaged stored object (or a missing file) and everything it affects."""

    path: str
    """The file's path inside a version (the first version affected)."""
    expected: str
    problem: str
    versions: list[str] = field(default_factory=list)
    """Every version of the repo whose file is this damaged inode (or, for a missing file, lacks it)."""
    stored_object: str | None = None
    """``objects/..`` when the repo's object store links the same damaged inode."""

    def line(self) -> str:
        where = f" (stored object {self.stored_object})" if self.stored_object else ""
        return (f"damaged: {self.path}{where} {self.problem}; affects {len(self.versions)} version(s): "
                f"{', '.join(self.versions)}")


@dataclass
class IntegrityReport:
    repo_id: str
    checked: list[str]
    files: int = 0
    objects: int = 0
    bytes: int = 0
    damaged: list[Damage] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    """Versions whose manifest no longer gives the content id in their tag (the manifest itself was edited)."""

    @property
    def clean(self) -> bool:
        return not self.damaged and not self.manifests

    def affected_versions(self) -> list[str]:
        tags = {t for d in self.damaged for t in d.versions} | set(self.manifests)
        return [t for t in self.checked if t in tags] + sorted(tags - set(self.checked))


def verify_repo(registry: LocalRegistry, repo_id: str, ref: str | None = None) -> IntegrityReport:
    """Re-hash every file of one version (``ref``: tag, ``v3.0`` or number) or of all versions against its manifest.
    A damaged inode is reported once, with every version that links it (found by inode, without hashing again)."""
    versions = registry.versions(repo_id)
    if not versions:
        raise DataEngineError(f"no published versions of {repo_id} in {registry.root}: check --registry and the repo id")
    targets = [registry.resolve(repo_id, ref)] if ref is not None else versions
    report = IntegrityReport(repo_id, [v.tag for v in targets])
    verdicts: dict[tuple, str | None] = {}  # (dev, ino) -> problem, hashed once per inode
    damaged: dict[tuple, Damage] = {}
    for version in targets:
        if content_id(version.files) != version.content_id or dataset_tag(version.sequence,
                                                                          version.content_id) != version.tag:
            report.manifests.append(version.tag)
        root = registry.version_path(repo_id, version.tag)
        for relative, entry in version.files.items():
            report.files += 1
            path = root / relative
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                key = ("missing", version.tag, relative)
                damaged[key] = Damage(relative, entry["sha256"], "is missing", [version.tag])
                continue
            key = (st.st_dev, st.st_ino)
            if key not in verdicts:
                verdicts[key] = file_matches(path, entry["sha256"])
                if verdicts[key] is None:
                    report.objects += 1
                    report.bytes += st.st_size
            if verdicts[key] is not None and key not in damaged:
                damaged[key] = Damage(relative, entry["sha256"], verdicts[key])
    for key, damage in damaged.items():
        if key[0] != "missing":
            damage.versions = _versions_linking(registry, repo_id, versions, damage.expected, key)
            stored = registry.repo_dir(repo_id) / "objects" / damage.expected[:2] / damage.expected
            if _inode(stored) == key:
                damage.stored_object = stored.relative_to(registry.repo_dir(repo_id)).as_posix()
        report.damaged.append(damage)
    return report


def _inode(path: Path) -> tuple | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _versions_linking(registry: LocalRegistry, repo_id: str, versions: list[VersionManifest], sha256: str,
                      inode: tuple) -> list[str]:
    """Every version that has a file of this content whose inode is the damaged one (a stat each, no hashing)."""
    tags = []
    for version in versions:
        root = registry.version_path(repo_id, version.tag)
        if any(e["sha256"] == sha256 and _inode(root / p) == inode for p, e in version.files.items()):
            tags.append(version.tag)
    return tags


def format_report(report: IntegrityReport) -> tuple[list[str], str | None]:
    """Lines to print (one per damaged object or edited manifest) and the one-line error (None when clean)."""
    lines = [d.line() for d in report.damaged]
    lines += [f"damaged: meta/version.json of {tag} no longer gives the content id in its tag (the manifest was "
              "edited)" for tag in report.manifests]
    if report.clean:
        return lines, None
    affected = report.affected_versions()
    what = []
    if report.damaged:
        what.append(f"{len(report.damaged)} damaged or missing file(s)")
    if report.manifests:
        what.append(f"{len(report.manifests)} edited manifest(s)")
    error = (f"{report.repo_id}: {' and '.join(what)} affecting {len(affected)} version(s) ({', '.join(affected)}): "
             "the registry was changed after publishing; restore these files from a backup or a clean mirror, or "
             "publish the dataset again (a new version gets fresh, verified copies; the damaged ones are kept)")
    return lines, error
