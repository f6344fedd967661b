"""``dataengine.toml``, the project file: read and checked once, whichever commands read its tables.

Why one reader: ``cycle`` needs ``[cycle]``, ``[curate]`` and the hooks of the same file, and each table's loader
used to parse the file again and ignore every top-level name it did not know, so ``[curation]`` (a typo) or
``[hook]`` silently configured nothing. Here the document is parsed once per file content and its top-level names
are checked against :data:`PROJECT_TABLES`; each table's own loader (``CycleConfig``, ``CurateConfig``,
``HookConfig``, their defaults stated once in those dataclasses) checks its keys and their types.
"""

from __future__ import annotations

import copy
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_toml

PROJECT_TABLES = {
    "ledger": "the hook ledger's path (docs/publishing.md)",
    "cycle": "[cycle]: dataengine cycle's rounds (README)",
    "curate": "[curate]: curation settings (docs/curation.md)",
    "hooks": "[[hooks]]: retrain hooks (docs/publishing.md)",
}
"""Every top-level name a project file may hold, with where it is documented."""

_parsed: dict[tuple[Path, int, int], dict] = {}


def read_project_file(path: Path, when_missing: str) -> dict:
    """The checked document of the project file ``path`` (a copy: callers may change it). Parsed once per content
    (path, size and modification time); an unknown top-level name is one error line listing the known ones."""
    path = Path(path)
    if not path.is_file():
        read_toml(path, when_missing)  # the missing-file error, worded as everywhere else
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    if key not in _parsed:
        document = read_toml(path, when_missing)
        unknown = sorted(set(document) - set(PROJECT_TABLES))
        if unknown:
            known = "; ".join(f"{name} ({why})" for name, why in PROJECT_TABLES.items())
            raise DataEngineError(f"{path}: unknown top-level {'names' if len(unknown) > 1 else 'name'} "
                                  f"{', '.join(map(repr, unknown))}: fix the spelling or remove it (known: {known})")
        _parsed[key] = document
    return copy.deepcopy(_parsed[key])
