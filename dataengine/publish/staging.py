"""Build a version's complete file tree in a staging directory, content-addressed, before it becomes visible."""

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
from so101_dataengine.publish.manifest import CARD, MANIFEST, sha256_file

READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def store_object(source: Path, expected_sha256: str, objects: Path,
                 say: Callable[[str], None] = print) -> Path:
    """Copy ``source`` into ``objects/<sha[:2]>/<sha>`` (once per content), checking the hash on the copy itself,
    so a file changed after it was hashed cannot slip into a version under the old hash.

    A stored object is re-hashed before it is reused: one changed in the registry (its inode is shared by every
    version that has it) is moved aside as ``<sha>.damaged-<time>``, never linked into the new version, which gets
    a fresh copy; the earlier versions keep theirs untouched (``dataengine verify`` lists them)."""
    target = objects / expected_sha256[:2] / expected_sha256
    if target.is_symlink() or target.exists():
        found = "a link" if target.is_symlink() or not target.is_file() else sha256_file(target)
        if found == expected_sha256:
            return target
        aside = target.with_name(f"{target.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        os.rename(target, aside)
        say(f"warning: stored object {target} no longer matches its sha256 (found {found[:12]}): moved aside to "
            f"{aside.name}, and this version gets a fresh copy; earlier versions sharing it are damaged: run "
            f"'dataengine verify' on this repo")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{expected_sha256}-{os.getpid()}")
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
    return target


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # versions share unchanged files with earlier ones
    except OSError:
        shutil.copy2(source, target)
        os.chmod(target, READ_ONLY)


def stage_version(source: Path, files: dict[str, dict], objects: Path, staging: Path, manifest_json: str,
                  card: str, say: Callable[[str], None] = print) -> None:
    """``staging`` gets every content file (hard links into ``objects``, each re-hashed), the manifest and the card."""
    for relative, entry in files.items():
        link_or_copy(store_object(source / relative, entry["sha256"], objects, say), staging / relative)
    for relative, text in ((MANIFEST, manifest_json), (CARD, card)):
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(staging / relative, text)
        os.chmod(staging / relative, READ_ONLY)
