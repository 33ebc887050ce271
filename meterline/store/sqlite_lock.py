"""A queue for SQLite's write lock shared by every process on one database file.

SQLite lets one connection write at a time. A connection that finds the lock taken
sleeps in its busy handler (1, 2, 5, ... up to 100 ms between tries), so when several
processes write in turn (`meterline serve --workers 2`, ingest workers in one MQTT group)
each hand-over wastes up to tens of milliseconds, more than a batch's whole transaction.
Here writers take an advisory lock (`flock`) on a file beside the database first and
poll it at sub-millisecond to millisecond intervals: the next writer starts within a
millisecond or two of the commit. The lock is only a queue; SQLite's own lock (BEGIN
IMMEDIATE, busy_timeout) still guards the data, so a process that does not take it (the
`sqlite3` shell, an older release) is merely waited for as before.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path

# Poll intervals: short first (the holder is usually mid-commit), then at most 2 ms.
_FIRST_SLEEP = 0.0002
_MAX_SLEEP = 0.002


def lock_path(database: str | None) -> Path | None:
    """The queue's file for a SQLite database path; None for in-memory databases."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):  # a URI filename: its path, without the query
        if "mode=memory" in database:
            return None
        database = database[len("file:") :].split("?", 1)[0]
        database = database.removeprefix("//localhost").removeprefix("//")
        if not database:
            return None
    return Path(f"{database}-writers")


class ProcessWriteLock:
    """An exclusive `flock` on `path`, taken with a deadline; one per engine and process.

    Several engines of one process each hold their own file description, so they queue
    against each other too. A forked child reopens the file (a description inherited
    over fork would be shared with the parent, and so would the lock).
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int | None:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return None  # read-only directory: SQLite's own lock still applies
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> bool:
        """Wait for the lock; False when it cannot be used at all (no file). Raises
        `sqlite3.OperationalError("database is locked")` after `timeout` seconds, as
        SQLite's busy handler would."""
        fd = self._descriptor()
        if fd is None:
            return False
        deadline = time.monotonic() + self.timeout
        pause = _FIRST_SLEEP
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(pause * 2, _MAX_SLEEP)

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:  # engines come and go (tests): do not leak descriptors
        self.close()
