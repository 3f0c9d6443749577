"""An optional per-node lock held around `kind create` (RunnerSpec.create_lock).

Creating clusters one at a time per node trades a little latency for fewer
load spikes (image unpacking, systemd start in every node). The lock file is
shared by all users, so it is made world-writable despite the umask; flock on
a read-only descriptor works too, for a file someone else made 0644.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

DEFAULT_LOCK_PATH = "/tmp/kindslurm-create.lock"
_POLL_INTERVAL = 0.1


class LockInterrupted(Exception):
    """Waiting for the lock was given up (a signal arrived or the timeout passed)."""


def open_lock_file(path: str) -> int:
    """Open (creating mode 0666) the shared lock file; never follows a symlink."""
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with contextlib.suppress(PermissionError):
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o666)  # the umask took bits away
    return fd


@contextlib.contextmanager
def create_lock(
    path: str = DEFAULT_LOCK_PATH,
    *,
    timeout: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[float]:
    """Hold an exclusive flock on path; yields the seconds spent waiting.

    Polls with LOCK_NB so that a signal (seen through cancelled()) or the
    timeout ends the wait: a blocking flock would be restarted after our
    signal handler returns.
    """
    fd = open_lock_file(path)
    start = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if cancelled():
                raise LockInterrupted(f"gave up waiting for {path}: interrupted")
            if timeout is not None and time.monotonic() - start > timeout:
                raise LockInterrupted(f"gave up waiting for {path} after {timeout:g} s")
            time.sleep(_POLL_INTERVAL)
        yield time.monotonic() - start
    finally:
        os.close(fd)  # closing releases the flock
