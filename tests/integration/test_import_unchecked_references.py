"""All-new import batches run without SQLite's foreign key checks, and store no dangling
reference: what they insert points to the tenant and areas they check, or to rows they
insert themselves (store/master_data.py, `_insert_all`; store/bulk_connection.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from meterline.domain.master_row import MasterRecord
from meterline.ingest.sample_sheet import write_csv as write_sample
from meterline.services.importer import import_master, tenant_defaults
from meterline.store.bulk_connection import bulk_connection, foreign_keys_unchecked
from meterline.store.master_data import AreaCache, apply_batch
from meterline.store.models import Account, Area, Bill, Consumer, ContactPoint, Meter
from tests.support.snapshot import master_snapshot

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
MASTER_TABLES = [m.__table__ for m in (Consumer, Account, ContactPoint, Meter, Bill)]


def _dangling(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows of the master tables whose foreign key points to no row, by table.column."""
    out = {}
    with sessions() as s:
        for table in MASTER_TABLES:
            assert isinstance(table, Table)
            for fk in table.foreign_keys:
                parent = fk.column.table
                n = s.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(
                        fk.parent.is_not(None),
                        ~select(parent.c.id).where(parent.c.id == fk.parent).exists(),
                    )
                )
                if n:
                    out[f"{table.name}.{fk.parent.name}"] = n
    return out


def _foreign_keys_on(runtime) -> list[int]:  # type: ignore[no-untyped-def]
    """PRAGMA foreign_keys of every pooled SQLite connection (all must be 1)."""
    pool = runtime.engine.pool
    seen = []
    conns = [runtime.engine.connect() for _ in range(max(1, pool.checkedin()))]
    for c in conns:
        seen.append(c.exec_driver_sql("PRAGMA foreign_keys").scalar())
        c.close()
    return seen


def test_an_import_leaves_no_dangling_reference_and_checks_on_again(
    runtime, sessions, tenant, tmp_path: Path
) -> None:
    path = write_sample(tmp_path / "sample.csv", 1500, bad_rows=True, totals=True)
    first = import_master(sessions, "aligarh", path, batch_size=400)
    again = import_master(sessions, "aligarh", path, batch_size=400)
    assert first.inserted > 1400 and (again.inserted, again.updated) == (0, 0)
    assert _dangling(sessions) == {}
    if runtime.engine.dialect.name == "sqlite":
        assert set(_foreign_keys_on(runtime)) == {1}


def _record(i: int, area: tuple[str, ...]) -> MasterRecord:
    return MasterRecord(
        f"A{i}",
        {"name": f"N{i}", "phones": [f"+91987650{i:04d}"], "area_path": area,
         "dues_minor": 500, "meter_serial": f"M{i}"},
    )  # fmt: skip


def _unchecked_batch(runtime, tenant, areas: AreaCache, records):  # type: ignore[no-untyped-def]
    """One all-new batch as the import's writer runs it: on the bulk connection, checks off."""
    with (
        bulk_connection(runtime.engine) as conn,
        runtime.sessions(bind=conn) as session,
        foreign_keys_unchecked(session),
    ):
        out = apply_batch(session, tenant_defaults(tenant), records, areas, NOW, assume_new=True)
        on = session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar()
        session.commit()
    return out, on


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_area_gone_since_it_was_cached_is_not_pointed_to(runtime, sessions, tenant) -> None:
    """The area cache outlives a batch: an area deleted meanwhile sends the batch to the
    general path, with checks on, which makes the area anew."""
    areas = AreaCache()
    out, on = _unchecked_batch(runtime, tenant, areas, [(1, _record(1, ("North",)))])
    assert (out.all_new, on) == (True, 0)
    with sessions() as s, s.begin():
        s.execute(update(Account).values(area_id=None))
        s.execute(delete(Area).where(Area.path == "North"))
    out, on = _unchecked_batch(runtime, tenant, areas, [(2, _record(2, ("North",)))])
    assert (out.inserted, on) == (1, 1)  # the general path, with checks back on
    snap = master_snapshot(sessions, tenant.id)
    assert snap["A2"][8] == "North"
    assert _dangling(sessions) == {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tenant_gone_is_refused_as_with_checks_on(runtime, sessions, tenant) -> None:
    with runtime.engine.connect() as c:
        c.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no cascade, no refusal: just the row
        c.exec_driver_sql("DELETE FROM tenants WHERE id = ?", (tenant.id,))
        c.commit()
        c.exec_driver_sql("PRAGMA foreign_keys=ON")
    with pytest.raises(IntegrityError):
        _unchecked_batch(runtime, tenant, AreaCache(), [(1, _record(1, ("North",)))])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Consumer)) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_checks_cannot_be_turned_off_inside_a_transaction(runtime, tenant) -> None:
    with bulk_connection(runtime.engine) as conn, runtime.sessions(bind=conn) as s:
        s.execute(insert(Area).values(tenant_id=tenant.id, level="area", name="X", path="X"))
        with (
            pytest.raises(ValueError, match="already in a transaction"),
            foreign_keys_unchecked(s),
        ):
            pass
        s.rollback()
        with foreign_keys_unchecked(s):
            assert s.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            s.rollback()
        assert s.connection().exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
