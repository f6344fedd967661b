"""Checks that run before any long work starts, so a run fails in a second with a fix instead of after an hour."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from dataengine.errors import DataEngineError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str) -> None:
    if not _REPO_ID.match(repo_id):
        raise DataEngineError(f"repo id {repo_id!r} is not of the form OWNER/NAME (e.g. local/so101_demos)")


def check_positive(name: str, value: int) -> None:
    if value < 1:
        raise DataEngineError(f"{name} must be at least 1, got {value}")


def check_new_output_dir(path: Path) -> None:
    """``path`` must not exist (or be an empty directory) and its parent must be writable.

    Writability is probed by creating (and removing) a file, since permission bits lie for root and for
    read-only mounts. The parent directories are created if missing.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataEngineError(f"output {path} already exists and is not empty: choose a new --out or remove it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise DataEngineError(
            f"cannot write under {path.parent} ({error.strerror}): choose an --out in a writable directory"
        ) from None
