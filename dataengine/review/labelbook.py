"""The review page's side of the labels file: every label written at once, and never lost to a second tab, a
second reviewer process, a ``dataengine classifier label`` run at the same time, or a crash.

The file is the one ``dataengine classifier train --labels`` reads, and it is written only by
``so101_dataengine.classifier.labels`` (read-modify-write under an exclusive ``flock`` on ``.<name>.lock`` beside
the file, atomic rename): this module adds who (``by``) and when (``time``), and a lock for this server's threads,
so that concurrent requests of one page queue quietly here and only another process makes a write wait (saying
so on the server's console).

Undo removes exactly the line it names, and only while that line is still its episode's last one (the episode's
earlier label, if any, is then current again); if another tab has labelled the episode since, undo is refused so
that the newer judgement is not lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.classifier.labels import (
    HUMAN,
    Label,
    append_labels,
    check_labels_path,
    labels_lock,
    read_labels,
    remove_label,
)


class LabelBook:
    """One labels file, shared by every request of a review server."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._threads = threading.Lock()

    def check_writable(self) -> None:
        """Fail before serving if the file is malformed or its directory cannot take it (one error line)."""
        check_labels_path(self.path)
        if not self.path.parent.is_dir():
            raise DataEngineError(f"--labels {self.path}: its directory {self.path.parent} does not exist: create it")
        self.current()
        with self._threads, labels_lock(self.path):  # creates the lock file: an unwritable directory fails here
            pass

    def current(self) -> dict[tuple[str, int], Label]:
        """Every labelled episode's current label (empty while the file does not exist)."""
        return read_labels(self.path) if self.path.is_file() else {}

    def add(self, run_id: str, episode_id: int, success: bool, by: str | None, run_dir: str) -> Label:
        """Append one human label, now; returns once it is in the file."""
        label = Label(run_id, episode_id, success, HUMAN, by, time.time(), run_dir)
        with self._threads:
            append_labels(self.path, [label])
        return label

    def undo(self, label: Label) -> Label | None:
        """Remove ``label``'s line if it is still its episode's last one; the episode's label after that
        (``LabelConflict`` if it was labelled again since)."""
        with self._threads:
            return remove_label(self.path, label)
