"""Planner statistics for the master-data tables, refreshed as an import grows them.

Both databases choose an index by what they know of the data. Without statistics:

- PostgreSQL answered each import batch's lookup by account number through the tenant
  index and read every row the tenant has (a few hundred rows/s at 50,000 rows).
- SQLite (no `sqlite_stat1`) takes `tenant_id = ?` for a selective condition. It read a
  consumer's page (accounts by consumer, meters and bills by account, phones) through the
  tenant's whole part of (tenant, number) and the like: four queries of 0.65-1 s each at
  900,000 accounts, against 0.1-0.3 ms with statistics (docs/benchmarks.md).

On SQLite `analysis_limit` makes ANALYZE sample each index instead of reading all of it:
a few milliseconds at any size, and the proportions it records are what the planner
needs (one tenant's rows are many, one consumer's few).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.orm import Session

MASTER_TABLES = ("consumers", "accounts", "contact_points", "meters", "bills")
SQLITE_ANALYSIS_LIMIT = 1000  # index entries ANALYZE reads per index


def refresh_master_statistics(session: Session) -> None:
    """ANALYZE the master tables in the session's transaction (the caller commits)."""
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {', '.join(MASTER_TABLES)}")
    elif dialect == "sqlite":
        with _analysis_limit(conn, SQLITE_ANALYSIS_LIMIT):
            for table in MASTER_TABLES:  # SQLite's ANALYZE takes one name at a time
                conn.exec_driver_sql(f"ANALYZE {table}")


def analyze_everything(session: Session) -> None:
    """A full ANALYZE of every table (`meterline db analyze`), in the session's transaction.

    For the tables the imports do not keep (messages, alerts, meter states and usage):
    there a sampled ANALYZE records at most about `SQLITE_ANALYSIS_LIMIT` rows a tenant,
    so the tenant still looks selective, and SQLite kept sorting all of a tenant's
    messages for a page of 50 (docs/benchmarks.md). On SQLite this holds the write lock
    while it reads every index: seconds a million rows.
    """
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        with _analysis_limit(conn, 0):  # 0: read every entry
            conn.exec_driver_sql("ANALYZE")
    else:
        conn.exec_driver_sql("ANALYZE")


@contextmanager
def _analysis_limit(conn: Connection, limit: int) -> Iterator[None]:
    """SQLite's `analysis_limit` for the duration. A setting of the connection, not of
    the transaction: put back afterwards, so the next ANALYZE on this pooled connection
    reads as its own caller asks."""
    before = conn.exec_driver_sql("PRAGMA analysis_limit").scalar()
    conn.exec_driver_sql(f"PRAGMA analysis_limit={int(limit)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA analysis_limit={int(before or 0)}")
