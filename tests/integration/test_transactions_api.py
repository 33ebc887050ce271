"""Scenario 5 over HTTP: book-keeping software posts a deposit, the member gets an SMS with
the new balance in Bengali; retries are safe, reused references and unknown accounts are
refused; plus the SMS estimate, send and credit endpoints."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterline.domain.enums import Billing, Role, Service, TenantKind
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.security import create_api_key
from meterline.services.tenants import create_tenant
from meterline.store.models import Account, Consumer, ContactPoint, LedgerEntry, Message
from meterline.web.app import create_app


@pytest.fixture
def coop(runtime: Runtime) -> dict[str, Any]:
    """A Bangladeshi savings cooperative with one member, a sandbox SMS channel and credit."""
    with runtime.sessions() as s, s.begin():
        t = create_tenant(
            s,
            slug="shapla",
            name="শাপলা সমবায়",
            country="BD",
            currency="BDT",
            timezone="Asia/Dhaka",
            kind=TenantKind.cooperative,
        )
        # No quiet hours: these tests send on the real clock, at any hour CI runs them.
        t.quiet_start = t.quiet_end = "00:00"
        c = Consumer(tenant_id=t.id, name="রহিম উদ্দিন", preferred_language="bn")
        s.add(c)
        s.flush()
        s.add(
            ContactPoint(
                tenant_id=t.id,
                consumer_id=c.id,
                kind="phone",
                value="+8801712345678",
                is_primary=True,
            )
        )
        s.add(
            Account(
                tenant_id=t.id,
                consumer_id=c.id,
                number="M-101",
                service=Service.savings,
                billing=Billing.prepaid,
                balance_minor=500_00,
            )
        )
        add_channel_account(s, t.id, name="sandbox", type_name="sandbox", config={})
        credit.set_pricing(s, t.id, sms_price_minor=35)
        credit.top_up(s, t.id, 100_00, by="test")
        _, operator_key = create_api_key(s, t, "books", Role.operator)
        _, viewer_key = create_api_key(s, t, "reader", Role.viewer)
        _, admin_key = create_api_key(s, t, "admin", Role.admin)
        other = create_tenant(
            s, slug="other", name="Other", country="BD", currency="BDT", timezone="Asia/Dhaka"
        )
        _, other_key = create_api_key(s, other, "x", Role.operator)
    return {"key": operator_key, "viewer": viewer_key, "admin": admin_key, "other": other_key}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as c:
        yield c


def post(client: TestClient, key: str, **body: Any) -> Any:
    payload = {"account": "M-101", "type": "deposit", "amount": "1500.00", "reference": "R-1"}
    payload.update(body)
    return client.post("/api/v1/transactions", json=payload, headers={"X-API-Key": key})


def test_a_deposit_is_recorded_and_confirmed_in_bengali(client, runtime, coop) -> None:
    resp = post(client, coop["key"])
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["balance_minor"], body["amount_minor"], body["created"]) == (
        2000_00,
        1500_00,
        True,
    )
    assert body["message"]["status"] == "queued" and body["message_error"] is None
    report = drain(Dispatcher(runtime.sessions, settings=DispatchSettings(), rng=random.Random(1)))
    assert report.delivered == 1
    with runtime.sessions() as s:
        m = s.get(Message, body["message"]["id"])
        assert m is not None
        assert m.status == "delivered" and m.to_address == "+8801712345678"
        assert m.encoding == "UCS-2" and m.language == "bn"
        assert "২,০০০.০০" in m.body and "৳" in m.body  # the new balance, Bengali digits
        assert m.cost_minor == 35 * m.segments


def test_a_retried_post_answers_the_same_and_records_nothing_new(client, runtime, coop) -> None:
    first = post(client, coop["key"]).json()
    again = post(client, coop["key"])
    assert again.status_code == 200
    body = again.json()
    assert body["created"] is False
    assert (body["ledger_entry_id"], body["balance_minor"]) == (first["ledger_entry_id"], 2000_00)
    assert body["message"]["id"] == first["message"]["id"]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        assert s.scalar(select(func.count()).select_from(Message)) == 1


def test_refusals_are_clear(client, runtime, coop) -> None:
    post(client, coop["key"])
    reused = post(client, coop["key"], amount="99.00")
    assert reused.status_code == 409
    assert "R-1" in reused.json()["detail"] and "cannot be reused" in reused.json()["detail"]
    unknown = post(client, coop["key"], account="M-999", reference="R-2")
    assert unknown.status_code == 404 and "M-999" in unknown.json()["detail"]
    cents = post(client, coop["key"], amount="1.234", reference="R-3")
    assert cents.status_code == 422 and "decimal places" in cents.json()["detail"]
    huge = post(client, coop["key"], amount="1e30", reference="R-7")
    assert huge.status_code == 422 and "too large" in huge.json()["detail"]
    assert post(client, coop["viewer"], reference="R-4").status_code == 403
    assert post(client, "ml_nope_nope", reference="R-5").status_code == 401
    # Another tenant's key never sees this tenant's accounts.
    assert post(client, coop["other"], reference="R-6").status_code == 404
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_withdrawals_and_payments_move_the_balance_and_say_so(client, runtime, coop) -> None:
    w = post(client, coop["key"], type="withdrawal", amount="200", reference="W-1").json()
    assert w["balance_minor"] == 300_00 and w["message"] is not None
    p = post(client, coop["key"], type="payment", amount="50.50", reference="P-1").json()
    assert p["balance_minor"] == 350_50


def test_without_credit_the_money_is_recorded_and_the_answer_says_why_no_sms(
    client, runtime, coop
) -> None:
    with runtime.sessions() as s, s.begin():
        tenant_id = s.scalar(select(Account.tenant_id).where(Account.number == "M-101"))
        credit.set_pricing(s, tenant_id, sms_price_minor=100_000)
    resp = post(client, coop["key"])
    assert resp.status_code == 201
    body = resp.json()
    assert body["balance_minor"] == 2000_00 and body["message"] is None
    assert "not enough messaging credit" in body["message_error"]


def test_sms_estimate_endpoint(client, coop) -> None:
    headers = {"X-API-Key": coop["viewer"]}
    resp = client.post(
        "/api/v1/sms/estimate", json={"text": "আপনার জমা গ্রহণ করা হয়েছে"}, headers=headers
    )
    body = resp.json()
    assert (body["encoding"], body["segments"], body["cost_minor"]) == ("UCS-2", 1, 35)
    assert body["cost"] == "0.35 BDT"
    long = client.post("/api/v1/sms/estimate", json={"text": "{" * 800}, headers=headers).json()
    assert long["encoding"] == "GSM-7" and long["segments"] == 11 and long["too_long"] is True
    assert long["error"] == "message needs 11 SMS parts; the maximum is 10"


def test_send_list_and_inspect_messages(client, runtime, coop) -> None:
    headers = {"X-API-Key": coop["key"]}
    resp = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"to": "01712345679", "text": "Meeting on Friday", "idempotency_key": "n1"},
    )
    assert resp.status_code == 201, resp.text
    sent = resp.json()
    assert sent["to"] == "+8801712345679" and sent["encoding"] == "GSM-7"
    twice = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"to": "01712345679", "text": "Meeting on Friday", "idempotency_key": "n1"},
    )
    assert twice.json()["id"] == sent["id"] and twice.json()["created"] is False
    bad = client.post("/api/v1/messages", headers=headers, json={"to": "12", "text": "x"})
    assert bad.status_code == 422 and "'12'" in bad.json()["detail"]
    drain(Dispatcher(runtime.sessions, settings=DispatchSettings(), rng=random.Random(1)))
    listed = client.get("/api/v1/messages?status=delivered", headers=headers).json()["messages"]
    assert [m["id"] for m in listed] == [sent["id"]]
    one = client.get(f"/api/v1/messages/{sent['id']}", headers=headers).json()
    assert [e["status"] for e in one["events"]] == ["delivered"]
    assert (
        client.get(
            f"/api/v1/messages/{sent['id']}", headers={"X-API-Key": coop["other"]}
        ).status_code
        == 404
    )
    cr = client.get("/api/v1/credit", headers=headers).json()
    assert cr["balance_minor"] == 100_00 - 35 and cr["held_minor"] == 0
    assert [e["kind"] for e in cr["ledger"]][:2] == ["debit", "hold"]


def test_the_inbox_has_every_message_and_tracks_read(client, runtime, coop) -> None:
    headers = {"X-API-Key": coop["key"]}
    first = post(client, coop["key"]).json()
    with runtime.sessions() as s, s.begin():
        member = s.scalars(select(Account).where(Account.number == "M-101")).one()
        consumer_id = member.consumer_id
        # A member with no phone on file: the message goes to the inbox alone.
        c = Consumer(tenant_id=member.tenant_id, name="নাসির", preferred_language="bn")
        s.add(c)
        s.flush()
        s.add(
            Account(
                tenant_id=member.tenant_id,
                consumer_id=c.id,
                number="M-102",
                service=Service.savings,
                billing=Billing.prepaid,
                balance_minor=0,
            )
        )
        quiet_id = c.id
    inapp = post(client, coop["key"], account="M-102", reference="R-9").json()
    assert inapp["message"]["status"] == "delivered" and inapp["message"]["cost_minor"] == 0
    box = client.get(f"/api/v1/consumers/{consumer_id}/inbox", headers=headers).json()
    assert box["unread"] == 1 and box["messages"][0]["id"] == first["message"]["id"]
    assert box["messages"][0]["medium"] == "sms"
    read = client.post(
        f"/api/v1/consumers/{consumer_id}/inbox/{first['message']['id']}/read", headers=headers
    )
    assert read.status_code == 200
    assert client.get(
        f"/api/v1/consumers/{consumer_id}/inbox?unread=true", headers=headers
    ).json() == {"unread": 0, "messages": []}
    other = client.get(f"/api/v1/consumers/{quiet_id}/inbox", headers=headers).json()
    assert other["messages"][0]["medium"] == "inapp"
    wrong = client.post(
        f"/api/v1/consumers/{quiet_id}/inbox/{first['message']['id']}/read", headers=headers
    )
    assert wrong.status_code == 404
    assert (
        client.get(
            f"/api/v1/consumers/{consumer_id}/inbox", headers={"X-API-Key": coop["other"]}
        ).status_code
        == 404
    )


def test_quiet_hours_are_set_per_tenant_and_hold_non_urgent_sends(client, runtime, coop) -> None:
    from datetime import UTC, datetime

    from meterline.services.notify import Notification, notify
    from meterline.services.tenants import get_tenant

    admin = {"X-API-Key": coop["admin"]}
    bad = client.put("/api/v1/quiet-hours", json={"start": "25:00"}, headers=admin)
    assert bad.status_code == 422 and "'25:00'" in bad.json()["detail"]
    assert (
        client.put(
            "/api/v1/quiet-hours", json={"start": "20:00"}, headers={"X-API-Key": coop["key"]}
        ).status_code
        == 403
    )
    ok = client.put("/api/v1/quiet-hours", json={"start": "20:00", "end": "09:00"}, headers=admin)
    assert ok.json() == {
        "start": "20:00",
        "end": "09:00",
        "promo_start": "00:00",
        "promo_end": "06:00",
        "timezone": "Asia/Dhaka",
    }
    evening = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # 20:30 in Dhaka
    with runtime.sessions() as s, s.begin():
        t = get_tenant(s, "shapla")
        queued = notify(
            s,
            t,
            Notification(
                kind="custom",
                data={"text": "AGM on Friday"},
                idempotency_key="agm",
                phone="01712345678",
            ),
            now=evening,
        )
    assert queued.due_at == datetime(2026, 3, 11, 3, 0, tzinfo=UTC)  # 09:00 in Dhaka


def test_a_payment_settles_dues_first_and_only_the_rest_is_credit(client, runtime, coop) -> None:
    # A payment of what is owed clears the dues; it is not also credit on the account.
    with runtime.sessions() as s, s.begin():
        account = s.scalars(select(Account).where(Account.number == "M-101")).one()
        account.dues_minor = 40_00
    p = post(client, coop["key"], type="payment", amount="40", reference="P-dues").json()
    assert p["balance_minor"] == 500_00
    more = post(client, coop["key"], type="payment", amount="25", reference="P-more").json()
    assert more["balance_minor"] == 525_00  # nothing owed any more: all of it is credit
    with runtime.sessions() as s, s.begin():
        account = s.scalars(select(Account).where(Account.number == "M-101")).one()
        assert (account.dues_minor, account.balance_minor) == (0, 525_00)
        account.dues_minor = 10_00
    part = post(client, coop["key"], type="payment", amount="30", reference="P-part").json()
    assert part["balance_minor"] == 545_00  # 10 settles the dues, 20 is credit
