"""Dues reminder runs through the HTTP API, the CLI and the console, on SQLite and
PostgreSQL: selection and filters, the preview's channel mix and cost, sending once per
(run or schedule step, bill) with the bill's payment link, a payment cancelling the bill's
queued reminder, and the report per run and per day (JSON and CSV)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from meterline.cli import app as cli_app
from meterline.domain.enums import Medium, MessageStatus
from meterline.runtime import Runtime
from meterline.services import payments as pay
from meterline.services import reminders as rem
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.store.models import Message, PaymentLink, ReminderItem, ReminderRun, Tenant
from meterline.web.app import create_app
from tests.support.payments_setup import SANDBOX_SECRET, Utility, make_utility

DUE = date(2026, 11, 10)


@pytest.fixture
def utility(runtime: Runtime) -> Utility:
    with runtime.sessions() as s, s.begin():
        u = make_utility(s, due=DUE)
        t = s.get(Tenant, u.tenant_id)
        assert t is not None
        t.quiet_start = t.quiet_end = "00:00"  # reminders go out at once in these tests
        pay.add_gateway(
            s,
            u.tenant_id,
            name="sandbox",
            type_name="sandbox",
            config={"webhook_secret": SANDBOX_SECRET},
        )
    return u


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    application = create_app(runtime)
    # 2026-11-29 in India: 19 days after the due date.
    application.state.console_clock = lambda: datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    with TestClient(application) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def preview(client: TestClient, u: Utility, **f: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/reminders/preview", json=f, headers=auth(u.operator_key))
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_preview_counts_the_channel_mix_and_the_sms_cost(client, runtime, utility) -> None:
    body = preview(client, utility)
    assert body["count"] == 4 and body["amount_minor"] == 1250_50 + 800_00 + 3000_00 + 450_00
    # No WhatsApp channel yet: every phone gets SMS, the consumer without one the inbox.
    assert body["channel_mix"] == {"inapp": 1, "sms": 3}
    assert body["sms_segments"] >= 3 and body["sms_cost_minor"] == 25 * body["sms_segments"]
    with runtime.sessions() as s, s.begin():
        add_channel_account(
            s, utility.tenant_id, name="wa", type_name="sandbox", config={}, medium=Medium.whatsapp
        )
    body = preview(client, utility)
    assert body["channel_mix"] == {"inapp": 1, "sms": 1, "whatsapp": 1, "whatsapp_unknown": 1}
    assert body["sms_cost_minor"] < body["sms_cost_if_all_fall_back_minor"]
    # Filters: an area subtree, an amount range, days overdue.
    with runtime.sessions() as s:
        from meterline.store.models import Area

        north = s.scalar(select(Area.id).where(Area.name == "North"))
    assert preview(client, utility, area_id=north)["count"] == 2
    assert preview(client, utility, min_amount_minor=1000_00)["count"] == 2
    assert preview(client, utility, min_amount_minor=500_00, max_amount_minor=1000_00)["count"] == 1
    assert preview(client, utility, min_days_overdue=19)["count"] == 4
    assert preview(client, utility, min_days_overdue=20)["count"] == 0
    bad = client.post(
        "/api/v1/reminders/preview",
        json={"min_amount_minor": 5, "max_amount_minor": 1},
        headers=auth(utility.operator_key),
    )
    assert bad.status_code == 422 and "max_amount_minor" in bad.json()["detail"]
    assert (
        client.post(
            "/api/v1/reminders/preview", json={}, headers=auth(utility.viewer_key)
        ).status_code
        == 403
    )
    other = client.post("/api/v1/reminders/preview", json={}, headers=auth(utility.other_key))
    assert other.json()["count"] == 0


def test_a_run_sends_each_bill_its_link_and_a_payment_cancels_what_is_queued(
    client, runtime, utility
) -> None:
    resp = client.post("/api/v1/reminders/runs", json={}, headers=auth(utility.operator_key))
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert (run["selected"], run["queued"], run["refused"]) == (4, 4, 0)
    with runtime.sessions() as s:
        msgs = s.scalars(select(Message).where(Message.kind == "dues_reminder")).all()
        assert {m.bill_id for m in msgs} == set(utility.bills.values())
        assert {m.idempotency_key for m in msgs} == {
            f"rem:run{run['id']}:bill{b}" for b in utility.bills.values()
        }
        links = {pl.bill_id: pl for pl in s.scalars(select(PaymentLink))}
        assert len(links) == 4
        hindi = next(m for m in msgs if m.bill_id == utility.bills["AL-001"])
        code = links[utility.bills["AL-001"]].code
        assert hindi.language == "hi" and f"/p/{code}" in hindi.body and "₹1,250.50" in hindi.body
        assert hindi.data and hindi.data["pay_url"].endswith(f"/p/{code}")
        assert s.scalar(select(func.count()).select_from(ReminderItem)) == 4
    # The consumer pays before the reminder went out: it is cancelled, its hold released.
    assert client.get(f"/p/{code}").status_code == 200
    with runtime.sessions() as s, s.begin():
        row = pay.default_gateway(s, utility.tenant_id)
        assert row is not None
        gateway = pay.gateway_for(row)
        signed = gateway.signed_result(code, 1250_50, "INR", approve=True)  # type: ignore[attr-defined]
        key = pay.link_key(runtime.settings.secret_key.get_secret_value())
        (recorded,) = pay.handle_webhook(
            s, row.id, signed, now=datetime(2026, 11, 29, 7, 0, tzinfo=UTC), key=key
        ).recorded
        assert recorded.cancelled_reminders == 1
    drain(Dispatcher(runtime.sessions, settings=DispatchSettings(), rng=random.Random(1)))
    with runtime.sessions() as s:
        cancelled = s.get(Message, hindi.id)
        assert cancelled is not None and cancelled.status is MessageStatus.failed
        assert cancelled.error_code == "cancelled" and cancelled.sent_at is None
    report = client.get("/api/v1/reminders/report", headers=auth(utility.viewer_key)).json()
    (row,) = report["rows"]
    assert row["key"] == str(run["id"])
    assert (row["reminders"], row["sent"], row["delivered"], row["cancelled"]) == (4, 3, 3, 1)
    assert (row["clicked"], row["paid"], row["paid_amount_minor"]) == (1, 1, 1250_50)
    assert row["failed"] == 0 and row["fell_back_to_sms"] == 0
    with runtime.sessions() as s:
        spent = s.scalar(
            select(func.sum(Message.cost_minor)).where(
                Message.kind == "dues_reminder", Message.status == MessageStatus.delivered
            )
        )
    assert row["cost_minor"] == spent and spent > 0
    by_day = client.get(
        "/api/v1/reminders/report?by=day&format=csv", headers=auth(utility.viewer_key)
    )
    assert by_day.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(by_day.text.lstrip("\ufeff"))))
    # The run was queued at the app's clock: 2026-11-29 in India.
    assert [(r["day"], r["paid"], r["reminders"]) for r in rows] == [("2026-11-29", "1", "4")]
    runs = client.get("/api/v1/reminders/runs", headers=auth(utility.viewer_key)).json()["runs"]
    assert runs[0]["report"]["paid"] == 1


def test_a_schedule_sends_each_step_once_per_bill(runtime, utility) -> None:
    key = pay.link_key(runtime.settings.secret_key.get_secret_value())
    now = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)

    def run_on(day: date) -> list[ReminderRun]:
        with runtime.sessions() as s, s.begin():
            t = s.get(Tenant, utility.tenant_id)
            assert t is not None
            runs = rem.run_schedule(
                s, t, now=now, today=day, key=key, public_url="https://x.example"
            )
            for r in runs:
                s.expunge(r)
            return runs

    with runtime.sessions() as s, s.begin():
        assert rem.set_schedule(s, utility.tenant_id, [3, -7, 0], now=now) == [-7, 0, 3]
    assert run_on(DUE - timedelta(days=8)) == []  # no step reached yet
    (before,) = run_on(DUE - timedelta(days=7))
    assert (before.step_days, before.queued) == (-7, 4)
    assert run_on(DUE - timedelta(days=5)) == []  # same step, again: nothing
    (on_due,) = run_on(DUE)
    assert (on_due.step_days, on_due.queued) == (0, 4)
    assert run_on(DUE) == []  # cron ran twice that day
    (after,) = run_on(DUE + timedelta(days=40))  # a missed week: only the latest step
    assert (after.step_days, after.queued) == (3, 4)
    assert run_on(DUE + timedelta(days=41)) == []
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).where(Message.kind == "dues_reminder")) == 12
        # One live link per bill, reused by every step.
        assert s.scalar(select(func.count()).select_from(PaymentLink)) == 4


def test_reminders_from_the_cli(runtime, database_url, utility) -> None:
    env = {"METERLINE_DATABASE_URL": database_url, "METERLINE_SECRET_KEY": "test-secret-key"}
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    missing = runner.invoke(cli_app, ["reminders", "run", "--tenant", "aligarh"], env=env)
    assert missing.exit_code == 1 and "no reminder schedule" in missing.output
    assert (
        json.loads(run("reminders", "preview", "--tenant", "aligarh", "--min-amount", "1000"))[
            "count"
        ]
        == 2
    )
    assert json.loads(run("reminders", "schedule", "--tenant", "aligarh", "--steps=-7,0,3")) == {
        "steps": [-7, 0, 3]
    }
    first = json.loads(run("reminders", "run", "--tenant", "aligarh"))
    assert [r["queued"] for r in first["runs"]] == [4]
    assert json.loads(run("reminders", "run", "--tenant", "aligarh")) == {"runs": []}
    out = run("reminders", "report", "--tenant", "aligarh", "--csv")
    assert out.splitlines()[0].startswith("run,reminders,sent,delivered,read,failed")
    link = json.loads(
        run("payments", "link", "--tenant", "aligarh", "--bill", str(utility.bills["AL-002"]))
    )
    assert link["url"].startswith("http://127.0.0.1:8000/p/") and link["amount_minor"] == 800_00
    bad = runner.invoke(
        cli_app, ["payments", "link", "--tenant", "aligarh", "--bill", "999"], env=env
    )
    assert bad.exit_code == 1 and "no bill 999" in bad.output


def test_the_console_page_previews_and_sends(client, runtime, utility) -> None:
    token = client.get("/console/login").text.split('name="csrf" value="')[1].split('"')[0]
    login = client.post(
        "/console/login",
        data={"csrf": token, "username": "asha", "password": "asha-password"},
        follow_redirects=False,
    )
    assert login.status_code == 303
    page = client.get("/console/reminders?preview=1&min_amount=1,000")
    assert page.status_code == 200
    assert '<dd data-field="count">2</dd>' in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    sent = client.post(
        "/console/reminders",
        data={"csrf": csrf, "min_amount": "1,000", "area_id": "", "max_amount": "", "min_days": ""},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and "sent=" in sent.headers["location"]
    listing = client.get(sent.headers["location"])
    assert "data-run=" in listing.text
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).where(Message.kind == "dues_reminder")) == 2
    forged = client.post("/console/reminders", data={"csrf": "nope"})
    assert forged.status_code == 403
    assert client.get("/console/reminders/report.csv?by=day").status_code == 200
    bad = client.get("/console/reminders?preview=1&min_amount=lots")
    assert bad.status_code == 422


def test_a_bill_reminded_twice_in_a_day_counts_its_payment_once_that_day(
    client, runtime, utility
) -> None:
    for _ in range(2):  # e.g. a manual run and a schedule step the same day
        resp = client.post("/api/v1/reminders/runs", json={}, headers=auth(utility.operator_key))
        assert resp.status_code == 201, resp.text
    with runtime.sessions() as s, s.begin():
        code = s.scalars(
            select(PaymentLink.code).where(PaymentLink.bill_id == utility.bills["AL-001"])
        ).one()
        row = pay.default_gateway(s, utility.tenant_id)
        assert row is not None
        signed = pay.gateway_for(row).signed_result(code, 1250_50, "INR", approve=True)  # type: ignore[attr-defined]
        key = pay.link_key(runtime.settings.secret_key.get_secret_value())
        pay.handle_webhook(s, row.id, signed, now=datetime(2026, 11, 29, 7, 0, tzinfo=UTC), key=key)
    day = client.get("/api/v1/reminders/report?by=day", headers=auth(utility.viewer_key)).json()
    ((today),) = day["rows"]
    assert (today["reminders"], today["paid"], today["paid_amount_minor"]) == (8, 1, 1250_50)
    runs = client.get("/api/v1/reminders/report", headers=auth(utility.viewer_key)).json()
    assert [r["paid"] for r in runs["rows"]] == [1, 1]  # each run reminded the bill that was paid
