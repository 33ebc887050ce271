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
  and pages that every batch touches were copied and synced again each time. Every
  16,384 pages (64 MB of WAL) copies each of them once for several batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

# KiB, as SQLite takes a negative cache_size. At 1,000,000 rows 16 to 160 MB all took
# the same CPU per row (docs/benchmarks.md); 64 MB leaves room under the import's 500 MB.
BULK_CACHE_KIB = 64 * 1024
BULK_PRAGMAS: dict[str, Any] = {
    "cache_size": -BULK_CACHE_KIB,
    "temp_store": 2,  # MEMORY
    "wal_autocheckpoint": 16384,  # pages
}


@contextmanager
def bulk_connection(engine: Engine) -> Iterator[Connection]:
    """A connection held for a whole bulk write; on SQLite with `BULK_PRAGMAS` set
    while it is held, restored (and the cache's memory given back) afterwards."""
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
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()
            _set(raw, before)


def _set(raw: Any, pragmas: dict[str, Any]) -> None:
    for name, value in pragmas.items():
        raw.execute(f"PRAGMA {name}={int(value)}")
