"""One writer at a time: an exclusive ``flock`` on a lock file, released by the kernel if the process dies (so a
killed run never leaves a lock that blocks the next one). Publish waits for the other publish of its repo; rollout
and curate refuse at once when another run writes the same output (waiting would only run the work twice)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from so101_dataengine.base.errors import DataEngineError


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, moved_by: str, on_wait=print, wait: bool = True) -> Iterator[None]:
    """Hold the lock for the block. If another process holds it: with ``wait``, say so (with its pid) and wait for
    it; without, one error line naming that process. ``moved_by``: the option that puts the lock elsewhere, named
    when its directory cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as error:  # the first write of any of these runs: where it fails, nothing was written yet
        raise DataEngineError(f"cannot create {path} ({error.strerror}): the {what} needs a writable directory "
                              f"there; choose another with {moved_by}") from None
    with handle as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            if not wait:
                raise DataEngineError(f"another {what} (pid {holder}) is running: let it finish (or stop it), then "
                                      "run this again") from None
            on_wait(f"waiting for another {what} (pid {holder}) to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)
