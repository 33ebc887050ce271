"""After an import, SQLite answers a consumer's page by the consumer, not by the tenant.

Without planner statistics SQLite took `tenant_id = ?` for selective and read the
tenant's whole part of an index for each of the consumer page's queries (0.65-1 s each
at 900,000 accounts; store/planner_statistics.py). Those plans do not depend on the
table's size. The accounts page's 50 rows by id do: below a few hundred accounts
reading the tenant's in number order is cheaper than sorting 50, so the sheet has 3,000.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from meterline.ingest.sample_sheet import write_csv as write_sample
from meterline.services.importer import import_master
from meterline.services.tenants import create_tenant
from meterline.store.db import make_engine, make_session_factory
from meterline.store.migrate import upgrade_engine
from meterline.store.models import Account
from meterline.store.queries import AccountFilter, consumer_detail, search_accounts
from tests.support.sql_capture import sent_selects

# A step that finds rows by the tenant alone: fine for counting a tenant's accounts,
# wrong for one consumer's rows or a page of accounts picked by id.
BY_TENANT_ALONE = re.compile(r"USING (COVERING )?INDEX \S+ \(tenant_id=\?\)$")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade_engine(engine)
    yield engine
    engine.dispose()


def _plan(engine: Engine, statement: str, params: Any) -> list[str]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
    return [row[3] for row in rows]


def test_a_consumer_page_after_an_import_reads_by_the_consumer(
    engine: Engine, tmp_path: Path
) -> None:
    sessions = make_session_factory(engine)
    with sessions() as s, s.begin():
        tenant = create_tenant(
            s, slug="aligarh", name="A", country="IN", currency="INR", timezone="Asia/Kolkata"
        )
        tenant_id = tenant.id
    sheet = write_sample(tmp_path / "master.csv", 3000)
    assert import_master(sessions, "aligarh", sheet).inserted == 3000
    with sessions() as s:
        consumer_id = s.scalar(select(Account.consumer_id).order_by(Account.id).limit(1))
        assert consumer_id is not None

        with sent_selects(engine) as statements:
            assert consumer_detail(s, tenant_id, consumer_id) is not None
            page = search_accounts(
                s, tenant_id, AccountFilter(), today=date(2025, 3, 15), phone_region="IN"
            )
            assert len(page.items) == 50
    plans = {sql: _plan(engine, sql, params) for sql, params in statements}
    # The consumer page: the consumer, its accounts, phones, meters, bills and ledger;
    # the accounts page: the count, the page's ids in number order, then those 50 rows.
    assert len(plans) >= 8
    wrong = {
        sql: steps
        for sql, steps in plans.items()
        if any(BY_TENANT_ALONE.search(step) for step in steps)
        and ("consumer_id = ?" in sql or " IN (" in sql)
    }
    assert wrong == {}
    with engine.connect() as conn:
        analysed = conn.execute(text("SELECT DISTINCT tbl FROM sqlite_stat1")).scalars().all()
    assert {"consumers", "accounts", "contact_points", "meters", "bills"} <= set(analysed)
