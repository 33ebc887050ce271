"""`meterline db analyze`: planner statistics for the tables imports do not keep.

Without them SQLite read all of a tenant's messages through (tenant, created) and
sorted them for a page of the newest 50: 2.5 s at 1,228,800 messages (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text
from typer.testing import CliRunner

from meterline.cli import app
from meterline.runtime import Runtime
from meterline.store.message_queries import MessageFilter, list_messages
from meterline.store.models import Message
from tests.support.sql_capture import sent_selects

MESSAGES = 2000
_EXPLAINS = itertools.count()


def _messages(runtime: Runtime, tenant_id: int) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {
            "tenant_id": tenant_id,
            "idempotency_key": f"k{n}",
            "kind": "dues_reminder",
            "priority": 5,
            "promotional": False,
            "medium": "sms",
            "language": "hi",
            "body": "बकाया",
            "segments": 1,
            "cost_minor": 25,
            "credit_state": "debited",
            "status": "delivered",
            "attempts": 1,
            "created_at": start + timedelta(seconds=n),
            "updated_at": start + timedelta(seconds=n),
        }
        for n in range(MESSAGES)
    ]
    with runtime.sessions() as session, session.begin():
        session.execute(insert(Message), rows)


def _page_plan(runtime: Runtime, tenant_id: int) -> list[str]:
    """SQLite's plan for the messages page (newest 50 of the tenant), explained on the
    connection that has just run it: a connection opened before `db analyze` plans with
    the new statistics from its next query on."""
    with runtime.sessions() as session:
        with sent_selects(runtime.engine) as seen:
            assert len(list_messages(session, tenant_id, MessageFilter())) == 50
        [(statement, params)] = [(s, p) for s, p in seen if "FROM messages" in s]
        # A text of its own each time: the driver caches prepared statements by text, and
        # a cached EXPLAIN would show the plan made before (it never reads the schema).
        explain = f"EXPLAIN QUERY PLAN {statement} -- {next(_EXPLAINS)}"
        rows = session.connection().exec_driver_sql(explain, params)
        return [row[3] for row in rows]


def test_db_analyze_refreshes_every_table(runtime: Runtime, tenant, database_url: str) -> None:  # type: ignore[no-untyped-def]
    _messages(runtime, tenant.id)
    sqlite = runtime.engine.dialect.name == "sqlite"
    if sqlite:  # read all 2,000 through the tenant index, then sort them
        assert "USE TEMP B-TREE FOR ORDER BY" in _page_plan(runtime, tenant.id)
    result = CliRunner().invoke(
        app, ["db", "analyze"], env={"METERLINE_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert "planner statistics refreshed" in result.stdout
    with runtime.engine.connect() as conn:
        if sqlite:
            stat = conn.execute(
                text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_messages_tenant_created'")
            ).scalar_one()
            # Every row counted (no sample): the tenant holds all 2,000.
            assert stat.split()[:2] == [str(MESSAGES), str(MESSAGES)]
        else:
            tuples = conn.execute(
                text(
                    "SELECT reltuples FROM pg_class WHERE relname = 'messages'"
                    " AND relnamespace = current_schema()::regnamespace"
                )
            ).scalar_one()
            assert tuples == MESSAGES
    if sqlite:  # newest first by id, stopping after 50
        assert "USE TEMP B-TREE FOR ORDER BY" not in _page_plan(runtime, tenant.id)
