"""The import writer's shortcuts store exactly what its general path stores.

`apply_batch(..., assume_new=True)` inserts a batch without looking stored keys up and
falls back to the lookups when a unique constraint refuses a row; `reserve_ids` hands
out the primary keys the new rows are inserted with.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from meterline.domain.enums import Billing, Service
from meterline.domain.master_row import MasterRecord
from meterline.services.importer import tenant_defaults
from meterline.services.tenants import create_tenant
from meterline.store.driver_sql import reserve_ids
from meterline.store.master_data import AreaCache, BatchOutcome, apply_batch
from meterline.store.models import Area, Consumer, Tenant
from tests.support.snapshot import master_snapshot

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
_slugs = itertools.count()


def _record(i: int, version: int = 0, serial: int | None = None) -> MasterRecord:
    """Account A{i}; `version` changes what the row says; `serial` its meter's number."""
    given: dict[str, object] = {
        "name": f"Name {i}.{version}",
        "phones": [f"+9198765{i:05d}"] + ([f"+9198111{i:05d}"] if (i + version) % 3 == 0 else []),
        "area_path": ("Circle", f"Division {(i + version) % 4}"),
        "dues_minor": (i * 37 + version) % 5 * 1000,
        "due_date": date(2026, 1 + (i + version) % 12, 10),
        "service": Service.water if i % 5 == 0 else None,
        "billing": Billing.prepaid if i % 7 == 0 else None,
        "sanctioned_load_kw": Decimal("2.125") if i % 2 else None,
    }
    if serial is not None:
        given["meter_serial"] = f"M{serial}"
    return MasterRecord(account=f"A{i}", given=given)


def _tenant(sessions) -> Tenant:  # type: ignore[no-untyped-def]
    with sessions() as session, session.begin():
        t = create_tenant(
            session,
            slug=f"t{next(_slugs)}",
            name="T",
            country="IN",
            currency="INR",
            timezone="Asia/Kolkata",
        )
        session.flush()
        session.expunge(t)
    return t


def _apply(sessions, tenant, batch, *, assume_new: bool, areas=None) -> BatchOutcome:  # type: ignore[no-untyped-def]
    # As the import's writer does: the batch opens the session's transaction.
    with sessions() as session:
        out = apply_batch(
            session,
            tenant_defaults(tenant),
            batch,
            areas or AreaCache(),
            NOW,
            assume_new=assume_new,
        )
        session.commit()
        return out


batches = st.lists(
    st.tuples(
        st.integers(0, 30),  # account
        st.integers(0, 2),  # version of its row
        st.one_of(st.none(), st.integers(0, 40)),  # meter serial
    ),
    max_size=25,
    unique_by=lambda t: t[0],
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stored=batches, batch=batches, orphans=st.sets(st.integers(0, 30), max_size=4))
def test_assume_new_stores_what_the_general_path_stores(sessions, stored, batch, orphans) -> None:  # type: ignore[no-untyped-def]
    """Same rows, counts and rejections, whether or not the batch's keys were stored."""
    # One serial per file, as the reading stage guarantees.
    batch = [(a, v, s if s is None or s not in {x[2] for x in batch[:n]} else None)
             for n, (a, v, s) in enumerate(batch)]  # fmt: skip
    stored = [(a, v, s if s is None or s not in {x[2] for x in stored[:n]} else None)
              for n, (a, v, s) in enumerate(stored)]  # fmt: skip
    results = []
    for assume_new in (False, True):
        tenant = _tenant(sessions)
        if stored:
            _apply(sessions, tenant, [(n, _record(a, v, s)) for n, (a, v, s) in enumerate(stored)],
                   assume_new=False)  # fmt: skip
        with sessions() as session, session.begin():
            # Consumers a previous import left without an account keep being reused.
            for a in orphans:
                if a not in {x[0] for x in stored}:
                    session.execute(
                        insert(Consumer).values(
                            tenant_id=tenant.id, name="orphan", import_key=f"A{a}"
                        )
                    )
        records = [(100 + n, _record(a, v, s)) for n, (a, v, s) in enumerate(batch)]
        try:
            out = _apply(sessions, tenant, records, assume_new=assume_new)
            outcome: object = (out.inserted, out.updated, out.unchanged, sorted(out.rejected))
        except Exception as exc:  # e.g. a serial on an unattached meter: both must refuse
            outcome = type(exc).__name__
        with sessions() as session:
            consumers = session.scalar(
                select(func.count()).select_from(Consumer).where(Consumer.tenant_id == tenant.id)
            )
        results.append((outcome, consumers, master_snapshot(sessions, tenant.id)))
    assert results[0] == results[1]


def test_a_refused_shortcut_leaves_no_area_behind(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """Areas made inside the rolled-back transaction are not reused by id afterwards."""
    _apply(sessions, tenant, [(1, _record(1, serial=1))], assume_new=False)
    areas = AreaCache()
    fresh_area = _record(2, serial=2)
    fresh_area.given["area_path"] = ("Elsewhere", "New feeder")
    # Row 3's meter belongs to A1: the meters insert, after the areas, refuses the batch.
    batch = [(2, fresh_area), (3, _record(3, serial=1))]
    out = _apply(sessions, tenant, batch, assume_new=True, areas=areas)
    assert (out.inserted, len(out.rejected), out.all_new) == (1, 1, False)
    assert master_snapshot(sessions, tenant.id)["A2"][8] == "Elsewhere / New feeder"
    with sessions() as session:
        paths = session.scalars(select(Area.path).where(Area.tenant_id == tenant.id)).all()
    assert paths.count("Elsewhere / New feeder") == 1


def test_all_new_tells_whether_the_batch_found_stored_keys(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    assert _apply(sessions, tenant, [(1, _record(1, serial=1))], assume_new=False).all_new
    assert _apply(sessions, tenant, [(2, _record(2, serial=2))], assume_new=True).all_new
    again = _apply(sessions, tenant, [(1, _record(1, serial=1))], assume_new=True)
    assert (again.unchanged, again.all_new) == (1, False)
    taken = _apply(sessions, tenant, [(3, _record(3, serial=2))], assume_new=False)
    assert taken.rejected and not taken.all_new


def test_reserved_ids_are_fresh_for_the_orm_too(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, session.begin():
        conn = session.connection()
        ids = list(reserve_ids(conn, Consumer.__table__, 3))
        assert len(set(ids)) == 3 and reserve_ids(conn, Consumer.__table__, 0) == ()
        for cid in ids:
            session.execute(
                insert(Consumer).values(id=cid, tenant_id=tenant.id, name="r", import_key=str(cid))
            )
    with sessions() as session, session.begin():
        later = session.scalar(
            insert(Consumer)
            .values(tenant_id=tenant.id, name="orm", import_key="orm")
            .returning(Consumer.id)
        )
        assert later is not None and later not in ids
        more = list(reserve_ids(session.connection(), Consumer.__table__, 2))
        assert not set(more) & {*ids, later}


def test_assume_new_refuses_a_transaction_already_holding_work(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """Its refusal rolls the whole transaction back: work done before would be lost."""
    refused = pytest.raises(ValueError, match="open the session's transaction")
    with sessions() as session, session.begin(), refused:
        apply_batch(session, tenant_defaults(tenant), [(1, _record(1))], AreaCache(), NOW,
                    assume_new=True)  # fmt: skip
