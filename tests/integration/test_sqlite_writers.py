"""SQLite's write lock queued across processes (`store.sqlite_lock`, `store.db`)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from meterline.store.db import make_engine
from meterline.store.sqlite_lock import ProcessWriteLock, lock_path


def test_the_lock_file_sits_beside_the_database_and_memory_has_none() -> None:
    assert lock_path("/data/m.db") == Path("/data/m.db-writers")
    assert lock_path("file:/data/m.db?mode=rwc") == Path("/data/m.db-writers")
    assert lock_path(":memory:") is None
    assert lock_path(None) is None


def test_two_holders_exclude_each_other_and_a_wait_ends_as_sqlite_would(tmp_path: Path) -> None:
    path = tmp_path / "db-writers"
    first, second = ProcessWriteLock(path, 5), ProcessWriteLock(path, 0.05)
    assert first.acquire()
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.acquire()
    assert time.monotonic() - start >= 0.05
    first.release()
    assert second.acquire()
    second.release()


def _hold(path: str, seconds: float, held: Any) -> None:
    lock = ProcessWriteLock(Path(path), 5)
    lock.acquire()
    held.set()
    time.sleep(seconds)
    lock.release()


def test_another_process_waits_for_the_holder_and_starts_right_after(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    held = ctx.Event()
    child = ctx.Process(target=_hold, args=(str(tmp_path / "db-writers"), 0.5, held))
    child.start()
    assert held.wait(30)
    lock = ProcessWriteLock(tmp_path / "db-writers", 10)
    start = time.monotonic()
    assert lock.acquire()
    waited = time.monotonic() - start
    lock.release()
    child.join(10)
    assert 0.3 < waited < 2.0


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    engine.dispose()
    return url


def test_the_queue_is_let_go_only_once_the_commit_has_run(tmp_path: Path) -> None:
    """Core's commit event fires before the COMMIT: a writer let in then would find the
    database still locked and sleep in SQLite's busy handler."""
    url = _sqlite_url(tmp_path)
    engine, other = make_engine(url), make_engine(url)
    probe = ProcessWriteLock(Path(f"{tmp_path / 'w.db'}-writers"), 0)
    free_during_commit: list[bool] = []

    def at_commit(_conn: Any) -> None:
        try:
            free_during_commit.append(probe.acquire())
            probe.release()
        except sqlite3.OperationalError:
            free_during_commit.append(False)

    event.listen(engine, "commit", at_commit)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert free_during_commit == [False]
    assert probe.acquire()  # and free after it
    probe.release()
    with other.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    engine.dispose()
    other.dispose()


def test_writers_on_two_engines_take_turns_without_database_is_locked(tmp_path: Path) -> None:
    """Two engines stand for two processes: each keeps its transactions to itself and
    neither fails, however their writes interleave."""
    url = _sqlite_url(tmp_path)
    engines = [make_engine(url), make_engine(url)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(100):
                with engines[n].begin() as conn:
                    before = conn.execute(text("SELECT count(*) FROM t")).scalar()
                    conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n * 1000 + k})
                    after = conn.execute(text("SELECT count(*) FROM t")).scalar()
                    assert after == (before or 0) + 1  # nobody wrote in between
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 200
    for e in engines:
        e.dispose()
