"""Whether work was done again, read from the files themselves: a stage that re-did its work (re-simulated an
episode, rewrote a dataset) replaces or rewrites files even when it reports the same counts."""

from __future__ import annotations

from pathlib import Path


def file_identities(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every file under ``root``: equal before and after means none was rewritten or
    replaced."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}
