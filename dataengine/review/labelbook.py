"""The review page's side of the labels file: every label written at once, atomically, and never lost to a second
tab, a second reviewer process or a crash.

The file is the one ``dataengine classifier train --labels`` reads (``so101_dataengine.classifier.labels``: JSON lines, the last line
for an episode wins), each line with who (``by``) and when (``time``). A write is read-append-rename under an
exclusive ``flock`` beside the file (``.<name>.lock``) plus a lock for this process' threads: two tabs, or two
review servers on one file, never read the same old file and drop each other's line, and a crash leaves the old
file or the new one, never half of one (``dataengine classifier label`` rewrites the file the same way but does
not take the lock yet). The lock file is taken
without waiting forever: a wedged holder surfaces as an error after ``LOCK_TIMEOUT`` seconds.

Undo removes exactly the line it names, and only while that line is still its episode's last one (the episode's
earlier label, if any, is then current again); if another tab has labelled the episode since, undo is refused so
that the newer judgement is not lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from so101_dataengine.classifier.labels import HUMAN, Label, read_labels
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic

LOCK_TIMEOUT = 10.0


class LabelConflict(DataEngineError):
    """An undo of a label that is no longer its episode's current one."""


class LabelBook:
    """One labels file, shared by every request of a review server."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._threads = threading.Lock()

    def check_writable(self) -> None:
        """Fail before serving if the file is malformed or its directory cannot take it (one error line)."""
        if self.path.is_dir():
            raise DataEngineError(f"--labels {self.path} is a directory: pass a file path such as {self.path}/labels.jsonl")
        if not self.path.parent.is_dir():
            raise DataEngineError(f"--labels {self.path}: its directory {self.path.parent} does not exist: create it")
        self.current()
        try:
            with self._locked():
                pass
        except OSError as error:
            raise DataEngineError(f"--labels {self.path} cannot be written ({error.strerror}): pass a writable path") \
                from None

    def current(self) -> dict[tuple[str, int], Label]:
        """Every labelled episode's current label (empty while the file does not exist)."""
        return read_labels(self.path) if self.path.is_file() else {}

    def add(self, run_id: str, episode_id: int, success: bool, by: str | None, run_dir: str) -> Label:
        """Append one human label, now."""
        label = Label(run_id, episode_id, success, HUMAN, by, time.time(), run_dir)
        with self._locked():
            lines = self._lines()
            lines.append(json.dumps(asdict(label)))
            write_atomic(self.path, "".join(line + "\n" for line in lines))
        return label

    def undo(self, label: Label) -> Label | None:
        """Remove ``label``'s line if it is still its episode's last one; the episode's label after that."""
        wanted = asdict(label)
        with self._locked():
            lines = self._lines()
            last = next((i for i in range(len(lines) - 1, -1, -1)
                         if _episode(lines[i]) == (label.run_id, label.episode_id)), None)
            if last is None or json.loads(lines[last]) != wanted:
                raise LabelConflict(f"episode {label.episode_id} was labelled again since (another tab or reviewer): "
                                    "that newer label is kept; reload to see it")
            del lines[last]
            write_atomic(self.path, "".join(line + "\n" for line in lines))
        return self.current().get((label.run_id, label.episode_id))

    def _lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        read_labels(self.path)  # never build on a file the trainer could not read
        return [line for line in self.path.read_text().splitlines() if line.strip()]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._threads, open(self._lock_path, "a") as handle:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DataEngineError(f"{self._lock_path} has been held by another process for "
                                              f"{LOCK_TIMEOUT:.0f} s: close the other review page server") from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _episode(line: str) -> tuple[str, int]:
    raw = json.loads(line)
    return str(raw["run_id"]), raw["episode_id"]
