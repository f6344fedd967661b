"""Where work runs: a dask cluster, embedded (a ``LocalCluster`` sized to the machine) or an existing one.

Tasks are plain picklable functions of picklable arguments. A task lost with its worker is rescheduled by dask on
another worker (``distributed.scheduler.allowed-failures``), and retried on ordinary errors (``retries``); our tasks
are idempotent (they skip what is already stored), so re-running one is always safe.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from distributed import Client, Future, LocalCluster, wait
from distributed.comm.addressing import parse_address, parse_host_port

from so101_dataengine.base.errors import DataEngineError

CONNECT_SECONDS = 10
"""How long to wait for an existing scheduler: long enough for a busy one across a network, short enough that a
typo'd address is an error in seconds (dask's own default is 30 s, then a traceback)."""
_TCP_SCHEMES = ("tcp", "tls", "ws", "wss")


@dataclass
class ExecutorConfig:
    scheduler: str | None = None
    """Address of an existing dask scheduler (``tcp://host:8786``); None starts an embedded LocalCluster."""
    workers: int | None = None
    """Embedded cluster size; default: ``default_workers()``."""
    retries: int = 2


def default_workers() -> int:
    """Embedded cluster size: one process per core. Each runs a main render/policy thread and (by default) one
    lane of physics and encoding threads; the GIL makes more threads per process pay less than more processes
    (H200 machine, 16 cores: 16 x 48 envs x 1 lane 3,675 env-steps/s, 12 x 64 x 1 lane 3,231, 4 x 64 x 3 lanes
    1,217; docs/benchmarks.md)."""
    return max(1, os.cpu_count() or 1)


def _unreachable(address: str, why: str) -> DataEngineError:
    return DataEngineError(f"cannot reach the dask scheduler {address!r} ({why}): start it there, fix the address "
                           "(e.g. tcp://HOST:8786), or drop --scheduler to run on an embedded cluster")


def check_scheduler(address: str | None) -> None:
    """An existing scheduler's address parses and something listens there, checked before a command writes
    anything (a run directory left behind by an unreachable scheduler is litter). TCP-based schemes are probed
    with a socket (a refused port answers at once, where dask retries until its timeout); for other schemes dask
    itself connects once."""
    if not address:
        return
    try:
        scheme, location = parse_address(address)
        if scheme not in _TCP_SCHEMES:
            _connect(address).close()
            return
        host, port = parse_host_port(location)
    except ValueError as error:
        raise _unreachable(address, str(error)) from None
    if not 0 < port < 65536:
        raise _unreachable(address, f"port {port} is not 1-65535")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise _unreachable(address, error.strerror or str(error) or type(error).__name__) from None


def _connect(address: str) -> Client:
    """A client of the scheduler at ``address``; one error line (not dask's traceback) when it cannot connect."""
    try:
        return Client(address, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, ValueError, TimeoutError) as error:
        raise _unreachable(address, str(error).splitlines()[0] if str(error) else type(error).__name__) from None


@contextmanager
def dask_client(config: ExecutorConfig) -> Iterator[Client]:
    if config.scheduler:
        with _connect(config.scheduler) as client:
            yield client
        return
    workers = config.workers or default_workers()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        yield client


def wait_all(futures: list[Future], poll: Callable[[], None], interval: float = 0.5) -> list:
    """Wait for every future, calling ``poll()`` every ``interval`` seconds and once after the last one finished
    (for live progress); a failed task raises its error at once, not after the others. Returns the results."""
    pending = list(futures)
    while pending:
        poll()
        try:
            finished, still = wait(pending, timeout=interval, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished in this interval
            continue
        for future in finished:
            if future.status == "error":
                future.result()  # re-raises the task's error with its traceback
        pending = list(still)
    poll()
    return [future.result() for future in futures]
