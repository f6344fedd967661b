"""Files the engine's way: atomic writes (a reader sees the old file or the new one, never half of one), and every
file the engine reads (TOML, JSON, JSON lines, ``.npz``, parquet, a stream of JPEGs) read so that a missing,
truncated or corrupt one is one ``DataEngineError`` line naming the file and the fix, never a traceback.

Each reader takes ``fix``: what the user should do about that file (its callers know; this module does not).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from so101_dataengine.base.errors import DataEngineError

DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
"""What a decoder raises on bytes that are not what it expects (pyarrow's ``ArrowInvalid`` is a ``ValueError``,
Pillow's truncated-image and unidentified-image errors are ``OSError``s, numpy's ``.npz`` reader raises
``BadZipFile`` for a cut file and ``zlib.error`` for flipped bytes)."""


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a hidden temporary file beside ``path``, then rename it over ``path``; if either step fails (a
    full disk), ``path`` keeps its old content and the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex}")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_toml(path: Path, when_missing: str) -> dict:
    """The TOML document at ``path``; absent, the error says ``when_missing`` (what to write there)."""
    path = Path(path)
    if not path.is_file():
        raise DataEngineError(f"{path} not found: {when_missing}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise DataEngineError(f"{path} is not valid TOML (not UTF-8 text: {error.reason}): fix the file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DataEngineError(f"{path} is not valid TOML ({error}): fix the file") from None


def _first_line(error: BaseException) -> str:
    """The error's own words, one line, without object reprs (``<_io.BytesIO object at 0x...>`` says nothing)."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return re.sub(r" ?<[^<>]* at 0x[0-9a-f]+>", "", text.splitlines()[0])[:160]


@contextlib.contextmanager
def reading(path: Path, fix: str, what: str = "", also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Inside the block, reading ``path`` (and only it) may fail only with one error line: missing, unreadable, or
    damaged (``what`` says what it should be, e.g. ``not valid JSON``), each followed by ``fix``. ``also``: a
    decoder's own error types beyond :data:`DECODE_ERRORS` (e.g. PyAV's ``FFmpegError``)."""
    try:
        yield
    except DataEngineError:
        raise
    except FileNotFoundError:
        raise DataEngineError(f"{path} is missing: {fix}") from None
    except (PermissionError, IsADirectoryError) as error:
        raise DataEngineError(f"{path} cannot be read ({_first_line(error)}): {fix}") from None
    except DECODE_ERRORS + also as error:
        reason = f"{what}: {_first_line(error)}" if what else _first_line(error)
        raise DataEngineError(f"{path} is damaged ({reason}): {fix}") from None


def read_json(path: Path, fix: str):
    """The JSON document at ``path``; missing, truncated or malformed, one error line naming it and ``fix``."""
    path = Path(path)
    with reading(path, fix, "not valid JSON"):
        return json.loads(path.read_text())


def read_json_object(path: Path, fix: str, required: tuple[str, ...] = ()) -> dict:
    """:func:`read_json` of a file that must hold a JSON object with the ``required`` keys (a hand-edited or
    foreign file of valid JSON is as unusable as a cut one)."""
    value = read_json(path, fix)
    if not isinstance(value, dict):
        raise DataEngineError(f"{Path(path)} is damaged (a JSON object expected, found {type(value).__name__}): {fix}")
    absent = [key for key in required if key not in value]
    if absent:
        raise DataEngineError(f"{Path(path)} is damaged (it lacks {', '.join(absent)}): {fix}")
    return value


def read_npz(path: Path, keys: list[str], fix: str, optional: list[str] = ()) -> dict:
    """The arrays ``keys`` (and those of ``optional`` that it has) of the ``.npz`` archive at ``path``, all
    decompressed here (a cut or corrupt archive fails now, naming the file, not later inside a computation)."""
    import numpy as np

    path = Path(path)
    with reading(path, fix, "not a complete .npz archive"), np.load(path) as archive:
        absent = [key for key in keys if key not in archive.files]
        if absent:
            raise DataEngineError(f"{path} is damaged (it lacks the arrays {', '.join(absent)}): {fix}")
        return {key: archive[key] for key in [*keys, *(k for k in optional if k in archive.files)]}


def read_parquet(path: Path, fix: str, columns: list[str] | None = None):
    """The parquet table at ``path`` (only ``columns``, if given; a column it lacks is an error too)."""
    import pyarrow.parquet as pq

    path = Path(path)
    with reading(path, fix, "not a complete parquet file"):
        if columns is not None:
            absent = [c for c in columns if c not in pq.read_schema(path).names]
            if absent:
                raise DataEngineError(f"{path} is damaged (it lacks the columns {', '.join(absent)}): {fix}")
        return pq.read_table(path, columns=columns)


def parquet_schema(path: Path, fix: str):
    """The schema of the parquet file at ``path`` (its footer only)."""
    import pyarrow.parquet as pq

    path = Path(path)
    with reading(path, fix, "not a complete parquet file"):
        return pq.read_schema(path)


def parquet_rows(path: Path, fix: str) -> int:
    """The number of rows of the parquet file at ``path``, from its footer."""
    import pyarrow.parquet as pq

    path = Path(path)
    with reading(path, fix, "not a complete parquet file"):
        return pq.read_metadata(path).num_rows
