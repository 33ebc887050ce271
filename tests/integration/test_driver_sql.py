"""Driver-level inserts and lookups store and find exactly what SQLAlchemy Core would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import insert, select

from meterline.domain.enums import Billing, Service
from meterline.services.tenants import create_tenant
from meterline.store import driver_sql
from meterline.store.driver_sql import DriverInsert, lookup
from meterline.store.models import Account, Consumer

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=5, minutes=30)))
COLUMNS = (
    "tenant_id", "consumer_id", "number", "service", "billing", "address", "sanctioned_load_kw",
    "dues_minor", "due_date", "balance_minor", "created_at", "updated_at",
)  # fmt: skip


def _consumer(session, tenant_id: int) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(
        insert(Consumer)
        .values(tenant_id=tenant_id, name="x", preferred_language="hi")
        .returning(Consumer.id)
    )


def _values(tenant_id: int, consumer_id: int, number: str) -> tuple[object, ...]:
    return (
        tenant_id, consumer_id, number, Service.water, Billing.prepaid, "घर 1, \"A\"\tB\\C",
        Decimal("2.125"), 123456, date(2026, 4, 30), None, WHEN, WHEN.astimezone(UTC),
    )  # fmt: skip


def test_driver_insert_stores_what_core_stores(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, session.begin():
        consumer_id = _consumer(session, tenant.id)
        conn = session.connection()
        core = dict(zip(COLUMNS, _values(tenant.id, consumer_id, "CORE"), strict=True))
        conn.execute(insert(Account), [core])
        ins = DriverInsert(conn, Account.__table__, COLUMNS, prebound=("updated_at",))
        bound = ins.bind("updated_at", WHEN)
        ins.execute(conn, [(*_values(tenant.id, consumer_id, "DRIVER")[:-1], bound)])
        # As stored (driver values, no result processing) and as the ORM reads them.
        stored = {
            number: rest
            for number, *rest in conn.exec_driver_sql(
                "SELECT number, service, billing, address, sanctioned_load_kw, dues_minor,"
                " due_date, balance_minor, created_at, updated_at FROM accounts"
            )
        }
        assert stored["DRIVER"] == stored["CORE"]
        rows = {a.number: a for a in session.scalars(select(Account))}
        for name in COLUMNS[3:]:
            assert getattr(rows["DRIVER"], name) == getattr(rows["CORE"], name), name
        assert rows["DRIVER"].created_at == WHEN and rows["DRIVER"].service is Service.water


def test_lookup_is_scoped_to_the_tenant_and_chunked(sessions, tenant, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(driver_sql, "LOOKUP_CHUNK", 7)
    with sessions() as session, session.begin():
        other = create_tenant(
            session, slug="other", name="Other", country="IN", currency="INR", timezone="UTC"
        )
        session.flush()
        mine, theirs = _consumer(session, tenant.id), _consumer(session, other.id)
        conn = session.connection()
        ins = DriverInsert(conn, Account.__table__, COLUMNS)
        ins.execute(conn, [_values(tenant.id, mine, f"N-{i}") for i in range(20)])
        ins.execute(conn, [_values(other.id, theirs, f"N-{i}") for i in range(25)])
        c = Account.__table__.c
        wanted = [f"N-{i}" for i in range(0, 25, 2)]
        found = lookup(conn, c.number, [c.consumer_id, c.dues_minor], tenant.id, wanted)
        assert sorted(found) == sorted((n, mine, 123456) for n in wanted if int(n[2:]) < 20)
        assert lookup(conn, c.number, [c.id], tenant.id, []) == []


def test_driver_insert_of_many_rows_stores_each_once(sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    """Several rows per statement on SQLite, and the rows that do not fill one."""
    with sessions() as session, session.begin():
        consumer_id = _consumer(session, tenant.id)
        conn = session.connection()
        ins = DriverInsert(conn, Account.__table__, COLUMNS)
        count = 2 * ins.per_statement + 3
        ins.execute(conn, [_values(tenant.id, consumer_id, f"M-{i}") for i in range(count)])
        ins.execute(conn, [])
        stored = conn.exec_driver_sql("SELECT number, due_date FROM accounts ORDER BY id").all()
        assert [n for n, _ in stored] == [f"M-{i}" for i in range(count)]
        assert {d for _, d in stored} == {stored[0][1]}
