"""Files the engine's way: atomic writes (a reader sees the old file or the new one, never half of one), and
config and JSON files read with a one-line error for a missing or malformed one."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from pathlib import Path

from dataengine.errors import DataEngineError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a hidden temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex}")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def read_toml(path: Path, when_missing: str) -> dict:
    """The TOML document at ``path``; absent, the error says ``when_missing`` (what to write there)."""
    path = Path(path)
    if not path.is_file():
        raise DataEngineError(f"{path} not found: {when_missing}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise DataEngineError(f"{path} is not valid TOML ({error}): fix the file") from None


def read_json(path: Path, fix: str):
    """The JSON document at ``path``; missing, truncated or malformed, one error line naming it and ``fix``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataEngineError(f"{path} is missing: {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataEngineError(f"{path} is damaged (not valid JSON: {error}): {fix}") from None
