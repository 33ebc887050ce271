"""One connection for a bulk write (the master import), with SQLite settings for it alone.

The settings below would cost every other connection of the pool memory for nothing,
so they are set on the importing connection when the import starts and put back before
it returns to the pool.

- `cache_size`: SQLite's default page cache is 2 MB. A batch of a big import dirties
  thousands of index pages (phones by number, dues by date, accounts by number: pages
  all over each index), so with 2 MB pages are written to the WAL before the commit,
  some more than once, and read back with a read() at the next insert into them.
  The cache grows only as pages are used.
- `temp_store=MEMORY`: a multi-row INSERT keeps a statement journal (to undo that one
  statement if a constraint refuses a row); past 64 KB SQLite moves it to a temporary
  file, a write() per page. In memory it stays small: it holds one statement's pages.
- `wal_autocheckpoint`: by default the connection that commits copies the WAL into the
  database file (and syncs both) once the WAL passes 1,000 pages. A batch of a big
  import writes several thousand pages (inserts into indexes ordered by phone number or
  due date touch pages all over them), so every commit was followed by a checkpoint,
  and pages that every batch touches were copied and synced again each time.
- Checkpoints in a thread of their own (`WalCheckpointer`): copying the WAL into the
  database file and waiting for the disk is work the writing connection does not need
  to stop for. A thread with its own connection checkpoints while the import writes
  (SQLite releases the GIL while it works); the importing connection's own automatic
  checkpoint stays as a backstop (at 65,536 pages, 256 MB of WAL) should the thread
  fall behind, so the WAL cannot grow without bound.
- Foreign keys unchecked, for one transaction at a time (`foreign_keys_unchecked`):
  SQLite checks each inserted row's references one lookup at a time, 6 to 9 µs of the
  import's writing per sheet row (a row is five table rows with nine references). A
  batch that only inserts rows referencing its tenant, areas it checks, and rows it
  inserts itself gains nothing from them (store/master_data.py, `_insert_all`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

# KiB, as SQLite takes a negative cache_size. At 1,000,000 rows 16 to 160 MB all took
# the same CPU per row (docs/benchmarks.md); 64 MB leaves room under the import's 500 MB.
BULK_CACHE_KIB = 64 * 1024
BULK_PRAGMAS: dict[str, Any] = {
    "cache_size": -BULK_CACHE_KIB,
    "temp_store": 2,  # MEMORY
    "wal_autocheckpoint": 65536,  # pages: the backstop behind WalCheckpointer
}
# Every half second: each checkpoint copies the pages committed since the last one, so
# more often copies the pages every batch touches more often (0.05 s cost the import
# 10 CPU µs a row more at 1,000,000 rows); every 1 s was slower too (53.7 against 50.0
# wall µs a row; docs/benchmarks.md).
CHECKPOINT_EVERY_S = 0.5

log = structlog.get_logger("meterline.import")


@contextmanager
def bulk_connection(
    engine: Engine, *, checkpoint_every_s: float = CHECKPOINT_EVERY_S
) -> Iterator[Connection]:
    """A connection held for a whole bulk write; on SQLite with `BULK_PRAGMAS` set
    while it is held, restored (and the cache's memory given back) afterwards, and the
    database file's WAL checkpointed by a `WalCheckpointer` meanwhile."""
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        # The driver's connection is in autocommit mode (store/db.py): these statements
        # run outside any transaction, as temp_store requires.
        raw = conn.connection.driver_connection
        assert raw is not None
        before = {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in BULK_PRAGMAS}
        _set(raw, BULK_PRAGMAS)
        path = engine.url.database
        checkpointer = (
            WalCheckpointer(path, checkpoint_every_s) if path and path != ":memory:" else None
        )
        try:
            if checkpointer is not None:
                checkpointer.start()
            yield conn
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            if conn.in_transaction():
                conn.rollback()
            _set(raw, {**before, "foreign_keys": 1})  # as store/db.py sets every connection


@contextmanager
def foreign_keys_unchecked(session: Session) -> Iterator[None]:
    """SQLite: the transaction `session` begins inside runs without foreign key checks,
    which are back on once it has ended. Elsewhere, and on other databases, nothing.

    For a caller that checks the references of what it writes itself. SQLite fixes the
    setting when a transaction begins, so the session must not be in one yet, and the
    caller must end it (commit or roll back) inside the block: after that block the
    setting is restored, and `check_foreign_keys` restores it between transactions.
    """
    raw = _sqlite_driver_connection(session)
    if raw is None:
        yield
        return
    if session.in_transaction() or raw.in_transaction:
        raise ValueError("foreign_keys_unchecked: the session is already in a transaction")
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if raw.in_transaction:  # the setting cannot change inside a transaction
            raw.rollback()
        raw.execute("PRAGMA foreign_keys=ON")


def check_foreign_keys(session: Session) -> None:
    """Foreign key checks on again for the next transaction of `session` (SQLite, outside a
    transaction; a no-op where they are on)."""
    raw = _sqlite_driver_connection(session)
    if raw is not None and not raw.in_transaction:
        raw.execute("PRAGMA foreign_keys=ON")


def _sqlite_driver_connection(session: Session) -> sqlite3.Connection | None:
    bind = session.get_bind()
    if not isinstance(bind, Connection) or bind.dialect.name != "sqlite":
        return None
    raw = bind.connection.driver_connection
    return raw if isinstance(raw, sqlite3.Connection) else None


def _set(raw: Any, pragmas: dict[str, Any]) -> None:
    for name, value in pragmas.items():
        raw.execute(f"PRAGMA {name}={int(value)}")


class WalCheckpointer(threading.Thread):
    """Checkpoints (PASSIVE: never waits for, nor blocks, the writer) the SQLite database
    at `path` every `every_s` seconds from its own connection, until `stop()`."""

    def __init__(self, path: str, every_s: float = CHECKPOINT_EVERY_S) -> None:
        super().__init__(name="meterline-wal-checkpoint", daemon=True)
        self.path = path
        self.every_s = every_s
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the import goes on; its own checkpoints remain
            log.warning("wal_checkpointer_failed", error=str(exc))
            return
        try:
            con.execute("PRAGMA synchronous=NORMAL")  # as store/db.py's connections
            while not self._stopping.wait(self.every_s):
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("wal_checkpointer_failed", error=str(exc))
        finally:
            con.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()
