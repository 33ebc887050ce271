"""The import's connection: SQLite settings for the bulk write while held, put back after."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from meterline.store.bulk_connection import BULK_PRAGMAS, WalCheckpointer, bulk_connection
from meterline.store.models import Tenant


def _pragmas(conn) -> dict[str, int]:  # type: ignore[no-untyped-def]
    raw = conn.connection.driver_connection
    return {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in BULK_PRAGMAS}


def test_settings_hold_for_the_import_and_are_put_back(runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    engine = runtime.engine
    if engine.dialect.name != "sqlite":
        with bulk_connection(engine) as conn:
            assert conn.execute(select(Tenant.slug)).scalar_one() == "aligarh"
        return
    with engine.connect() as conn:
        before = _pragmas(conn)
    assert all(before[name] != value for name, value in BULK_PRAGMAS.items())
    with bulk_connection(engine) as conn:
        assert _pragmas(conn) == BULK_PRAGMAS
        with runtime.sessions(bind=conn) as session, session.begin():
            session.execute(text("UPDATE tenants SET name = 'renamed'"))
    # The pool hands the same driver connection out again, with its settings as before.
    with engine.connect() as conn:
        assert _pragmas(conn) == before
    with runtime.sessions() as session:
        assert session.scalar(select(Tenant.name)) == "renamed"


def test_a_failed_write_is_rolled_back_and_the_settings_put_back(runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    engine = runtime.engine
    with pytest.raises(RuntimeError), bulk_connection(engine) as conn:
        conn.execute(text("UPDATE tenants SET name = 'half done'"))
        raise RuntimeError("killed midway")
    with runtime.sessions() as session, session.begin():  # the write lock was let go
        assert session.scalar(select(Tenant.name)) == "Aligarh Electricity Office"
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert all(v != BULK_PRAGMAS[name] for name, v in _pragmas(conn).items())


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, WalCheckpointer)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the WAL is SQLite's
def test_the_wal_is_copied_into_the_database_file_while_the_import_writes(runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    engine = runtime.engine
    db_file = Path(engine.url.database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bulk_scratch (payload BLOB)"))
    size_before = db_file.stat().st_size
    with bulk_connection(engine, checkpoint_every_s=0.02) as conn:
        assert len(_checkpointers()) == 1
        for _ in range(20):  # 2 MB in 20 commits, far below the connection's own backstop
            with conn.begin():
                conn.execute(text("INSERT INTO bulk_scratch VALUES (randomblob(10000))"), [{}] * 10)
        # Only a checkpoint writes pages into the database file itself.
        deadline = time.monotonic() + 10
        while db_file.stat().st_size < size_before + 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert db_file.stat().st_size >= size_before + 2_000_000
    assert _checkpointers() == []  # stopped with the connection
    with runtime.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM bulk_scratch")) == 200


def test_the_checkpointer_stops_when_the_import_fails(runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), bulk_connection(runtime.engine) as conn:
        conn.execute(text("SELECT 1"))
        raise RuntimeError("killed midway")
    assert _checkpointers() == []
