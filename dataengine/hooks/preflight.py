"""Checks before a hook launches, each a way the users' runs died late: a full disk at step 10,000 (Pi0 saves
~13 GB per checkpoint), an unwritable run directory, model weights that an offline node tried to download."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from so101_dataengine.hooks.config import HookConfig


def _existing_parent(path: Path) -> Path:
    while not os.path.exists(path) and path != path.parent:  # os.path.exists: False, not an error, where denied
        path = path.parent
    return path


def check_disk(out_dir: Path, hook: HookConfig) -> str | None:
    needed = hook.checkpoint_gb * hook.checkpoints * 1e9
    try:
        free = shutil.disk_usage(_existing_parent(out_dir.resolve())).free
    except OSError:  # cannot even look there: check_writable says why
        return None
    if free < needed:
        return (f"{free / 1e9:.1f} GB free under {out_dir}, {hook.checkpoints} checkpoints x {hook.checkpoint_gb} GB "
                f"= {needed / 1e9:.1f} GB needed: free space or point out_dir at a larger disk")
    return None


def check_writable(out_dir: Path) -> str | None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        return f"cannot write to {out_dir} ({error.strerror}): choose a writable out_dir"
    return None


def _offline(env: dict[str, str]) -> bool:
    return env.get("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0")).lower() in ("1", "true", "yes")


def check_weights(hook: HookConfig, env: dict[str, str]) -> str | None:
    """Each weight is a local path that must exist, or a Hub model id that must be in the Hub cache if offline."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    missing = []
    try:
        cached = {r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model"}
    except CacheNotFound:
        cached = set()
    for weight in hook.weights:
        looks_local = weight.startswith(("/", ".", "~"))
        if looks_local and not Path(weight).expanduser().exists():
            missing.append(f"{weight} (no such path)")
        elif not looks_local and weight not in cached and _offline(env):
            missing.append(f"{weight} (not in the Hub cache and HF_HUB_OFFLINE=1)")
    if missing:
        return (f"model weights missing: {', '.join(missing)}: download them on a connected machine "
                "('huggingface-cli download ID') into the shared Hub cache first")
    return None


def preflight(hook: HookConfig, out_dir: Path, env: dict[str, str]) -> str | None:
    """None when the hook may launch, else every reason it must not (so one retry fixes them all), joined by '; '."""
    reasons = [check_writable(out_dir), check_disk(out_dir, hook), check_weights(hook, env)]
    return "; ".join(reason for reason in reasons if reason) or None
