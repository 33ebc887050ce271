"""`prepare_demo`: a repeatable demo utility, filled through the real importer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from meterline.demo import TENANT_SLUG, prepare_demo
from meterline.services.security import authenticate
from meterline.services.tenants import get_tenant
from meterline.store.db import make_engine, make_session_factory
from meterline.store.models import Account, ImportRowError, ImportRun
from tests.support.snapshot import master_snapshot

TODAY = date(2025, 3, 15)


def test_demo_imports_the_generated_sheet_and_is_repeatable(tmp_path: Path) -> None:
    info = prepare_demo(tmp_path / "demo", 300, today=TODAY)
    assert info.database_url == f"sqlite:///{(tmp_path / 'demo' / 'meterline.db').resolve()}"
    assert info.sheet.suffix == ".xlsx" and info.sheet.exists()
    r = info.report
    assert (r.status, r.inserted, r.updated, r.rejected, r.skipped) == ("done", 300, 0, 4, 1)
    reasons = " | ".join(e["reason"] for e in r.errors)
    assert "account number is missing" in reasons
    assert "mobile" in reasons
    assert "is not an amount" in reasons
    assert "appears again in this file" in reasons
    assert "300 inserted" in info.summary() and "4 rejected" in info.summary()

    engine = make_engine(info.database_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        tenant = get_tenant(s, TENANT_SLUG)
        assert (tenant.country, tenant.currency, tenant.timezone) == ("IN", "INR", "Asia/Kolkata")
        assert tenant.language_list == ["hi", "en", "bn", "ru"]
        assert authenticate(s, info.username, info.password) is not None
        accounts = s.scalar(select(func.count()).where(Account.tenant_id == tenant.id))
        assert accounts == 300
        defaulters = s.scalar(
            select(func.count()).where(
                Account.tenant_id == tenant.id, Account.dues_minor > 0, Account.due_date < TODAY
            )
        )
        assert defaulters and 30 < defaulters < 250
        stored = s.scalars(select(ImportRowError.reason).where(ImportRowError.skipped.is_(False)))
        assert len(list(stored)) == 4
    first = master_snapshot(sessions, tenant.id)
    engine.dispose()

    again = prepare_demo(tmp_path / "demo", 300, today=TODAY)
    assert again.report.inserted == 300
    engine = make_engine(again.database_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 1  # started afresh
    assert master_snapshot(sessions, tenant.id) == first
    engine.dispose()


def test_demo_sets_up_a_sandbox_channel_credit_and_reminders(tmp_path: Path) -> None:
    from meterline.demo import DEMO_CREDIT_MINOR, DEMO_REMINDERS
    from meterline.services import credit
    from meterline.store.models import Message

    info = prepare_demo(tmp_path / "demo", 120, today=TODAY)
    assert info.reminders == DEMO_REMINDERS
    assert f"{DEMO_REMINDERS} dues reminders queued" in info.summary()
    sessions = make_session_factory(make_engine(info.database_url))
    with sessions() as s:
        tenant = get_tenant(s, TENANT_SLUG)
        messages = s.scalars(select(Message)).all()
        totals = credit.totals(s, tenant.id)
    assert {m.kind for m in messages} == {"dues_reminder"} and len(messages) == DEMO_REMINDERS
    assert all(m.to_address and m.to_address.startswith("+91") for m in messages)
    # The data is kept for re-rendering, dates as ISO text.
    first = messages[0].data or {}
    assert set(first) == {"account", "amount", "due_date"}
    assert date.fromisoformat(first["due_date"]) < TODAY
    assert totals.balance_minor == DEMO_CREDIT_MINOR
    assert totals.held_minor == sum(m.cost_minor for m in messages) > 0
