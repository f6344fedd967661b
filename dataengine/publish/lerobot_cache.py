"""Keep lerobot's local copy of a repo from serving an old version after a publish.

lerobot caches a dataset by repo id only (``$HF_LEROBOT_HOME/OWNER/NAME``) and, once files are there, loads them
without asking which revision they are: the users trained on stale data for days after moving the Hub tag. After
each publish the engine therefore
* points ``$HF_LEROBOT_HOME/OWNER/NAME`` at the new version (a symlink) when the registry is local, so a plain
  ``LeRobotDataset(repo_id)`` reads the newest version offline, as ``v3.0`` would on the Hub;
* drops a Hub download there (it has ``.cache/huggingface``) so the next load fetches the moved ``v3.0``;
* drops the huggingface_hub cache's pointer ``refs/v3.0`` of the repo, which would resolve the tag offline to the
  old commit.
A directory there that the engine did not make (the user's own data) is moved aside, never deleted.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from so101_dataengine.publish.tags import CODEBASE_TAG


def lerobot_home() -> Path:
    from so101_dataengine.lerobot_compat import HF_LEROBOT_HOME  # honours $HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME)


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _clear(path: Path) -> str | None:
    """Remove what the engine or lerobot put at ``path``; move anything else aside. Returns what was done."""
    if path.is_symlink():
        path.unlink()
        return None
    if not path.exists():
        return None
    if (path / ".cache" / "huggingface").is_dir():
        shutil.rmtree(path)
        return f"removed the stale lerobot download {path}"
    aside = path.parent / f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    path.rename(aside)
    return f"moved {path} (not made by lerobot or dataengine) aside to {aside}"


def refresh_lerobot_cache(repo_id: str, newest: Path | None) -> list[str]:
    """Make lerobot's caches of ``repo_id`` resolve the newest version; returns what was changed, for the user."""
    notes = []
    cached = lerobot_home() / repo_id
    note = _clear(cached)
    if note:
        notes.append(note)
    if newest is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".tmp-{cached.name}-{os.getpid()}")
        tmp.symlink_to(Path(newest).resolve(), target_is_directory=True)
        os.replace(tmp, cached)
        notes.append(f"{cached} -> {Path(newest).name}")
    ref = hub_cache() / f"datasets--{repo_id.replace('/', '--')}" / "refs" / CODEBASE_TAG
    if ref.is_file():
        ref.unlink()
        notes.append(f"dropped the hub cache's stale {CODEBASE_TAG} pointer {ref}")
    return notes
