"""How every benchmark script reports: the results as JSON on stdout and, with ``--out``, in a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(results: dict, out: str | None) -> None:
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        Path(out).write_text(text)
