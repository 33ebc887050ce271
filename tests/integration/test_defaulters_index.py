"""Defaulters (dues above zero past the due date) are counted and listed through the
partial index ix_accounts_tenant_owing_due, on both databases; PostgreSQL included when
it plans without the query's parameter values (a generic plan, as for a prepared
statement run many times), which is why the condition writes its 0 into the SQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.orm import Session

from meterline.domain.enums import Billing, Service
from meterline.runtime import Runtime
from meterline.store.models import Account, Consumer, Tenant
from meterline.store.queries import (
    AccountFilter,
    dashboard_counts,
    defaulter_condition,
    search_accounts,
)

TODAY = date(2026, 11, 30)
INDEX = "ix_accounts_tenant_owing_due"

# number -> (dues in paise, due date): past and future due dates, owing and not, no date.
ACCOUNTS: dict[str, tuple[int, date | None]] = {
    "D-1": (150_00, TODAY - timedelta(days=40)),
    "D-2": (1, TODAY - timedelta(days=1)),
    "D-3": (0, TODAY - timedelta(days=40)),
    "D-4": (90_00, TODAY),  # due today: not yet a defaulter
    "D-5": (90_00, TODAY + timedelta(days=5)),
    "D-6": (75_00, None),
    "D-7": (0, None),
    "D-8": (-20_00, TODAY - timedelta(days=3)),  # paid in advance
    "D-9": (12_345_00, TODAY - timedelta(days=400)),
}
DEFAULTERS = {n for n, (dues, due) in ACCOUNTS.items() if dues > 0 and due and due < TODAY}


def _add_accounts(s: Session, tenant_id: int) -> None:
    for number, (dues, due) in ACCOUNTS.items():
        consumer = Consumer(tenant_id=tenant_id, name=f"c {number}", preferred_language="hi")
        s.add(consumer)
        s.flush()
        s.add(
            Account(
                tenant_id=tenant_id,
                consumer_id=consumer.id,
                number=number,
                service=Service.electricity,
                billing=Billing.postpaid,
                dues_minor=dues,
                due_date=due,
            )
        )


def test_defaulters_are_counted_and_listed(runtime: Runtime, tenant: Tenant) -> None:
    with runtime.sessions() as s, s.begin():
        _add_accounts(s, tenant.id)
    with runtime.sessions() as s:
        assert dashboard_counts(s, tenant.id, TODAY).defaulters == len(DEFAULTERS)
        page = search_accounts(
            s, tenant.id, AccountFilter(defaulters=True), today=TODAY, phone_region="IN"
        )
        assert {row.number for row in page.items} == DEFAULTERS


def _plan(s: Session, tenant_id: int) -> str:
    """The database's plan for counting the tenant's defaulters, as one string."""
    stmt = select(func.count()).where(Account.tenant_id == tenant_id, defaulter_condition(TODAY))
    conn = s.connection()
    compiled = stmt.compile(dialect=conn.dialect)
    if conn.dialect.name == "sqlite":
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
        return "\n".join(str(r[-1]) for r in rows)
    # A prepared statement with a generic plan: planned without its parameters' values,
    # so only an index the SQL itself implies can be used. Tiny tables would be scanned
    # whatever the indexes, hence no sequential scans.
    numbered = stmt.compile(dialect=asyncpg.dialect())  # $1, $2, ... as PREPARE takes
    values = [numbered.params[name] for name in numbered.positiontup or ()]
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE defaulters AS {numbered}")
    # EXECUTE takes no bound parameters: the values (a tenant id, a date) written out.
    args = ", ".join(f"'{v}'::date" if isinstance(v, date) else str(int(v)) for v in values)
    rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE defaulters({args})").all()
    return "\n".join(str(r[0]) for r in rows)


def test_the_defaulters_count_uses_the_partial_index(runtime: Runtime, tenant: Tenant) -> None:
    with runtime.sessions() as s, s.begin():
        _add_accounts(s, tenant.id)
    with runtime.sessions() as s, s.begin():
        plan = _plan(s, tenant.id)
    assert INDEX in plan, plan
