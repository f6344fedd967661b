"""Build a version's complete file tree in a staging directory, content-addressed, and verify it there, before it
becomes visible."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Callable

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic
from so101_dataengine.publish.card import render_card
from so101_dataengine.publish.manifest import CARD, MANIFEST, VersionManifest, sha256_file
from so101_dataengine.publish.verify import verify_dataset
from so101_dataengine.publish.version import PublishConfig, new_manifest

READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _object_path(objects: Path, sha256: str) -> Path:
    return objects / sha256[:2] / sha256


def reusable_object(target: Path, expected_sha256: str, say: Callable[[str], None] = print) -> bool:
    """Whether the stored object ``target`` is there and intact, re-hashed before it is reused: one changed in the
    registry (its inode is shared by every version that has it) is moved aside as ``<sha>.damaged-<time>``, never
    linked into the new version, which gets a fresh copy; the earlier versions keep theirs untouched
    (``dataengine verify`` lists them)."""
    if not (target.is_symlink() or target.exists()):
        return False
    found = "a link" if target.is_symlink() or not target.is_file() else sha256_file(target)
    if found == expected_sha256:
        return True
    aside = target.with_name(f"{target.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.rename(target, aside)
    say(f"warning: stored object {target} no longer matches its sha256 (found {found[:12]}): moved aside to "
        f"{aside.name}, and this version gets a fresh copy; earlier versions sharing it are damaged: run "
        f"'dataengine verify' on this repo")
    return False


def _copy_checked(source: Path, target: Path, expected_sha256: str) -> None:
    """Copy ``source`` to ``target`` (read-only), checking the hash on the copy itself, so a file changed after it
    was hashed cannot slip into a version under the old hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while block := src.read(1 << 20):
            digest.update(block)
            dst.write(block)
    if digest.hexdigest() != expected_sha256:
        tmp.unlink()
        raise DataEngineError(f"{source} changed while it was being published: publish again once it is written")
    os.chmod(tmp, READ_ONLY)
    os.replace(tmp, target)


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` gets ``source``'s content by rename (never half a file): a hard link, since versions share
    unchanged files with earlier ones, or a read-only copy where links are not possible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
        os.chmod(tmp, READ_ONLY)
    os.replace(tmp, target)


def _stage_files(source: Path, files: dict[str, dict], objects: Path, staging: Path,
                 say: Callable[[str], None]) -> dict[str, str]:
    """``staging`` gets every content file: a link to its intact stored object, else a checked copy. Returns the
    copies, ``{sha256: relative path}``: content the registry does not hold yet, stored (:func:`_store_new`) only
    once the staged version passed verification, so a refused dataset adds nothing to ``objects``."""
    new: dict[str, str] = {}
    for relative, entry in files.items():
        sha = entry["sha256"]
        if sha in new:  # the same content twice in one dataset
            _link_or_copy(staging / new[sha], staging / relative)
        elif reusable_object(_object_path(objects, sha), sha, say):
            _link_or_copy(_object_path(objects, sha), staging / relative)
        else:
            _copy_checked(source / relative, staging / relative, sha)
            new[sha] = relative
    return new


def _store_new(staging: Path, new: dict[str, str], objects: Path) -> None:
    """The verified version's new content becomes stored objects (links to the staged files)."""
    for sha, relative in new.items():
        _link_or_copy(staging / relative, _object_path(objects, sha))


def _verify_staged(staging: Path, source: Path, repo_id: str, previous_info: dict | None) -> None:
    """Publish's checks, run on the staged copy: it is exactly what becomes the version, so a file the manifest
    left out (hidden, say, while ``info.json`` points at it) fails here, not in the users' training. A problem is
    worded with the source's paths: the source is what the user can fix."""
    try:
        verify_dataset(staging, repo_id, previous_info)
    except DataEngineError as error:
        raise DataEngineError(str(error).replace(str(staging), str(source))) from None


def _stage_metadata(staging: Path, manifest_json: str, card: str) -> None:
    """``staging`` gets the manifest and the card, read-only like the content."""
    for relative, text in ((MANIFEST, manifest_json), (CARD, card)):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(staging / relative, text)
        os.chmod(staging / relative, READ_ONLY)


def build_version(config: PublishConfig, source: Path, files: dict[str, dict], parent: VersionManifest | None,
                  previous_info: dict | None, objects: Path, staging: Path, registry_root: Path | None,
                  say: Callable[[str], None] = print) -> VersionManifest:
    """Stage ``source``'s content ``files`` into ``staging``, verify that copy, then add its manifest and card
    (both read from the copy too): the version is checked as it will be committed. Returns its manifest."""
    new = _stage_files(source, files, objects, staging, say)
    say("verifying (shards, stats, features, every video frame, lerobot's loader) ...")
    _verify_staged(staging, source, config.repo_id, previous_info)
    _store_new(staging, new, objects)
    manifest = new_manifest(config, staging, files, parent)
    _stage_metadata(staging, manifest.to_json(), render_card(staging, manifest, registry_root))
    return manifest
