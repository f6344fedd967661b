"""Helpers for the config dataclasses: a field's one default, and a config as JSON.

Every command's settings are a dataclass whose defaults are the single source of truth; a flag shows the default
through :func:`default_of` instead of repeating it, and every run saves its full config beside its outputs as JSON
(:func:`to_jsonable`).
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

import numpy as np


def default_of(config_class: type, name: str):
    """The default of one field of a config dataclass, so a command-line flag can show it without repeating it."""
    field_ = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return field_.default_factory() if field_.default is dataclasses.MISSING else field_.default


def to_jsonable(value):
    """Dataclasses, paths, enums and numpy values as plain JSON types."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
