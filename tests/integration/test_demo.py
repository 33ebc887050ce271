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


def test_demo_sends_reminders_by_whatsapp_then_sms_with_links_a_person_can_pay(
    tmp_path: Path,
) -> None:
    import random
    from datetime import UTC, datetime, time, timedelta
    from time import sleep

    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from meterline.config import Settings
    from meterline.demo import DEMO_CREDIT_MINOR, DEMO_REMINDERS, NOT_ON_WHATSAPP_EVERY
    from meterline.domain.enums import BillStatus, Medium, MessageStatus
    from meterline.runtime import Runtime
    from meterline.services import credit
    from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
    from meterline.services.routes import list_routes
    from meterline.store.models import Bill, ChannelAccount, Message, PaymentGateway
    from meterline.web.app import create_app

    site = "http://127.0.0.1:8123"
    info = prepare_demo(tmp_path / "demo", 120, today=TODAY, public_url=site)
    assert info.reminders == DEMO_REMINDERS
    summary = info.summary()
    assert f"{DEMO_REMINDERS} dues reminders queued" in summary
    assert [link.on_whatsapp for link in info.links] == [True, False]
    for link in info.links:
        assert link.url.startswith(f"{site}/p/") and link.url in summary
    engine = make_engine(info.database_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        tenant = get_tenant(s, TENANT_SLUG)
        accounts = {a.name: a for a in s.scalars(select(ChannelAccount))}
        (route,) = [r for r in list_routes(s, tenant.id) if r.kind == "dues_reminder"]
        (gateway,) = s.scalars(select(PaymentGateway)).all()
        messages = s.scalars(select(Message).order_by(Message.id)).all()
        totals = credit.totals(s, tenant.id)
    # Whoever runs the demo, at any hour, sees messages go out: no quiet hours.
    assert (tenant.quiet_start, tenant.quiet_end) == ("00:00", "00:00")
    assert accounts["sandbox-whatsapp"].medium is Medium.whatsapp
    assert accounts["sandbox-sms"].medium is Medium.sms
    not_on_wa = set(accounts["sandbox-whatsapp"].config["unreachable"])
    assert len(not_on_wa) == DEMO_REMINDERS // NOT_ON_WHATSAPP_EVERY
    assert [str(step["medium"]) for step in route.as_json()["steps"]] == ["whatsapp", "sms"]
    assert (gateway.type_name, gateway.is_default) == ("sandbox", True)
    assert {m.kind for m in messages} == {"dues_reminder"} and len(messages) == DEMO_REMINDERS
    assert {m.medium for m in messages} == {Medium.whatsapp}  # WhatsApp first, for everyone
    assert not_on_wa <= {m.to_address for m in messages}
    for m in messages:
        assert set(m.data or {}) == {"account", "amount", "due_date", "pay_url"}
        assert str((m.data or {})["pay_url"]).startswith(f"{site}/p/")
        assert m.bill_id is not None
    # Nothing held yet: WhatsApp costs no SMS credit until a reminder falls back.
    assert (totals.balance_minor, totals.held_minor) == (DEMO_CREDIT_MINOR, 0)

    # The serving app's dispatcher, past the quiet hours: one message per reminder, the
    # numbers not on WhatsApp by SMS.
    # Tomorrow at noon in India, running on (the rate limit's tokens refill with it).
    noon_ist = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(6, 30), UTC)
    started = datetime.now(UTC)
    # drain stops at a round that claims nothing, as when the demo accounts' rate (20/s)
    # has no token left: go on until nothing is queued.
    for _ in range(50):
        drain(
            Dispatcher(
                sessions,
                settings=DispatchSettings(),
                clock=lambda: noon_ist + (datetime.now(UTC) - started),
                rng=random.Random(5),
            )
        )
        with sessions() as s:
            if not s.scalar(select(func.count()).where(Message.status == MessageStatus.queued)):
                break
        sleep(0.1)
    with sessions() as s:
        sent = s.scalars(select(Message).where(Message.kind == "dues_reminder")).all()
    assert len(sent) == DEMO_REMINDERS
    assert {m.to_address for m in sent if m.medium is Medium.sms} == not_on_wa
    assert {m.status for m in sent} == {MessageStatus.delivered}
    sms = [m for m in sent if m.medium is Medium.sms]
    assert all(f"{site}/p/" in m.body for m in sms)

    # A person opens the SMS's link, presses Pay, approves on the sandbox page: paid.
    settings = Settings(
        database_url=info.database_url,  # type: ignore[arg-type]
        secret_key=SecretStr(info.secret_key),
        public_url=site,
    )
    runtime = Runtime(settings=settings, engine=engine, sessions=sessions)
    path = info.links[1].url.removeprefix(site)
    with TestClient(create_app(runtime), base_url=site) as client:
        assert client.get(path).status_code == 200
        go = client.post(f"{path}/pay", follow_redirects=False)
        assert (go.status_code, go.headers["location"]) == (303, f"{site}{path}/sandbox")
        done = client.post(f"{path}/sandbox", data={"decision": "approve"})
        assert done.status_code == 200
    with sessions() as s:
        paid = s.scalars(select(Bill).where(Bill.status == BillStatus.paid)).all()
        confirmations = s.scalars(select(Message).where(Message.kind == "payment_received")).all()
    assert len(paid) == 1 and len(confirmations) == 1
    engine.dispose()
