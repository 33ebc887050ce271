"""A generated fleet leaves PostgreSQL's planner statistics current. Planned with stale
ones (autovacuum late or off), each batch's lookups by account number and serial scanned
the whole tenant: a million-meter fleet took hours."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from meterline.runtime import Runtime
from meterline.services.fleet import create_fleet
from tests.conftest import BACKENDS


# Planner statistics are PostgreSQL's: the test runs there only (with METERLINE_TEST_PG_URL).
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
