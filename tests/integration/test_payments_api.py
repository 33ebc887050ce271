"""Payment links and payments over real HTTP: the pay page, the Razorpay stand-in (a real
HTTP server speaking the Payment Links API), its signed webhooks delivered three times at
once, the server-side status check, and every refusal (forged, replayed, tampered,
expired, another tenant's, unknown, wrong amount) with no side effects."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from meterline.domain.enums import BillStatus, LedgerKind, MessageStatus
from meterline.runtime import Runtime
from meterline.services.notify import Notification, notify
from meterline.store.models import (
    Account,
    Bill,
    LedgerEntry,
    Message,
    Payment,
    PaymentLink,
    Tenant,
)
from meterline.web.app import create_app
from tests.support.browser import serving
from tests.support.payments_setup import Utility, make_utility
from tests.support.razorpay_standin import (
    KEY_ID,
    KEY_SECRET,
    WEBHOOK_SECRET,
    RazorpayStandin,
    razorpay_standin,
)


@pytest.fixture
def utility(runtime: Runtime) -> Utility:
    with runtime.sessions() as s, s.begin():
        return make_utility(s)


@pytest.fixture
def rzp(monkeypatch: pytest.MonkeyPatch) -> Iterator[RazorpayStandin]:
    monkeypatch.setenv("RZP_KEY_SECRET", KEY_SECRET)
    monkeypatch.setenv("RZP_WEBHOOK_SECRET", WEBHOOK_SECRET)
    with razorpay_standin() as standin:
        yield standin


@pytest.fixture
def site(runtime: Runtime) -> Iterator[tuple[str, Any]]:
    app = create_app(runtime)
    with serving(app) as url:
        runtime.settings = runtime.settings.model_copy(update={"public_url": url})
        yield url, app


@pytest.fixture
def http(site: tuple[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site[0], timeout=30, follow_redirects=False) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_razorpay(http: httpx.Client, utility: Utility, rzp: RazorpayStandin) -> dict[str, Any]:
    resp = http.post(
        "/api/v1/payment-gateways",
        json={
            "name": "razorpay",
            "type": "razorpay",
            "config": {
                "key_id": KEY_ID,
                "key_secret": "env:RZP_KEY_SECRET",
                "webhook_secret": "env:RZP_WEBHOOK_SECRET",
                "base_url": rzp.url,
            },
        },
        headers=auth(utility.admin_key),
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "RZP" not in json.dumps(body) and KEY_SECRET not in json.dumps(body)
    return body


def new_link(http: httpx.Client, utility: Utility, account: str = "AL-001") -> dict[str, Any]:
    resp = http.post(
        "/api/v1/payment-links",
        json={"bill_id": utility.bills[account]},
        headers=auth(utility.operator_key),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Payment)) or 0,
            s.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
            s.scalar(select(func.count()).where(Message.kind == "payment_received")) or 0,
        )


def test_a_link_shows_the_bill_in_the_consumers_language_and_counts_clicks(
    http, runtime, utility
) -> None:
    link = new_link(http, utility)
    assert link["url"].endswith(f"/p/{link['code']}") and link["amount_minor"] == 1250_50
    page = http.get(f"/p/{link['code']}")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert "राम कुमार" in html and "AL-001" in html and "2026-11" in html
    assert "₹1,250.50" in html  # Hindi locale, Indian grouping
    assert "अपने बिल का भुगतान करें" in html
    ru = http.get(f"/p/{link['code']}?lang=ru").text
    assert "Оплатить счёт" in ru and re.search(r"1\s250,50", ru)
    # WhatsApp fetching the link for its preview card is not the consumer clicking.
    bot = http.get(f"/p/{link['code']}", headers={"user-agent": "WhatsApp/2.23.20.0 A"})
    assert bot.status_code == 200
    info = http.get(f"/api/v1/payment-links/{link['code']}", headers=auth(utility.viewer_key))
    assert info.json()["clicks"] == 2 and info.json()["first_clicked_at"]
    # The same bill gets the same live link back.
    assert new_link(http, utility)["code"] == link["code"]


def test_unknown_expired_tampered_and_foreign_links_are_refused(
    http, site, runtime, utility
) -> None:
    link = new_link(http, utility)
    code = link["code"]
    unknown = http.get("/p/2345678923")
    assert unknown.status_code == 404 and 'data-reason="unknown"' in unknown.text
    assert http.get("/p/../etc").status_code == 404
    foreign = http.get(f"/api/v1/payment-links/{code}", headers=auth(utility.other_key))
    assert foreign.status_code == 404
    # Expired: the clock moved past the link's expiry.
    site[1].state.console_clock = lambda: datetime.now(UTC) + timedelta(days=31)
    expired = http.get(f"/p/{code}")
    assert expired.status_code == 410 and 'data-reason="expired"' in expired.text
    site[1].state.console_clock = None
    # Tampered: someone lowered the amount in the database.
    with runtime.sessions() as s, s.begin():
        s.execute(update(PaymentLink).where(PaymentLink.code == code).values(amount_minor=100))
    tampered = http.get(f"/p/{code}")
    assert tampered.status_code == 403 and 'data-reason="tampered"' in tampered.text
    # Moved to another tenant: refused too.
    with runtime.sessions() as s, s.begin():
        s.execute(
            update(PaymentLink)
            .where(PaymentLink.code == code)
            .values(amount_minor=1250_50, tenant_id=utility.other_tenant_id)
        )
    assert http.get(f"/p/{code}").status_code == 403
    with runtime.sessions() as s:
        clicks = s.scalar(select(PaymentLink.clicks).where(PaymentLink.code == code))
    assert clicks == 0  # refused opens are not clicks


def test_razorpay_payment_credits_once_though_delivered_three_times_at_once(
    http, site, runtime, utility, rzp
) -> None:
    gateway = add_razorpay(http, utility, rzp)
    link = new_link(http, utility)
    code = link["code"]
    # A reminder of this bill still queued: the payment cancels it.
    with runtime.sessions() as s, s.begin():
        tenant = s.get(Tenant, utility.tenant_id)
        assert tenant is not None
        q = notify(
            s,
            tenant,
            Notification(
                kind="dues_reminder",
                data={"account": "AL-001", "amount": 1250_50, "due_date": "2026-11-10"},
                idempotency_key="test-reminder",
                consumer_id=s.get(Account, utility.accounts["AL-001"]).consumer_id,  # type: ignore[union-attr]
                bill_id=utility.bills["AL-001"],
            ),
            now=datetime.now(UTC),
        )
    http.get(f"/p/{code}")
    go = http.post(f"/p/{code}/pay")
    assert go.status_code == 303
    ((plink_id, entity),) = rzp.links.items()
    assert go.headers["location"] == entity["short_url"]
    assert entity["reference_id"] == code and entity["amount"] == 1250_50
    assert entity["callback_url"] == f"{site[0]}/p/{code}/return"
    assert entity["customer"]["contact"] == "+919876500001"
    # A second click reuses the checkout.
    assert http.post(f"/p/{code}/pay").headers["location"] == entity["short_url"]
    assert len(rzp.links) == 1

    webhook = f"{site[0]}/api/v1/payments/webhooks/{gateway['id']}"
    payment, answers = rzp.pay(plink_id, webhook, times=3)
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert sorted(a.json()["recorded"] for a in answers) == [0, 0, 1]
    assert counts(runtime) == (1, 1, 1)
    with runtime.sessions() as s:
        p = s.scalars(select(Payment)).one()
        assert (p.provider_payment_id, p.amount_minor, p.source) == (
            payment["id"],
            1250_50,
            "webhook",
        )
        entry = s.get(LedgerEntry, p.ledger_entry_id)
        assert entry is not None and entry.kind is LedgerKind.payment
        assert entry.external_ref == f"razorpay:{payment['id']}" and entry.amount_minor == 1250_50
        bill = s.get(Bill, utility.bills["AL-001"])
        assert bill is not None and bill.status is BillStatus.paid
        account = s.get(Account, utility.accounts["AL-001"])
        assert account is not None and account.dues_minor == 0
        confirm = s.scalars(select(Message).where(Message.kind == "payment_received")).one()
        assert confirm.language == "hi" and "1,250.50" in confirm.body
        reminder = s.get(Message, q.message_id)
        assert reminder is not None and reminder.status is MessageStatus.failed
        assert reminder.error_code == "cancelled" and reminder.credit_state == "refunded"
    # The pay page now says paid; a replay of the same signed event changes nothing.
    assert 'data-result="paid"' in http.get(f"/p/{code}").text
    body = rzp.paid_event(plink_id, payment)
    (replay,) = rzp.post_webhook(webhook, body, WEBHOOK_SECRET)
    assert replay.status_code == 200 and replay.json()["duplicates"] == 1
    assert counts(runtime) == (1, 1, 1)


def test_forged_wrong_amount_and_unknown_webhooks_change_nothing(
    http, site, runtime, utility, rzp
) -> None:
    gateway = add_razorpay(http, utility, rzp)
    link = new_link(http, utility)
    http.post(f"/p/{link['code']}/pay")
    (plink_id,) = rzp.links
    webhook = f"{site[0]}/api/v1/payments/webhooks/{gateway['id']}"
    payment = rzp.mark_paid(plink_id)
    body = rzp.paid_event(plink_id, payment)
    (forged,) = rzp.post_webhook(webhook, body, "not-the-secret")
    assert forged.status_code == 403 and "signature" in forged.json()["detail"]
    # A body changed after signing (amount lowered) fails the signature too.
    good_sig = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    altered = body.replace(b'"amount": 125050', b'"amount": 100')
    resp = httpx.post(webhook, content=altered, headers={"x-razorpay-signature": good_sig})
    assert resp.status_code == 403
    # Signed, but the amount is not the link's.
    wrong = rzp.paid_event(plink_id, {**payment, "amount": 100_00})
    (answer,) = rzp.post_webhook(webhook, wrong, WEBHOOK_SECRET)
    assert answer.status_code == 409 and "is not the link's" in answer.json()["detail"]
    # Signed, but for a link that is not ours.
    stranger = json.loads(body)
    stranger["payload"]["payment_link"]["entity"]["reference_id"] = "zzzzzzzzzz"
    stranger["payload"]["payment_link"]["entity"]["id"] = "plink_Unknown0000000"
    (unknown,) = rzp.post_webhook(webhook, json.dumps(stranger).encode(), WEBHOOK_SECRET)
    assert unknown.status_code == 404 and "no payment link" in unknown.json()["detail"]
    # Garbage that is correctly signed is a clear 400.
    (bad,) = rzp.post_webhook(webhook, b"[1, 2]", WEBHOOK_SECRET)
    assert bad.status_code == 400
    assert counts(runtime) == (0, 0, 0)
    with runtime.sessions() as s:
        bill = s.get(Bill, utility.bills["AL-001"])
        assert bill is not None and bill.status is BillStatus.open


def test_another_tenants_gateway_cannot_pay_our_link(http, site, runtime, utility, rzp) -> None:
    add_razorpay(http, utility, rzp)
    link = new_link(http, utility)
    http.post(f"/p/{link['code']}/pay")
    (plink_id,) = rzp.links
    # The other tenant sets up its own Razorpay account with the same webhook secret.
    with runtime.sessions() as s, s.begin():
        from meterline.services.payments import add_gateway

        theirs = add_gateway(
            s,
            utility.other_tenant_id,
            name="rzp",
            type_name="razorpay",
            config={
                "key_id": KEY_ID,
                "key_secret": "env:RZP_KEY_SECRET",
                "webhook_secret": "env:RZP_WEBHOOK_SECRET",
                "base_url": rzp.url,
            },
        ).id
    _, (answer,) = rzp.pay(plink_id, f"{site[0]}/api/v1/payments/webhooks/{theirs}")
    assert answer.status_code == 404
    assert counts(runtime) == (0, 0, 0)


def test_the_browser_return_asks_razorpay_and_never_trusts_the_query(
    http, site, runtime, utility, rzp
) -> None:
    add_razorpay(http, utility, rzp)
    code = new_link(http, utility)["code"]
    http.post(f"/p/{code}/pay")
    (plink_id,) = rzp.links
    forged = http.get(
        f"/p/{code}/return?razorpay_payment_link_status=paid&razorpay_payment_id=pay_fake"
    )
    assert forged.status_code == 200 and 'data-result="pending"' in forged.text
    assert counts(runtime) == (0, 0, 0)
    payment = rzp.mark_paid(plink_id)  # paid at Razorpay; the webhook never arrives
    back = http.get(f"/p/{code}/return?razorpay_payment_link_status=paid")
    assert 'data-result="paid"' in back.text
    assert ("GET", f"/v1/payment_links/{plink_id}", None) in rzp.requests
    assert counts(runtime) == (1, 1, 1)
    with runtime.sessions() as s:
        p = s.scalars(select(Payment)).one()
        assert (p.provider_payment_id, p.source) == (payment["id"], "status_check")
    # The operator's check finds nothing new.
    again = http.post(f"/api/v1/payment-links/{code}/check", headers=auth(utility.operator_key))
    assert again.status_code == 200 and again.json() == {
        "recorded": 0,
        "duplicates": 1,
        "payments": again.json()["payments"],
    }


def test_razorpay_errors_are_clear(http, site, runtime, utility, rzp, monkeypatch) -> None:
    monkeypatch.setenv("RZP_KEY_SECRET", "wrong-secret")
    add_razorpay(http, utility, rzp)
    code = new_link(http, utility)["code"]
    page = http.post(f"/p/{code}/pay")
    assert page.status_code == 502 and "HTTP 401" in page.text and "wrong-secret" not in page.text
    assert rzp.links == {}


def test_gateway_settings_and_roles(http, utility, rzp) -> None:
    bad = http.post(
        "/api/v1/payment-gateways",
        json={"name": "x", "type": "razorpay", "config": {"key_id": "k"}},
        headers=auth(utility.admin_key),
    )
    assert bad.status_code == 422 and "key_secret" in bad.json()["detail"]
    nope = http.post(
        "/api/v1/payment-gateways",
        json={"name": "x", "type": "sandbox", "config": {"webhook_secret": "s"}},
        headers=auth(utility.operator_key),
    )
    assert nope.status_code == 403
    viewer = http.post(
        "/api/v1/payment-links",
        json={"bill_id": utility.bills["AL-001"]},
        headers=auth(utility.viewer_key),
    )
    assert viewer.status_code == 403
    foreign = http.post(
        "/api/v1/payment-links",
        json={"bill_id": utility.bills["AL-001"]},
        headers=auth(utility.other_key),
    )
    assert foreign.status_code == 404


def test_one_event_delivered_by_six_threads_at_once_credits_once(runtime, utility) -> None:
    """Below HTTP: six sessions race through handle_webhook with the same signed event."""
    import threading

    from meterline.payments.sandbox import SandboxGateway
    from meterline.services import payments as pay
    from tests.support.payments_setup import SANDBOX_SECRET

    key = pay.link_key(runtime.settings.secret_key.get_secret_value())
    now = datetime.now(UTC)
    with runtime.sessions() as s, s.begin():
        tenant = s.get(Tenant, utility.tenant_id)
        assert tenant is not None
        row = pay.add_gateway(
            s, tenant.id, name="sbx", type_name="sandbox", config={"webhook_secret": SANDBOX_SECRET}
        )
        gateway_id = row.id
        gateway = pay.gateway_for(row)
        code = pay.create_link(s, tenant, utility.bills["AL-003"], now=now, key=key).code
    assert isinstance(gateway, SandboxGateway)
    signed = gateway.signed_result(code, 3000_00, "INR", approve=True)
    barrier = threading.Barrier(6)
    results: list[Any] = []

    def deliver() -> None:
        barrier.wait()
        try:
            with runtime.sessions() as s, s.begin():
                report = pay.handle_webhook(s, gateway_id, signed, now=now, key=key)
            results.append(report.recorded[0].created)
        except Exception as exc:  # the test reports any failure below
            results.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results, key=str) == [False] * 5 + [True], results
    assert counts(runtime) == (1, 1, 1)
    with runtime.sessions() as s:
        account = s.get(Account, utility.accounts["AL-003"])
        assert account is not None and account.dues_minor == 0 and account.balance_minor == 0


def test_a_checkout_whose_answer_was_lost_is_found_again(http, site, runtime, utility, rzp) -> None:
    """Razorpay made the link but we never heard back: the next click finds it by our
    reference instead of failing on 'Reference Id already exists'."""
    add_razorpay(http, utility, rzp)
    code = new_link(http, utility)["code"]
    lost = httpx.post(
        f"{rzp.url}/v1/payment_links",
        json={"amount": 1250_50, "currency": "INR", "reference_id": code},
        auth=(KEY_ID, KEY_SECRET),
    )
    assert lost.status_code == 200
    again = httpx.post(
        f"{rzp.url}/v1/payment_links",
        json={"amount": 1250_50, "currency": "INR", "reference_id": code},
        auth=(KEY_ID, KEY_SECRET),
    )
    assert again.status_code == 400
    assert again.json()["error"]["field"] == "reference_id"
    go = http.post(f"/p/{code}/pay")
    assert go.status_code == 303 and go.headers["location"] == lost.json()["short_url"]
    with runtime.sessions() as s:
        ref = s.scalar(select(PaymentLink.provider_ref).where(PaymentLink.code == code))
    assert ref == lost.json()["id"] and len(rzp.links) == 1


def test_the_sandbox_pressed_twice_pays_once(http, runtime, utility) -> None:
    from tests.support.payments_setup import SANDBOX_SECRET

    resp = http.post(
        "/api/v1/payment-gateways",
        json={"name": "sbx", "type": "sandbox", "config": {"webhook_secret": SANDBOX_SECRET}},
        headers=auth(utility.admin_key),
    )
    assert resp.status_code == 201
    code = new_link(http, utility, "AL-002")["code"]
    assert http.post(f"/p/{code}/sandbox", data={"decision": "approve"}).status_code == 404
    go = http.post(f"/p/{code}/pay")
    assert go.headers["location"].endswith(f"/p/{code}/sandbox")
    assert 'id="approve"' in http.get(f"/p/{code}/sandbox").text
    first = http.post(f"/p/{code}/sandbox", data={"decision": "approve"})
    assert first.status_code == 303 and first.headers["location"] == f"/p/{code}/return"
    second = http.post(f"/p/{code}/sandbox", data={"decision": "approve"})
    assert second.status_code == 303 and second.headers["location"] == f"/p/{code}"
    assert 'data-result="paid"' in http.get(f"/p/{code}/return").text
    assert counts(runtime) == (1, 1, 1)
    assert http.post(f"/p/{code}/sandbox", data={"decision": "maybe"}).status_code == 422
