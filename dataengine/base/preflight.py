"""Checks that run before any long work starts, so a run fails in a second with a fix instead of after an hour.

Names are data, never paths: a repo id, a cycle name or a hook name becomes a directory, a Slurm job name and a
line of a script, so :func:`check_name` (and :func:`check_repo_id`, two names joined by ``/``) accepts only what the
Hugging Face Hub accepts: ASCII letters, digits, ``-``, ``_`` and ``.``, at most 96 characters, no ``..``, not
starting or ending with ``.`` or ``-``. :func:`check_table` type-checks a TOML table against a dataclass's fields
(int, float, str, bool, paths, lists and tables of those), so ``n = "ten"`` is one error line, not a crash later.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
import types
import typing
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError

NAME_CHARS = "ASCII letters, digits, '-', '_' and '.'"
MAX_NAME = 96
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def name_problem(value, hub: bool = False) -> str | None:
    """Why ``value`` is not a safe name (None: it is). ``hub``: also refuse ``--`` (the Hub's cache separator)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long (at most {MAX_NAME})"
    if not _NAME.fullmatch(value):
        return f"may hold only {NAME_CHARS}"
    for bad in ("..", "--") if hub else ("..",):
        if bad in value:
            return f"must not contain '{bad}'"
    if value[0] in ".-" or value[-1] in ".-":
        return "must not start or end with '.' or '-'"
    return None


def check_name(value, what: str, fix: str) -> str:
    """``value`` if it is a safe name, else a one-line error: ``{what} {value!r} {problem}: {fix}``."""
    problem = name_problem(value)
    if problem:
        raise DataEngineError(f"{what} {value!r} {problem}: {fix}")
    return value


def repo_id_problem(repo_id) -> str | None:
    if not isinstance(repo_id, str):
        return f"must be a string OWNER/NAME, got {type(repo_id).__name__}"
    parts = repo_id.split("/")
    if len(parts) != 2:
        return "is not of the form OWNER/NAME"
    for label, part in zip(("owner", "name"), parts):
        problem = name_problem(part, hub=True)
        if problem:
            return f"is not a Hub repo id: its {label} {problem}"
    return None


def relative_path_problem(value) -> str | None:
    """Why ``value`` (a path read from a file, e.g. a manifest) could point outside the directory it is relative
    to (None: it cannot): absolute, with a ``..`` or empty part, a backslash or a NUL."""
    if not isinstance(value, str) or not value:
        return "is not a relative path"
    if value.startswith("/") or "\\" in value or "\0" in value:
        return "is absolute or holds '\\' or NUL"
    if any(part in ("", ".", "..") for part in value.split("/")):
        return "has an empty, '.' or '..' part"
    return None


def check_repo_id(repo_id) -> str:
    problem = repo_id_problem(repo_id)
    if problem:
        raise DataEngineError(f"repo id {repo_id!r} {problem}: write OWNER/NAME with {NAME_CHARS} only "
                              "(e.g. local/so101_demos)")
    return repo_id


def _describe(kind) -> tuple[str, str]:
    """(what a value of annotation ``kind`` must be, an example TOML value)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _describe(inner[0]) if len(inner) == 1 else ("a value", "...")
    if kind is bool:
        return "true or false", "true"
    if kind is int:
        return "an integer", "10"
    if kind is float:
        return "a number", "1.5"
    if kind in (str, Path):
        return "a string", '"text"'
    if origin is list:
        what, example = _describe(args[0])
        return f"a list of {what.removeprefix('a ').removeprefix('an ')}s", f"[{example}]"
    if origin is dict:
        what, example = _describe(args[1])
        return f"a table of {what.removeprefix('a ').removeprefix('an ')}s", f"{{ key = {example} }}"
    return "a value", "..."


def _fits(value, kind) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args if a is not type(None))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (str, Path):
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    return True  # a type this checker does not know (e.g. a nested dataclass): its own code checks it


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return repr(value) if not isinstance(value, str) else '"' + value.encode("unicode_escape").decode() + '"'
    return repr(value)


def check_table(cls, table, where: str, skip: tuple[str, ...] = ()) -> None:
    """Every key of ``table`` is a field of dataclass ``cls`` and its value has the field's type; nested dataclass
    fields are checked as sub-tables (``[where.key]``). One error line names the table, the key, what it must be and
    an example. ``skip``: fields the caller checks itself."""
    if not isinstance(table, dict):
        raise DataEngineError(f"{where} must be a table, got {_toml(table)}: write it as a [table]")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise DataEngineError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    for key, value in table.items():
        if key in skip:
            continue
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            table_name = re.match(r"\[([^\]]+)\](.*)", where)
            check_table(kind, value, f"[{table_name[1]}.{key}]{table_name[2]}" if table_name else f"{where}.{key}")
            continue
        if not _fits(value, kind):
            what, example = _describe(kind)
            default = known[key].default
            if default is not dataclasses.MISSING and default is not None and _fits(default, kind):
                example = _toml(default)
            raise DataEngineError(f"{where}: {key} must be {what}, got {_toml(value)}: write e.g. {key} = {example}")


def check_positive(name: str, value: int) -> None:
    check_at_least(name, value, 1)


def check_at_least(name: str, value: int | float, minimum: int | float, why: str = "") -> None:
    """One error line for a number below ``minimum`` (``why``: what the limit is for, appended)."""
    if value < minimum:
        raise DataEngineError(f"{name} must be at least {minimum}, got {value}" + (f" ({why})" if why else ""))


def check_at_most(name: str, value: int | float, maximum: int | float, why: str = "") -> None:
    """One error line for a number above ``maximum``: counts and sizes that would exhaust memory or disk long
    before they produced anything (a typo'd ``--n 1000000000000`` must not be OOM-killed 20 GB later)."""
    if value > maximum:
        raise DataEngineError(f"{name} must be at most {maximum}, got {value}" + (f" ({why})" if why else ""))


def check_positive_finite(name: str, value: float) -> None:
    """A rate or weight that must be a positive real number: NaN and infinity pass ``<`` comparisons silently and
    reach torch or numpy deep inside a run."""
    if not math.isfinite(value) or value <= 0:
        raise DataEngineError(f"{name} must be a positive finite number, got {value}")


DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps)(:\d+)?")
"""The torch devices a command accepts (``cuda:1`` picks a card)."""


def check_device(name: str, value: str | None) -> None:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (None: the command's default), before torch or lerobot-train see it."""
    if value is not None and not DEVICE_PATTERN.fullmatch(value):
        raise DataEngineError(f"{name} {value!r} is not a torch device: use cpu, cuda, cuda:N or mps")


MAX_EPISODES = 10_000_000
"""The most episodes one rollout, evaluation or demo recording may ask for (a run of 10 million at ~170 frames
each is ~1.7 billion frames, beyond any disk here): above it is a typo, refused before anything is written."""
MAX_IMAGE_SIZE = 1024
"""The largest square frame rendered or written: MuJoCo's offscreen buffer here (``whiskers`` uses the same)."""


MAX_SEED = 2**63 - 1
"""The largest scene seed: seeds are stored as 64-bit integers (manifests, parquet) and seed torch's generators."""


def check_seed(name: str, seed: int, count: int = 1) -> None:
    """Scene seeds ``seed .. seed + count - 1`` are non-negative (numpy's generators refuse others, deep inside a
    worker) and fit 64 bits (a huge ``--seed`` would fail only when an episode is stored or a policy seeded)."""
    check_at_least(name, seed, 0, "scene seeds are non-negative integers")
    check_at_most(name, seed, MAX_SEED - (count - 1), f"its {count} scene seeds must fit 64 bits")


def check_episodes(name: str, count: int) -> None:
    """An episode count: at least one, at most :data:`MAX_EPISODES` (episode ids are listed up front)."""
    check_positive(name, count)
    check_at_most(name, count, MAX_EPISODES, "episodes in one run; a larger count is a typo")


MIN_IMAGE_SIZE = 16
"""The smallest square frame the scene renders (``so101_dataengine.scenes.pick_place`` refuses smaller ones, but only on a worker)."""


def check_image_size(name: str, size: int, minimum: int = MIN_IMAGE_SIZE) -> None:
    """A square frame size in range before any work: too small fails on a worker, too large renders or encodes
    for ever, exhausts memory or crashes the video encoder."""
    check_at_least(name, size, minimum, "pixels of the square camera frames")
    check_at_most(name, size, MAX_IMAGE_SIZE, "pixels of the square camera frames")


def check_new_output_dir(path: Path) -> None:
    """``path`` must not exist (or be an empty directory), must not be a symbolic link (the dataset would be
    written wherever it points, outside the workspace) and its parent must be writable.

    Writability is probed by creating (and removing) a file, since permission bits lie for root and for
    read-only mounts. The parent directories are created if missing.
    """
    path = Path(path)
    if path.is_symlink():  # even a dangling one: writing would follow it out of the workspace
        raise DataEngineError(f"output {path} is a symbolic link: choose a new --out that is not a link")
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
