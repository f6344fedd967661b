"""One import order everywhere and no unused import or name (ruff's isort and pyflakes rules, configured in
pyproject's ``[tool.ruff]``): a file that drifts fails CI here instead of in review. ``ruff check --fix .`` repairs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_are_sorted_and_nothing_is_unused():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
