"""WhatsApp end to end: notify, the dispatcher, the Graph API stand-in, and Meta's signed
webhooks arriving over HTTP at the served app's callback route.

Real databases (SQLite and PostgreSQL), real HTTP both ways.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from meterline.domain.enums import Medium, MessageStatus, Reachability
from meterline.runtime import Runtime
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.notify import Notification, notify
from meterline.store.models import ChannelAccount, Consumer, ContactPoint, Message, MessageEvent
from meterline.store.models import Tenant as TenantRow
from meterline.web.app import create_app
from tests.support.browser import serving
from tests.support.whatsapp_standin import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    Template,
    WhatsAppStandin,
    envelope,
    status_item,
)

PHONE = "+919812345678"
OTHER_TENANTS_PHONE = PHONE  # the same number at another utility
NOON_IST = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
VERIFY = "verify-me-please"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def standin() -> Iterator[WhatsAppStandin]:
    templates = [
        Template("power_cut_notice", "en_US"),  # a fixed text: no parameters
        Template("dues_reminder_v2", "en_US", body_params=3, url_button=True),
    ]
    with WhatsAppStandin(templates=templates) as wa:
        yield wa


@pytest.fixture
def wa(standin: WhatsAppStandin) -> WhatsAppStandin:
    standin.reset()
    return standin


@pytest.fixture
def app_url(runtime: Runtime) -> Iterator[str]:
    with serving(create_app(runtime)) as url:
        yield url


def wa_config(wa: WhatsAppStandin) -> dict[str, Any]:
    return {
        "graph_url": wa.graph_url,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "country": "IN",
        "currency": "INR",
        "timezone": "Asia/Kolkata",
        "languages": {"en": "en_US"},
        "templates": {
            "custom": {"name": "power_cut_notice"},
            "dues_reminder": {
                "name": "dues_reminder_v2",
                "body": ["account", "amount", "due_date"],
                "url_button": {"variable": "pay_url", "strip_prefix": "https://pay.example/p/"},
            },
        },
    }


@pytest.fixture
def account_id(runtime: Runtime, tenant: Any, wa: WhatsAppStandin, app_url: str) -> int:
    with runtime.sessions() as s, s.begin():
        account = add_channel_account(
            s, tenant.id, name="whatsapp", type_name="whatsapp_cloud", config=wa_config(wa)
        )
        assert account.medium is Medium.whatsapp
        account_id = account.id
    wa.callback_url = f"{app_url}/api/v1/callbacks/{account_id}"
    return account_id


@pytest.fixture
def consumer_id(runtime: Runtime, tenant: Any) -> int:
    with runtime.sessions() as s, s.begin():
        c = Consumer(tenant_id=tenant.id, name="Ramesh Kumar", preferred_language="en")
        s.add(c)
        s.flush()
        s.add(
            ContactPoint(
                tenant_id=tenant.id, consumer_id=c.id, kind="phone", value=PHONE, is_primary=True
            )
        )
        return c.id


def queue(runtime: Runtime, tenant: Any, n: Notification) -> int:
    with runtime.sessions() as s, s.begin():
        t = s.get(TenantRow, tenant.id)
        assert t is not None
        return notify(s, t, n, now=NOON_IST).message_id


def notice(key: str, consumer_id: int) -> Notification:
    return Notification(
        kind="custom",
        data={"text": "Power cut tomorrow 10-12 in your area."},
        idempotency_key=key,
        consumer_id=consumer_id,
        medium=Medium.whatsapp,
    )


def dispatch(runtime: Runtime) -> None:
    drain(
        Dispatcher(
            runtime.sessions,
            settings=DispatchSettings(claim_seconds=30),
            clock=Clock(NOON_IST),
            rng=random.Random(7),
            worker="w1",
        )
    )


def row(runtime: Runtime, message_id: int) -> Message:
    with runtime.sessions() as s:
        m = s.get(Message, message_id)
        assert m is not None
        return m


def contact(runtime: Runtime, consumer_id: int) -> ContactPoint:
    with runtime.sessions() as s:
        point = s.scalars(select(ContactPoint).where(ContactPoint.consumer_id == consumer_id)).one()
        s.expunge(point)
        return point


def history(runtime: Runtime, message_id: int) -> list[tuple[str, str | None]]:
    with runtime.sessions() as s:
        return [
            (e.event, e.status)
            for e in s.scalars(
                select(MessageEvent)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.id)
            )
        ]


def test_a_template_goes_out_and_signed_statuses_come_back_over_http(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    message_id = queue(runtime, tenant, notice("notice-1", consumer_id))
    dispatch(runtime)
    sent = row(runtime, message_id)
    assert sent.status is MessageStatus.sent
    assert sent.provider_message_id and sent.provider_message_id.startswith("wamid.")
    assert wa.sends() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": PHONE[1:],
            "type": "template",
            "template": {"name": "power_cut_notice", "language": {"code": "en_US"}},
        }
    ]
    # Read before delivered, and every status twice: the message ends read, once.
    answers = wa.flush_webhooks(order="reversed", duplicate=True)
    assert [a.status_code for a in answers] == [200] * 6
    assert [a.json()["applied"] for a in answers] == [1, 0, 0, 0, 0, 0]
    done = row(runtime, message_id)
    assert done.status is MessageStatus.read and done.read_at is not None
    assert [e for e in history(runtime, message_id) if e[0].startswith("status")] == [
        ("status", "read"),
        *[("status_ignored", s) for s in ("read", "delivered", "delivered", "sent", "sent")],
    ]


def test_in_order_statuses_move_the_message_forward(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    message_id = queue(runtime, tenant, notice("notice-2", consumer_id))
    dispatch(runtime)
    answers = wa.flush_webhooks()
    # "sent" is already what the accepted send recorded.
    assert [a.json()["applied"] for a in answers] == [0, 1, 1]
    done = row(runtime, message_id)
    assert done.status is MessageStatus.read
    assert done.delivered_at is not None and done.read_at is not None


def test_not_on_whatsapp_fails_the_message_from_the_webhook(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    wa.not_on_whatsapp.add(PHONE[1:])
    message_id = queue(runtime, tenant, notice("notice-3", consumer_id))
    dispatch(runtime)
    assert row(runtime, message_id).status is MessageStatus.sent  # Meta accepts it first
    [answer] = wa.flush_webhooks()
    assert answer.status_code == 200
    failed = row(runtime, message_id)
    assert failed.status is MessageStatus.failed
    assert failed.error_code == "131026"
    assert "Message undeliverable" in (failed.error_text or "")


def test_a_forged_or_tampered_webhook_is_refused_and_changes_nothing(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    message_id = queue(runtime, tenant, notice("notice-4", consumer_id))
    dispatch(runtime)
    wamid = row(runtime, message_id).provider_message_id
    assert wamid
    payload = envelope({"statuses": [status_item(wamid, "delivered", PHONE[1:], 1773124200)]})
    for kwargs in ({"signature": "forged"}, {"signature": None}, {"tamper": True}):
        answer = wa.post(payload, **kwargs)
        assert answer.status_code == 403, kwargs
        assert "X-Hub-Signature-256" in answer.json()["detail"]
    inbound = wa.post_inbound(PHONE, signature="forged")
    assert inbound.status_code == 403
    assert row(runtime, message_id).status is MessageStatus.sent
    assert [e for e in history(runtime, message_id) if e[0].startswith("status")] == []
    point = contact(runtime, consumer_id)
    assert point.details is None and point.whatsapp is Reachability.unknown


def test_a_customers_message_is_recorded_on_their_contact_and_replays_change_nothing(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    at = 1773124200  # 2026-03-10 06:30 UTC
    answer = wa.post_inbound(PHONE, "Hello", at=at)
    assert answer.status_code == 200
    point = contact(runtime, consumer_id)
    assert point.whatsapp is Reachability.yes
    assert point.details == {"wa_last_inbound_at": "2026-03-10T06:30:00+00:00"}
    # The same webhook again, then an older message arriving late: the latest time stays.
    assert wa.post_inbound(PHONE, "Hello", at=at).status_code == 200
    assert wa.post_inbound(PHONE, "Earlier", at=at - 600).status_code == 200
    assert contact(runtime, consumer_id).details == {
        "wa_last_inbound_at": "2026-03-10T06:30:00+00:00"
    }
    assert wa.post_inbound(PHONE, "Later", at=at + 60).status_code == 200
    assert contact(runtime, consumer_id).details == {
        "wa_last_inbound_at": "2026-03-10T06:31:00+00:00"
    }


def test_a_customers_message_reaches_only_this_tenants_contact(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    from meterline.services.tenants import create_tenant

    with runtime.sessions() as s, s.begin():
        other = create_tenant(
            s, slug="dhaka", name="Dhaka Water", country="BD", currency="BDT", timezone="Asia/Dhaka"
        )
        c = Consumer(tenant_id=other.id, name="Other", preferred_language="bn")
        s.add(c)
        s.flush()
        s.add(ContactPoint(tenant_id=other.id, consumer_id=c.id, kind="phone", value=PHONE))
        other_consumer = c.id
    assert wa.post_inbound(PHONE, at=1773124200).status_code == 200
    assert contact(runtime, consumer_id).whatsapp is Reachability.yes
    untouched = contact(runtime, other_consumer)
    assert untouched.details is None and untouched.whatsapp is Reachability.unknown


def test_the_subscription_handshake_answers_the_challenge(
    wa: WhatsAppStandin, account_id: int, app_url: str
) -> None:
    url = f"{app_url}/api/v1/callbacks/{account_id}"
    ok = httpx.get(
        url,
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = httpx.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403 and "1" not in wrong.text.replace("403", "")
    assert httpx.get(f"{app_url}/api/v1/callbacks/999999", params={}).status_code == 404


def test_a_channel_without_a_handshake_refuses_it(
    runtime: Runtime, tenant: Any, app_url: str
) -> None:
    with runtime.sessions() as s, s.begin():
        sandbox = add_channel_account(s, tenant.id, name="sb", type_name="sandbox", config={})
        sandbox_id = sandbox.id
    answer = httpx.get(
        f"{app_url}/api/v1/callbacks/{sandbox_id}",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
    )
    assert answer.status_code == 403


def test_an_expired_token_pauses_the_account_and_keeps_the_message(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    wa.token_expired = True
    message_id = queue(runtime, tenant, notice("notice-5", consumer_id))
    dispatch(runtime)
    assert row(runtime, message_id).status is MessageStatus.queued
    with runtime.sessions() as s:
        account = s.get(ChannelAccount, account_id)
        assert account is not None
        assert "access token" in (account.disabled_reason or "")
        assert ACCESS_TOKEN not in (account.disabled_reason or "")


# -- with the message's data and the contact's details (filled by the dispatcher) -----------


def dues(key: str, consumer_id: int) -> Notification:
    return Notification(
        kind="dues_reminder",
        data={
            "account": "ALG-1001",
            "amount": 125050,
            "due_date": "2026-03-15",
            "pay_url": "https://pay.example/p/Xy7Qk2",
        },
        idempotency_key=key,
        consumer_id=consumer_id,
        medium=Medium.whatsapp,
    )


def test_a_customers_message_opens_the_window_so_the_next_reminder_is_free_text(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    first = queue(runtime, tenant, dues("dues-1", consumer_id))
    dispatch(runtime)
    assert row(runtime, first).status is MessageStatus.sent
    template = wa.sends()[0]
    assert template["type"] == "template"
    assert template["template"]["components"][0]["parameters"][1] == {
        "type": "text",
        "text": "₹1,250.50",
    }
    assert template["template"]["components"][1]["parameters"] == [
        {"type": "text", "text": "Xy7Qk2"}
    ]
    now = datetime.now(UTC)
    assert wa.post_inbound(PHONE, "What is my due?", at=int(now.timestamp())).status_code == 200
    second = queue(runtime, tenant, dues("dues-2", consumer_id))
    dispatch(runtime)
    assert row(runtime, second).status is MessageStatus.sent
    text = wa.sends()[1]
    assert text["type"] == "text"
    assert text["text"]["body"] == row(runtime, second).body
    # Long after the window: a template again.
    with runtime.sessions() as s, s.begin():
        point = s.scalars(select(ContactPoint).where(ContactPoint.consumer_id == consumer_id)).one()
        point.details = {"wa_last_inbound_at": (now - timedelta(hours=30)).isoformat()}
    third = queue(runtime, tenant, dues("dues-3", consumer_id))
    dispatch(runtime)
    assert row(runtime, third).status is MessageStatus.sent
    assert wa.sends()[2]["type"] == "template"


def test_inbound_on_a_channel_that_is_not_whatsapp_records_nothing(
    runtime: Runtime, tenant: Any, consumer_id: int
) -> None:
    from meterline.channels.base import InboundMessage
    from meterline.services.inbound import apply_inbound

    with runtime.sessions() as s, s.begin():
        sms = add_channel_account(s, tenant.id, name="sb", type_name="sandbox", config={})
        report = apply_inbound(s, sms, [InboundMessage(PHONE, "m1", NOON_IST)], NOON_IST)
    assert report.applied == 0
    assert contact(runtime, consumer_id).details is None


def test_an_inbound_from_an_unknown_number_is_listed(
    runtime: Runtime, tenant: Any, wa: WhatsAppStandin, account_id: int, consumer_id: int
) -> None:
    from meterline.channels.base import InboundMessage
    from meterline.services.inbound import apply_inbound

    with runtime.sessions() as s, s.begin():
        account = s.get(ChannelAccount, account_id)
        assert account is not None
        report = apply_inbound(
            s,
            account,
            [InboundMessage("+919800000000", "m1", None), InboundMessage(PHONE, "m2", None)],
            NOON_IST,
        )
    assert report.unknown == ["+919800000000"] and report.applied == 1
    with runtime.sessions() as s, s.begin():
        account = s.get(ChannelAccount, account_id)
        assert account is not None
        again = apply_inbound(s, account, [InboundMessage(PHONE, "m2", None)], NOON_IST)
    assert (again.applied, again.unchanged) == (0, 1)
    # No time from the provider: the time it reached us.
    assert contact(runtime, consumer_id).details == {"wa_last_inbound_at": NOON_IST.isoformat()}
