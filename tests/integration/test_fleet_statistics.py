"""A generated fleet leaves the planner statistics current. Planned with stale ones
(autovacuum late or off), PostgreSQL's lookups by account number and serial scanned the
whole tenant: a million-meter fleet took hours. SQLite kept none at all."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from meterline.runtime import Runtime
from meterline.services.fleet import create_fleet
from tests.conftest import BACKENDS


# pg_class's estimates are PostgreSQL's: this one runs there only (METERLINE_TEST_PG_URL).
@pytest.mark.parametrize("database_url", [b for b in BACKENDS if b == "postgresql"], indirect=True)
def test_the_fleet_tables_are_analysed_as_they_grow(runtime: Runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    create_fleet(runtime.sessions, tenant.slug, 3000, prefix="ST", batch_size=500)
    with runtime.engine.connect() as conn:
        estimated = dict(
            conn.execute(
                text(
                    "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'"
                    " AND relnamespace = current_schema()::regnamespace"
                    " AND relname IN ('consumers', 'accounts', 'meters', 'contact_points')"
                )
            ).all()
        )
        assert estimated == {name: 3000 for name in estimated} and len(estimated) == 4


@pytest.mark.parametrize("database_url", [b for b in BACKENDS if b == "sqlite"], indirect=True)
def test_the_fleet_tables_get_sqlite_statistics(runtime: Runtime, tenant) -> None:  # type: ignore[no-untyped-def]
    """Without them SQLite reads one consumer's rows through the tenant's whole index."""
    create_fleet(runtime.sessions, tenant.slug, 3000, prefix="ST", batch_size=500)
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT idx, stat FROM sqlite_stat1")).all()
    # "rows, rows per key prefix, ...", estimated from a sample of 1,000 (so a tenant's
    # share reads 1001 at most): one tenant holds every row, one consumer has one
    # account, one account one meter.
    stats = {idx: [int(n) for n in stat.split()[:2]] for idx, stat in rows}
    for index in ("ix_accounts_consumer_id", "ix_meters_account_id"):
        total, per_key = stats[index]
        assert total > 1000 and per_key == 1, (index, stats[index])
    total, per_tenant = stats["ix_consumers_tenant_id"]
    assert total > 1000 and per_tenant > 1000
