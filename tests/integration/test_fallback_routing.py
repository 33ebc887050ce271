"""Fallback routing through the real dispatcher: a sandbox account standing in for WhatsApp,
the sms_http adapter over real HTTP to the gateway stand-in, SQLite and PostgreSQL.

A number that is not on WhatsApp gets one SMS at once and is remembered; the next reminder
to it goes straight to SMS; a WhatsApp number gets one WhatsApp and no SMS; a late
"not on WhatsApp" status and a missing delivery status both fall back; credit is held and
debited only for the SMS really sent; every attempt is on the message's page.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from meterline.channels.base import CallbackRequest
from meterline.cli import app as cli_app
from meterline.domain.enums import Billing, CreditState, Medium, MessageStatus, Role, Service
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings
from meterline.services.notify import Notification, notify, notify_many
from meterline.services.route_preview import preview_mix
from meterline.services.security import create_api_key
from meterline.services.status_callbacks import handle_callback
from meterline.store.models import (
    Account,
    ChannelAccount,
    Consumer,
    ContactPoint,
    Message,
    Tenant,
)
from meterline.web.app import create_app
from tests.support.gateway_standin import GatewayStandin

NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)  # 12:00 in Kolkata
PRICE = 25
TOPUP = 100_000
SECRET = "wa-callback-secret"

NOT_ON_WA = "+919876500001"
ON_WA = "+919876500002"
LATE_FAIL = "+919876500003"
SILENT = "+919876500004"
REJECTED = "+919876500005"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def standin() -> Iterator[GatewayStandin]:
    with GatewayStandin() as gw:
        yield gw


class World:
    def __init__(self, runtime: Runtime, tenant: Tenant, standin: GatewayStandin) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.standin = standin
        self.clock = Clock(NOON_IST)
        self.consumers: dict[str, int] = {}
        self.accounts: dict[str, int] = {}
        with runtime.sessions() as s, s.begin():
            self.wa = add_channel_account(
                s,
                tenant.id,
                name="whatsapp-sandbox",
                type_name="sandbox",
                medium=Medium.whatsapp,
                config={
                    "unreachable": [NOT_ON_WA],
                    "accept_only": [LATE_FAIL, SILENT],
                    "reject": [REJECTED],
                    "callback_secret": SECRET,
                },
            ).id
            self.sms = add_channel_account(
                s,
                tenant.id,
                name="gateway",
                type_name="sms_http",
                config={"url": standin.sms_url, "body_format": "json", "timeout_s": 2.0},
            ).id
            credit.set_pricing(s, tenant.id, sms_price_minor=PRICE)
            credit.top_up(s, tenant.id, TOPUP, by="test")
            t = s.get(Tenant, tenant.id)
            assert t is not None
            _, self.admin_key = create_api_key(s, t, "admin", Role.admin)
            _, self.viewer_key = create_api_key(s, t, "viewer", Role.viewer)
            for i, number in enumerate([NOT_ON_WA, ON_WA, LATE_FAIL, SILENT, REJECTED]):
                c = Consumer(tenant_id=tenant.id, name=f"Consumer {i}", preferred_language="en")
                s.add(c)
                s.flush()
                s.add(
                    ContactPoint(
                        tenant_id=tenant.id,
                        consumer_id=c.id,
                        kind="phone",
                        value=number,
                        is_primary=True,
                        details={"last_inbound_at": "2026-03-01T10:00:00+00:00"},
                    )
                )
                a = Account(
                    tenant_id=tenant.id,
                    consumer_id=c.id,
                    number=f"AL-{i}",
                    service=Service.electricity,
                    billing=Billing.postpaid,
                )
                s.add(a)
                s.flush()
                self.consumers[number], self.accounts[number] = c.id, a.id

    def reminder(self, number: str, key: str, **extra: Any) -> Notification:
        return Notification(
            kind="dues_reminder",
            data={"account": "AL-1", "amount": 45000, "due_date": "2026-03-01"},
            idempotency_key=key,
            consumer_id=self.consumers[number],
            account_id=self.accounts[number],
            **extra,
        )

    def notify(self, number: str, key: str) -> int:
        with self.runtime.sessions() as s, s.begin():
            t = s.get(Tenant, self.tenant.id)
            assert t is not None
            return notify(s, t, self.reminder(number, key), now=self.clock.now).message_id

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self.runtime.sessions,
            settings=DispatchSettings(claim_seconds=30),
            clock=self.clock,
            rng=random.Random(3),
            worker="w1",
        )

    def drain(self) -> None:
        d = self.dispatcher()
        import asyncio

        async def rounds() -> None:
            try:
                for _ in range(10):
                    report = await d.run_once()
                    if report.claimed == 0 and report.fell_back == 0:
                        return
            finally:
                await d.aclose()

        asyncio.run(rounds())

    def message(self, message_id: int) -> Message:
        with self.runtime.sessions() as s:
            m = s.get(Message, message_id)
            assert m is not None
            return m

    def whatsapp_of(self, number: str) -> str:
        with self.runtime.sessions() as s:
            return str(s.scalar(select(ContactPoint.whatsapp).where(ContactPoint.value == number)))

    def sms_to(self, number: str) -> list[Any]:
        return [r for r in self.standin.requests("sms") if r.fields.get("to") == number]

    def totals(self) -> credit.CreditTotals:
        with self.runtime.sessions() as s:
            return credit.totals(s, self.tenant.id)


@pytest.fixture
def world(runtime: Runtime, tenant: Tenant, standin: GatewayStandin) -> World:
    return World(runtime, tenant, standin)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def page(client: TestClient, world: World, message_id: int) -> dict[str, Any]:
    resp = client.get(f"/api/v1/messages/{message_id}", headers={"X-API-Key": world.viewer_key})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def callback(client: TestClient, world: World, items: list[dict[str, Any]]) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/callbacks/{world.wa}",
        content=json.dumps(items),
        headers={"X-Meterline-Secret": SECRET, "content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_number_not_on_whatsapp_gets_one_sms_and_the_next_reminder_goes_straight_to_sms(
    world: World, client: TestClient
) -> None:
    mid = world.notify(NOT_ON_WA, "dues:1:mar")
    queued = world.message(mid)
    # WhatsApp first; nothing is held for it (only SMS costs credit).
    assert (queued.medium, queued.channel_account_id, queued.cost_minor) == (
        Medium.whatsapp,
        world.wa,
        0,
    )
    assert queued.credit_state == CreditState.free and world.totals().held_minor == 0
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium, m.channel_account_id, m.route_step) == (
        MessageStatus.sent,
        Medium.sms,
        world.sms,
        1,
    )
    # One SMS, with the reference of the same message; debited, nothing left held.
    sent = world.sms_to(NOT_ON_WA)
    assert len(sent) == 1 and sent[0].fields["reference"] == f"ml-{world.tenant.id}-{mid}"
    assert "450.00" in sent[0].fields["text"]
    assert m.cost_minor == PRICE * m.segments and m.credit_state == CreditState.debited
    assert world.totals() == credit.CreditTotals(TOPUP - m.cost_minor, 0, 0)
    assert world.whatsapp_of(NOT_ON_WA) == "no"
    # Every attempt is on the message's page.
    body = page(client, world, mid)
    events = [(e["event"], e["status"], e["channel_account_id"]) for e in body["events"]]
    assert events == [
        ("attempt", "queued", world.wa),
        ("unreachable", None, world.wa),
        ("fallback", "queued", world.sms),
        ("attempt", "sent", world.sms),
    ]
    assert body["events"][0]["error_code"] == "unreachable"
    assert "whatsapp -> sms (send)" in body["events"][2]["error_text"]
    assert [s["medium"] for s in body["route"]["steps"]] == ["whatsapp", "sms"]

    # The next reminder skips WhatsApp up front and says why.
    second = world.notify(NOT_ON_WA, "dues:1:apr")
    n = world.message(second)
    assert (n.medium, n.channel_account_id) == (Medium.sms, world.sms)
    assert n.credit_state == CreditState.held and world.totals().held_minor == n.cost_minor
    assert n.route is not None and n.route["skipped"] == [
        {"medium": "whatsapp", "reason": "unreachable", "detail": "not on WhatsApp"}
    ]
    world.drain()
    assert len(world.sms_to(NOT_ON_WA)) == 2
    assert [e["event"] for e in page(client, world, second)["events"]] == ["attempt"]


def test_a_whatsapp_number_gets_one_whatsapp_and_no_sms(world: World, client: TestClient) -> None:
    mid = world.notify(ON_WA, "dues:2:mar")
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium, m.route_step) == (MessageStatus.delivered, Medium.whatsapp, 0)
    assert world.sms_to(ON_WA) == [] and world.standin.requests("sms") == []
    assert world.whatsapp_of(ON_WA) == "yes"
    assert world.totals() == credit.CreditTotals(TOPUP, 0, 0)  # nothing held or spent
    assert [e["event"] for e in page(client, world, mid)["events"]] == ["attempt"]


def test_a_late_not_on_whatsapp_status_falls_back_once_and_late_reports_change_nothing(
    world: World, client: TestClient
) -> None:
    mid = world.notify(LATE_FAIL, "dues:3:mar")
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium, m.provider_message_id) == (
        MessageStatus.sent,
        Medium.whatsapp,
        f"sandbox-{mid}",
    )
    assert m.fallback_at == NOON_IST + timedelta(minutes=15)
    failed = {"id": f"sandbox-{mid}", "status": "failed", "error_code": "131026"}
    failed["error_text"] = "Message undeliverable"
    # Applied at the test's clock (the HTTP route reads the wall clock, and quiet hours
    # would hold the SMS until morning); the later reports go over HTTP.
    with world.runtime.sessions() as s, s.begin():
        account = s.get(ChannelAccount, world.wa)
        assert account is not None
        request = CallbackRequest(
            "POST",
            f"http://test/api/v1/callbacks/{world.wa}",
            {"x-meterline-secret": SECRET, "content-type": "application/json"},
            {},
            json.dumps([failed]).encode(),
        )
        report = handle_callback(s, account, request, world.clock.now)
    assert (report.applied, report.ignored, report.unknown) == (1, 0, [])
    m = world.message(mid)
    assert (m.status, m.medium, m.due_at, m.fallback_at) == (
        MessageStatus.queued,
        Medium.sms,
        NOON_IST,
        None,
    )
    assert m.credit_state == CreditState.held and world.whatsapp_of(LATE_FAIL) == "no"
    world.drain()
    assert len(world.sms_to(LATE_FAIL)) == 1
    # The same failure again, and a late "delivered" about the WhatsApp step: history only.
    late = [failed, {"id": f"sandbox-{mid}", "status": "delivered"}]
    assert callback(client, world, late) == {"applied": 0, "ignored": 2, "unknown": []}
    m = world.message(mid)
    assert (m.status, m.medium, m.route_step) == (MessageStatus.sent, Medium.sms, 1)
    world.drain()
    assert len(world.sms_to(LATE_FAIL)) == 1  # never a second SMS
    events = [(e["event"], e["status"]) for e in page(client, world, mid)["events"]]
    assert events == [
        ("attempt", "sent"),
        ("status", "failed"),
        ("unreachable", None),
        ("fallback", "queued"),
        ("attempt", "sent"),
        ("status_earlier_step", "failed"),
        ("status_earlier_step", "delivered"),
    ]
    # The late "delivered" proved the number is on WhatsApp after all.
    assert world.whatsapp_of(LATE_FAIL) == "yes"
    assert world.totals() == credit.CreditTotals(TOPUP - m.cost_minor, 0, 0)


def test_no_delivery_status_in_time_falls_back_to_sms(world: World, client: TestClient) -> None:
    mid = world.notify(SILENT, "dues:4:mar")
    world.drain()
    assert world.message(mid).status == MessageStatus.sent
    world.clock.now = NOON_IST + timedelta(minutes=14, seconds=59)
    world.drain()
    assert world.message(mid).medium == Medium.whatsapp and world.sms_to(SILENT) == []
    world.clock.now = NOON_IST + timedelta(minutes=15)
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium, m.route_step) == (MessageStatus.sent, Medium.sms, 1)
    assert len(world.sms_to(SILENT)) == 1
    fell = [e for e in page(client, world, mid)["events"] if e["event"] == "fallback"]
    assert len(fell) == 1 and fell[0]["error_code"] == "no_status"
    assert "(timeout)" in fell[0]["error_text"]
    # Timeouts say nothing about WhatsApp reachability.
    assert world.whatsapp_of(SILENT) == "unknown"
    # Nothing more happens however long we wait: SMS is the last step.
    world.clock.now = NOON_IST + timedelta(days=2)
    world.drain()
    assert len(world.sms_to(SILENT)) == 1


def test_a_give_up_on_whatsapp_falls_back_to_sms(world: World) -> None:
    mid = world.notify(REJECTED, "dues:5:mar")
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium) == (MessageStatus.sent, Medium.sms)
    assert len(world.sms_to(REJECTED)) == 1
    # A give-up is not "unreachable": WhatsApp stays worth trying next time.
    assert world.whatsapp_of(REJECTED) == "unknown"


def test_no_credit_for_the_fallback_sms_fails_the_message_with_the_reason(
    world: World, runtime: Runtime
) -> None:
    with runtime.sessions() as s, s.begin():
        credit.set_pricing(s, world.tenant.id, sms_price_minor=TOPUP + 1)
    mid = world.notify(NOT_ON_WA, "dues:6:mar")  # WhatsApp first: free, so it is queued
    world.drain()
    m = world.message(mid)
    assert m.status == MessageStatus.failed and m.error_code == "no_credit"
    assert m.error_text and "not enough messaging credit" in m.error_text
    assert world.standin.requests("sms") == []
    assert world.totals() == credit.CreditTotals(TOPUP, 0, 0)


def test_a_failed_last_step_fails_and_releases_its_credit(world: World, runtime: Runtime) -> None:
    world.standin.behave(NOT_ON_WA, status=400, code="invalid_number")
    mid = world.notify(NOT_ON_WA, "dues:7:mar")
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium, m.credit_state) == (
        MessageStatus.failed,
        Medium.sms,
        CreditState.refunded,
    )
    assert world.totals() == credit.CreditTotals(TOPUP, 0, 0)


def test_the_adapter_gets_the_message_data_and_the_contact_details(world: World) -> None:
    seen: list[Any] = []
    d = world.dispatcher()
    original = d._send_all

    async def spy(channel, account_id, claimed, details=None):  # type: ignore[no-untyped-def]
        seen.append((account_id, [c.data for c in claimed], details))
        return await original(channel, account_id, claimed, details)

    d._send_all = spy  # type: ignore[method-assign]
    mid = world.notify(ON_WA, "dues:8:mar")
    import asyncio

    async def once() -> None:
        try:
            await d.run_once()
        finally:
            await d.aclose()

    asyncio.run(once())
    assert seen == [
        (
            world.wa,
            [{"account": "AL-1", "amount": 45000, "due_date": "2026-03-01"}],
            {mid: {"last_inbound_at": "2026-03-01T10:00:00+00:00"}},
        )
    ]


def test_bulk_reminders_route_each_recipient_and_the_preview_tells_the_mix(
    world: World, runtime: Runtime
) -> None:
    with runtime.sessions() as s, s.begin():
        s.execute(
            ContactPoint.__table__.update()
            .where(ContactPoint.value == NOT_ON_WA)
            .values(whatsapp="no")
        )
    numbers = [NOT_ON_WA, ON_WA, LATE_FAIL]
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, world.tenant.id)
        assert t is not None
        mix = preview_mix(
            s, t, [world.reminder(n, f"bulk:{n}") for n in numbers], now=world.clock.now
        )
    assert mix.count == 3 and mix.by_medium == {"sms": 1, "whatsapp": 2}
    assert mix.skipped_unreachable == 1 and mix.may_fall_back == 2
    assert mix.cost_minor == PRICE * mix.segments and mix.max_cost_minor == 3 * mix.cost_minor
    with runtime.sessions() as s, s.begin():
        t = s.get(Tenant, world.tenant.id)
        assert t is not None
        result = notify_many(
            s, t, [world.reminder(n, f"bulk:{n}") for n in numbers], now=world.clock.now
        )
    assert result.queued == 3 and result.cost_minor == mix.cost_minor
    with runtime.sessions() as s:
        rows = {m.to_address: m for m in s.scalars(select(Message))}
    assert rows[NOT_ON_WA].medium == Medium.sms and rows[NOT_ON_WA].route is not None
    assert rows[ON_WA].medium == Medium.whatsapp
    assert [x["medium"] for x in rows[ON_WA].route["steps"]] == ["whatsapp", "sms"]
    world.drain()
    assert [len(world.sms_to(n)) for n in numbers] == [1, 0, 0]


def test_explicit_medium_still_sends_on_that_medium_alone(world: World) -> None:
    with world.runtime.sessions() as s, s.begin():
        t = s.get(Tenant, world.tenant.id)
        assert t is not None
        q = notify(
            s,
            t,
            world.reminder(ON_WA, "explicit", medium=Medium.sms),
            now=world.clock.now,
        )
    m = world.message(q.message_id)
    assert m.medium == Medium.sms and m.route is None


def test_routes_over_the_api(world: World, client: TestClient) -> None:
    admin = {"X-API-Key": world.admin_key}
    viewer = {"X-API-Key": world.viewer_key}
    routes = {r["kind"]: r for r in client.get("/api/v1/routes", headers=viewer).json()["routes"]}
    assert routes["dues_reminder"]["media"] == ["whatsapp", "sms"]
    assert routes["dues_reminder"]["default"] is True
    body = {"steps": ["sms"]}
    assert client.put("/api/v1/routes/dues_reminder", json=body, headers=viewer).status_code == 403
    bad = client.put("/api/v1/routes/dues_reminder", json={"steps": ["fax"]}, headers=admin)
    assert bad.status_code == 422 and "unknown medium 'fax'" in bad.json()["detail"]
    put = client.put(
        "/api/v1/routes/dues_reminder",
        json={"steps": [{"medium": "whatsapp", "fallback_after_seconds": 60}, "sms"]},
        headers=admin,
    )
    assert put.status_code == 200, put.text
    assert put.json()["steps"][0] == {"medium": "whatsapp", "fallback_after_seconds": 60}
    mid = world.notify(SILENT, "dues:api")
    world.drain()
    assert world.message(mid).fallback_at == NOON_IST + timedelta(seconds=60)
    client.put("/api/v1/routes/dues_reminder", json=body, headers=admin)
    assert world.message(world.notify(ON_WA, "dues:api2")).medium == Medium.sms
    reset = client.delete("/api/v1/routes/dues_reminder", headers=admin).json()
    assert reset["default"] is True and reset["media"] == ["whatsapp", "sms"]


def test_reachability_is_shown_per_contact(world: World, client: TestClient) -> None:
    world.notify(NOT_ON_WA, "dues:r")
    world.drain()
    cid = world.consumers[NOT_ON_WA]
    with world.runtime.sessions() as s, s.begin():
        s.add(
            ContactPoint(
                tenant_id=world.tenant.id,
                consumer_id=cid,
                kind="telegram",
                value="4242",
                details={"blocked_at": "2026-03-10T06:30:00+00:00"},
            )
        )
    body = client.get(
        f"/api/v1/consumers/{cid}/contacts", headers={"X-API-Key": world.viewer_key}
    ).json()
    reach = {c["value"]: c["reachability"] for c in body["contacts"]}
    assert reach == {
        NOT_ON_WA: {"sms": "unknown", "whatsapp": "no"},
        "4242": {"telegram": "no"},
    }


def test_route_cli(world: World, database_url: str) -> None:
    runner = CliRunner()
    env = {"METERLINE_DATABASE_URL": database_url}
    slug = world.tenant.slug
    result = runner.invoke(
        cli_app,
        ["route", "set", "tamper", "telegram,sms", "--tenant", slug, "--after", "telegram=120"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "tamper: telegram (after 120 s) -> sms"
    result = runner.invoke(cli_app, ["route", "list", "--tenant", slug], env=env)
    assert "dues_reminder: whatsapp (after 900 s) -> sms  [default]" in result.output
    assert "tamper: telegram (after 120 s) -> sms\n" in result.output
    bad = runner.invoke(cli_app, ["route", "set", "tamper", "sms,sms", "--tenant", slug], env=env)
    assert bad.exit_code == 1 and "sms is listed twice" in bad.output


def test_the_console_consumer_page_shows_reachability(world: World, client: TestClient) -> None:
    from tests.integration.test_console_http import add_operator, login

    world.notify(NOT_ON_WA, "dues:console")
    world.drain()
    cid = world.consumers[NOT_ON_WA]
    with world.runtime.sessions() as s, s.begin():
        s.add(
            ContactPoint(
                tenant_id=world.tenant.id,
                consumer_id=cid,
                kind="telegram",
                value="4242",
                details={"blocked_at": "2026-03-10T06:30:00+00:00"},
            )
        )
        s.add(
            ContactPoint(
                tenant_id=world.tenant.id,
                consumer_id=cid,
                kind="webpush",
                value="https://push.example/sub/1",
                details={"keys": {"p256dh": "x", "auth": "y"}},
            )
        )
    add_operator(world.runtime, world.tenant.slug, "ru-op", Role.viewer, "ru")
    assert login(client, "ru-op").status_code == 303
    html = client.get(f"/console/consumers/{cid}").text
    for expected in ("Доступность", "Заблокировал бота", "Подписка оформлена"):
        assert expected in html, expected
    assert 'class="reach reach-no"' in html
    mid = world.notify(LATE_FAIL, "dues:console-2")
    world.drain()
    world.clock.now = NOON_IST + timedelta(hours=1)
    world.drain()  # no status in 15 minutes: on to SMS
    html = client.get(f"/console/messages/{mid}").text
    for expected in ("Переход на следующий канал", "whatsapp-sandbox", "gateway", "no_status"):
        assert expected in html, expected


def test_a_delivered_status_stops_the_timeout_and_proves_whatsapp(
    world: World, client: TestClient
) -> None:
    mid = world.notify(SILENT, "dues:delivered")
    world.drain()
    assert world.message(mid).fallback_at is not None
    with world.runtime.sessions() as s, s.begin():
        account = s.get(ChannelAccount, world.wa)
        assert account is not None
        body = json.dumps({"id": f"sandbox-{mid}", "status": "delivered"}).encode()
        request = CallbackRequest(
            "POST", "http://test/cb", {"x-meterline-secret": SECRET}, {}, body
        )
        assert handle_callback(s, account, request, world.clock.now).applied == 1
    m = world.message(mid)
    assert (m.status, m.fallback_at) == (MessageStatus.delivered, None)
    assert world.whatsapp_of(SILENT) == "yes"
    world.clock.now = NOON_IST + timedelta(hours=1)
    world.drain()
    assert world.sms_to(SILENT) == [] and world.message(mid).medium == Medium.whatsapp
    # A forged callback changes nothing.
    forged = client.post(
        f"/api/v1/callbacks/{world.wa}",
        content=json.dumps({"id": f"sandbox-{mid}", "status": "failed"}),
        headers={"X-Meterline-Secret": "wrong", "content-type": "application/json"},
    )
    assert forged.status_code == 403 and world.message(mid).status == MessageStatus.delivered


def test_out_of_retries_on_whatsapp_falls_back_to_sms(world: World, runtime: Runtime) -> None:
    from meterline.domain.retry import RetryPolicy

    with runtime.sessions() as s, s.begin():
        account = s.get(ChannelAccount, world.wa)
        assert account is not None
        account.config = {**account.config, "flaky": [ON_WA]}
    mid = world.notify(ON_WA, "dues:flaky")
    d = Dispatcher(
        runtime.sessions,
        settings=DispatchSettings(claim_seconds=30, retry=RetryPolicy(max_attempts=2)),
        clock=world.clock,
        rng=random.Random(3),
        worker="w1",
    )
    import asyncio

    async def rounds() -> None:
        try:
            for _ in range(6):
                await d.run_once()
                world.clock.now += timedelta(seconds=10)
        finally:
            await d.aclose()

    asyncio.run(rounds())
    m = world.message(mid)
    assert (m.status, m.medium) == (MessageStatus.sent, Medium.sms)
    assert len(world.sms_to(ON_WA)) == 1
    assert world.whatsapp_of(ON_WA) == "unknown"  # busy is not "not on WhatsApp"


def alert(world: World, number: str, kind: str, key: str) -> int:
    data: dict[str, Any] = {"account": "AL-1", "at": "2026-03-10T06:30:00+00:00"}
    if kind == "low_balance":
        data.update(balance=5000, threshold=10000)
    if kind == "tamper":
        data.update(meter="MTR-1")
    with world.runtime.sessions() as s, s.begin():
        t = s.get(Tenant, world.tenant.id)
        assert t is not None
        n = Notification(
            kind=kind, data=data, idempotency_key=key, consumer_id=world.consumers[number]
        )
        return notify(s, t, n, now=world.clock.now).message_id


def test_a_gone_push_subscription_is_removed_and_the_alert_goes_by_sms(
    world: World, runtime: Runtime
) -> None:
    endpoint = "https://push.example/sub/gone"
    with runtime.sessions() as s, s.begin():
        add_channel_account(
            s,
            world.tenant.id,
            name="push-sandbox",
            type_name="sandbox",
            medium=Medium.webpush,
            config={"unreachable": [endpoint]},
        )
        s.add(
            ContactPoint(
                tenant_id=world.tenant.id,
                consumer_id=world.consumers[ON_WA],
                kind="webpush",
                value=endpoint,
                details={"keys": {"p256dh": "k", "auth": "a"}},
            )
        )
    mid = alert(world, ON_WA, "low_balance", "low:1")
    assert world.message(mid).medium == Medium.webpush
    world.drain()
    m = world.message(mid)
    assert (m.status, m.medium) == (MessageStatus.sent, Medium.sms)
    assert len(world.sms_to(ON_WA)) == 1
    with runtime.sessions() as s:
        left = s.scalars(select(ContactPoint).where(ContactPoint.kind == "webpush")).all()
    assert left == []
    # The next alert has no subscription to try: SMS at once.
    assert world.message(alert(world, ON_WA, "low_balance", "low:2")).medium == Medium.sms


def test_a_telegram_chat_that_blocked_the_bot_is_remembered(
    world: World, runtime: Runtime, client: TestClient
) -> None:
    with runtime.sessions() as s, s.begin():
        add_channel_account(
            s,
            world.tenant.id,
            name="telegram-sandbox",
            type_name="sandbox",
            medium=Medium.telegram,
            config={"unreachable": ["4242"]},
        )
        s.add(
            ContactPoint(
                tenant_id=world.tenant.id,
                consumer_id=world.consumers[ON_WA],
                kind="telegram",
                value="4242",
            )
        )
    put = client.put(
        "/api/v1/routes/tamper",
        json={"steps": ["telegram", "sms"]},
        headers={"X-API-Key": world.admin_key},
    )
    assert put.status_code == 200, put.text
    mid = alert(world, ON_WA, "tamper", "tamper:1")
    assert (world.message(mid).medium, world.message(mid).to_address) == (Medium.telegram, "4242")
    world.drain()
    assert world.message(mid).medium == Medium.sms and len(world.sms_to(ON_WA)) == 1
    with runtime.sessions() as s:
        chat = s.scalars(select(ContactPoint).where(ContactPoint.kind == "telegram")).one()
    assert chat.details is not None and chat.details["blocked_at"] == NOON_IST.isoformat()
    again = world.message(alert(world, ON_WA, "tamper", "tamper:2"))
    assert again.medium == Medium.sms
    assert again.route is not None and again.route["skipped"][0]["medium"] == "telegram"
