"""Listening on a host and port for the engine's two local web servers (``dataengine serve``, ``dataengine
review``): a port out of range, a host that does not resolve, a port in use or not allowed, or an address that is
not this machine's is one error line saying what to pass instead, in the same words for both."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

from so101_dataengine.base.errors import DataEngineError

LISTEN_FIXES = {
    errno.EADDRINUSE: "another server listens there (another 'dataengine serve' or 'review'?): stop it or pass "
                      "another --port (0: any free port)",
    errno.EACCES: "ports below 1024 need root: pass --port 1024 or higher",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's: pass --host 127.0.0.1",
}
"""The fix for each way listening can fail."""


@contextlib.contextmanager
def listen_errors(host: str, port: int) -> Iterator[None]:
    """Check ``port``, then turn what binding to ``host:port`` inside the block raises into one error line."""
    if not 0 <= port <= 65535:
        raise DataEngineError(f"--port must be 0-65535 (0: any free port), got {port}")
    try:
        yield
    except socket.gaierror as error:
        raise DataEngineError(f"--host {host!r} is not a host name or address ({error.strerror}): pass e.g. "
                              "--host 127.0.0.1") from None
    except OSError as error:
        raise DataEngineError(f"cannot listen on {host}:{port} ({error.strerror}): "
                              f"{LISTEN_FIXES.get(error.errno, 'pass another --host or --port')}") from None
