"""Engine and session factory for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from meterline.config import get_settings
from meterline.store.sqlite_lock import ProcessWriteLock, lock_path

BUSY_TIMEOUT_S = 30  # how long a SQLite writer waits for the lock before giving up


def normalise_url(url: str) -> str:
    # People write postgresql://; we use psycopg 3, not psycopg2.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(
    url: str,
    *,
    sqlite_cache_mb: int | None = None,
    sqlite_mmap_mb: int | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine for `url`; on SQLite each connection's page cache and memory map are
    `sqlite_cache_mb` and `sqlite_mmap_mb` (default: the settings of the same names)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        settings = get_settings()
        cache_mb = settings.sqlite_cache_mb if sqlite_cache_mb is None else sqlite_cache_mb
        mmap_mb = settings.sqlite_mmap_mb if sqlite_mmap_mb is None else sqlite_mmap_mb
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, **kwargs)
        event.listen(engine, "connect", partial(_sqlite_pragmas, cache_mb, mmap_mb))
        _serialise_sqlite_writers(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(cache_mb: int, mmap_mb: int, dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the console read while an import writes; foreign keys are off by default.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    # SQLite's default page cache is 2 MB: a large fleet's tables and indexes are read
    # page by page through read() calls. A negative cache_size is in KiB; the cache
    # grows only as pages are read.
    cur.execute(f"PRAGMA cache_size={-int(cache_mb) * 1024}")
    cur.execute(f"PRAGMA mmap_size={int(mmap_mb) * 1024 * 1024}")
    cur.close()
    # SQLAlchemy, not the driver, starts transactions (see _sqlite_begin_immediate).
    dbapi_conn.isolation_level = None


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Every transaction takes SQLite's write lock up front, queued on a process lock.

    A deferred transaction that reads and then writes fails at once ("database is
    locked") when another connection wrote in between; the dispatcher and the web
    requests write concurrently, so each transaction begins IMMEDIATE. Threads of one
    process queue on a Python lock first, and processes (several web workers or ingest
    workers on one database) on a lock file (`sqlite_lock.ProcessWriteLock`): SQLite's
    own busy handler would make them poll with sleeps of up to 100 ms, which is what
    latency is made of. Both are let go once the COMMIT has run (or at the rollback).
    Readers outside transactions are unaffected (WAL).
    """
    lock = threading.Lock()
    path = lock_path(engine.url.database)
    across = ProcessWriteLock(path, BUSY_TIMEOUT_S) if path is not None else None
    key = "meterline_write_lock"

    def begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # reads only: no write lock, no queue
            return
        lock.acquire()
        try:
            held = across is not None and across.acquire()
        except BaseException:
            lock.release()
            raise
        conn.info[key] = "process" if held else "thread"
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release_info(conn.info)
            raise

    def release_info(info: dict[Any, Any]) -> None:
        held = info.pop(key, None)
        if held == "process" and across is not None:
            across.release()
        if held is not None:
            lock.release()

    def release(conn: Any) -> None:
        release_info(conn.info)

    def release_record(_dbapi_conn: Any, record: Any, *_: Any) -> None:
        # A connection returned to the pool mid-transaction is rolled back by the pool,
        # without the rollback event: release here too.
        release_info(record.info)

    # Core's commit event fires before the COMMIT runs: the next writer would find the
    # database still locked. Let go after the driver's commit instead.
    do_commit = engine.dialect.do_commit

    def commit_then_release(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            info = getattr(dbapi_connection, "info", None)
            if isinstance(info, dict):
                release_info(info)

    engine.dialect.do_commit = commit_then_release  # type: ignore[method-assign]
    event.listen(engine, "begin", begin)
    event.listen(engine, "rollback", release)
    event.listen(engine.pool, "checkin", release_record)


READ_ONLY = "meterline_read_only"


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for use cases; `read_only` ones (authentication, pages that only show)
    skip SQLite's write queue. A read-only session that writes fails on SQLite when
    another connection wrote first, so use them for reads alone."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
