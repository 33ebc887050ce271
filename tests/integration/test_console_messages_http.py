"""The console's messaging pages over HTTP: the message log and its filters, one message's
history, SMS credit (top-up, pricing), compose (estimate, send, refusals, double submit)
and the sandbox phones, with roles, CSRF and tenant scoping, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from meterline.domain.enums import ContactKind, CreditState, Medium, MessageStatus, Role
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.message_templates import save_template
from meterline.services.notify import Notification, notify
from meterline.services.security import create_operator
from meterline.services.tenants import create_tenant, get_tenant
from meterline.store.models import ChannelAccount, Consumer, ContactPoint, CreditEntry, Message
from meterline.web.app import create_app
from meterline.web.console_messages import BadAmount, parse_amount

PASSWORD = "correct horse battery"
# The console's clock: 01:30 on 2 March in India (quiet hours: custom sends wait).
NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
# When the seeded messages were queued and sent: noon in India.
NOON_IST = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
ROW = re.compile(r'<a href="/console/messages/(\d+)">')
# The tenant's own texts (not the defaults, which may change): signed, and GSM-7 for OTPs.
TEMPLATES = {"custom": "{{ org_name }}: {{ text }}", "otp": "Code {{ code }}, {{ minutes }} min."}
BENGALI = "প্রিয় গ্রাহক, আগামীকাল সকাল ১০টা থেকে দুপুর ১২টা পর্যন্ত বিদ্যুৎ থাকবে না।"


# --- helpers -------------------------------------------------------------------------------


def plain(html: str) -> str:
    return html.replace("\u202f", " ").replace("\xa0", " ")


def csrf_of(client: TestClient, path: str = "/console/login") -> str:
    found = CSRF.search(client.get(path).text)
    assert found
    return found.group(1)


def login(client: TestClient, username: str) -> TestClient:
    data = {"csrf": csrf_of(client), "username": username, "password": PASSWORD}
    assert client.post("/console/login", data=data, follow_redirects=False).status_code == 303
    return client


def message_ids(html: str) -> list[int]:
    return [int(i) for i in ROW.findall(html)]


def count_messages(runtime: Runtime, tenant_id: int) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).where(Message.tenant_id == tenant_id)) or 0)


@dataclass
class Seeded:
    tenant_id: int
    sandbox_id: int
    gateway_id: int  # a second, non-sandbox channel account
    delivered: int  # message ids
    failed: int
    otp: int
    early: int  # queued on 28 Feb 20:00 UTC = 1 March 01:30 in India
    on_gateway: int
    ramesh: int  # a consumer with a phone
    other_tenant_message: int
    other_tenant_consumer: int


def _queue(s, tenant, key: str, *, at: datetime, kind: str = "custom", **extra: Any) -> int:  # type: ignore[no-untyped-def]
    data = extra.pop("data", {"text": f"Notice {key}"})
    n = Notification(kind=kind, data=data, idempotency_key=key, **extra)
    return notify(s, tenant, n, now=at).message_id


@pytest.fixture
def seeded(runtime: Runtime, tenant) -> Seeded:  # type: ignore[no-untyped-def]
    with runtime.sessions() as s, s.begin():
        t = get_tenant(s, tenant.slug)
        sandbox = add_channel_account(
            s, t.id, name="demo-phones", type_name="sandbox", config={"reject": ["+919822222222"]}
        )
        gateway = add_channel_account(
            s,
            t.id,
            name="bulk-gateway",
            type_name="sms_http",
            config={"url": "http://127.0.0.1:9/sms"},
            is_default=False,
        )
        credit.set_pricing(s, t.id, sms_price_minor=25)
        for kind, body in TEMPLATES.items():
            for language in t.language_list:
                save_template(
                    s, t.id, kind=kind, medium=Medium.sms, language=language, body=body, by="setup"
                )
        credit.top_up(s, t.id, 100_000, by="setup", note="opening balance")
        ramesh = Consumer(tenant_id=t.id, name="Ramesh Kumar", preferred_language="hi")
        s.add(ramesh)
        s.flush()
        s.add(
            ContactPoint(
                tenant_id=t.id,
                consumer_id=ramesh.id,
                kind=ContactKind.phone,
                value="+919876543210",
                is_primary=True,
            )
        )
        s.flush()
        delivered = _queue(s, t, "seed-delivered", at=NOON_IST, phone="9876543210")
        failed = _queue(s, t, "seed-failed", at=NOON_IST, phone="9822222222")
        otp = _queue(
            s, t, "seed-otp", at=NOON_IST, kind="otp", data={"code": "4711", "minutes": 10},
            phone="9812345678",
        )  # fmt: skip
        early = _queue(
            s, t, "seed-early", at=datetime(2026, 2, 28, 20, 0, tzinfo=UTC), kind="otp",
            data={"code": "1234", "minutes": 5}, phone="9812345678",
        )  # fmt: skip
        on_gateway = _queue(s, t, "seed-gateway", at=NOON_IST, phone="9811111111")
        # This one went out through the other gateway (never dispatched here).
        s.execute(
            update(Message)
            .where(Message.id == on_gateway)
            .values(channel_account_id=gateway.id, due_at=None)
        )

        other = create_tenant(
            s, slug="dhaka-coop", name="Dhaka Cooperative", country="BD", currency="BDT",
            timezone="Asia/Dhaka",
        )  # fmt: skip
        add_channel_account(s, other.id, name="demo-phones", type_name="sandbox", config={})
        other_consumer = Consumer(tenant_id=other.id, name="Karim", preferred_language="bn")
        s.add(other_consumer)
        s.flush()
        other_message = _queue(
            s, other, "dhaka-1", at=NOON_IST, kind="otp", data={"code": "9999", "minutes": 5},
            phone="01712345678",
        )  # fmt: skip
        ids = Seeded(
            t.id, sandbox.id, gateway.id, delivered, failed, otp, early, on_gateway,
            ramesh.id, other_message, other_consumer.id,
        )  # fmt: skip
        for username, role, lang in [
            ("op", Role.operator, "en"),
            ("view", Role.viewer, "en"),
            ("boss", Role.admin, "en"),
            ("ru-admin", Role.admin, "ru"),
            ("bn-op", Role.operator, "bn"),
        ]:
            create_operator(s, t, username, PASSWORD, role, lang)
        create_operator(s, other, "dhaka-op", PASSWORD, Role.operator, "bn")
    drain(
        Dispatcher(
            runtime.sessions,
            settings=DispatchSettings(claim_seconds=30),
            clock=lambda: NOON_IST + timedelta(seconds=5),
            rng=random.Random(7),
            worker="w1",
        )
    )
    return ids


@pytest.fixture
def client(runtime: Runtime, seeded: Seeded) -> TestClient:
    app = create_app(runtime)
    app.state.console_clock = lambda: NOW
    return TestClient(app)


def client_as(runtime: Runtime, username: str) -> TestClient:
    app = create_app(runtime)
    app.state.console_clock = lambda: NOW
    return login(TestClient(app), username)


@pytest.fixture
def op(client: TestClient) -> TestClient:
    return login(client, "op")


# --- the message log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/console/messages", "/console/messages/1", "/console/credit", "/console/compose",
     "/console/sandbox"],
)  # fmt: skip
def test_pages_need_a_login(client: TestClient, path: str) -> None:
    resp = client.get(path, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/console/login?next=")


def test_message_log_lists_newest_first_with_counts(runtime: Runtime, seeded: Seeded) -> None:
    view = client_as(runtime, "view")  # a viewer may read the log
    page = view.get("/console/messages")
    assert page.status_code == 200
    html = plain(page.text)
    ids = message_ids(html)
    assert ids == sorted(ids, reverse=True)
    everything = {seeded.delivered, seeded.failed, seeded.otp, seeded.early, seeded.on_gateway}
    assert set(ids) == everything
    assert seeded.other_tenant_message not in ids
    # Counts per status on top: 3 delivered (a custom, two OTPs), 1 failed, 1 queued.
    tiles = dict(
        (label, int(n))
        for n, label in re.findall(
            r'<span class="tile-value">(\d+)</span>\s*<span class="tile-label">([^<]+)</span>', html
        )
    )
    assert tiles["All"] == 5 and tiles["Delivered"] == 3 and tiles["Failed"] == 1
    assert tiles["Queued"] == 1 and tiles["Sending"] == 0
    # Columns: time (tenant's zone), phone, kind, status badge, segments, cost, channel.
    assert "+91 98765 43210" in html and "One-time code" in html and "Custom message" in html
    assert 'class="msg-status st-failed"' in html and 'class="msg-status st-delivered"' in html
    assert "₹0.25" in html and "demo-phones" in html and "bulk-gateway" in html
    assert "1 Mar 2026, 12:00:00 PM" in html  # NOON_IST shown in India time
    assert page.headers["cache-control"] == "no-store"


def test_message_log_filters(op: TestClient, seeded: Seeded) -> None:
    def ids(query: str) -> set[int]:
        resp = op.get(f"/console/messages?{query}")
        assert resp.status_code == 200
        return set(message_ids(resp.text))

    assert ids("status=failed") == {seeded.failed}
    assert ids("status=delivered&kind=otp") == {seeded.otp, seeded.early}
    assert ids("kind=custom") == {seeded.delivered, seeded.failed, seeded.on_gateway}
    assert ids(f"channel={seeded.gateway_id}") == {seeded.on_gateway}
    assert seeded.on_gateway not in ids(f"channel={seeded.sandbox_id}")
    # Dates are the tenant's: 28 Feb 20:00 UTC is 1 March in India.
    assert ids("date_from=2026-03-01&date_to=2026-03-01") == {
        seeded.delivered, seeded.failed, seeded.otp, seeded.early, seeded.on_gateway,
    }  # fmt: skip
    assert ids("date_to=2026-02-28") == set()
    assert ids("date_from=2026-03-02") == set()
    # A phone number as people type it.
    assert ids("to=98123 45678") == {seeded.otp, seeded.early}
    bad = op.get("/console/messages?to=12345")
    assert "12345 is not a valid phone number." in bad.text and not message_ids(bad.text)
    # Nonsense filters are ignored, not errors; the form shows what applies.
    assert len(ids("status=lost&kind=nope&channel=x&date_from=yesterday")) == 5
    page = op.get("/console/messages?status=failed&kind=custom").text
    assert '<option value="failed" selected>' in page and '<option value="custom" selected>' in page
    assert "No messages match these filters." in op.get("/console/messages?status=read").text


def test_message_log_pages_with_before_id(runtime: Runtime, op: TestClient, seeded: Seeded) -> None:
    with runtime.sessions() as s, s.begin():
        t = get_tenant(s, "aligarh")
        made = [
            _queue(s, t, f"bulk-{i}", at=NOON_IST, kind="otp",
                   data={"code": str(i), "minutes": 5}, phone="9812345678")
            for i in range(50)
        ]  # fmt: skip
    first = op.get("/console/messages?kind=otp").text
    ids1 = message_ids(first)
    assert ids1 == sorted(made, reverse=True)  # 50 a page, newest first
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older and "before_id=" in older.group(1) and "kind=otp" in older.group(1)
    second = op.get(older.group(1).replace("&amp;", "&")).text
    assert message_ids(second) == [seeded.early, seeded.otp]
    assert 'rel="next"' not in second and "Newest" in second


def test_message_page_shows_the_message_and_its_history(runtime: Runtime, seeded: Seeded) -> None:
    view = client_as(runtime, "view")
    html = plain(view.get(f"/console/messages/{seeded.failed}").text)
    assert "Aligarh Electricity Office: Notice seed-failed" in html
    assert "+91 98222 22222" in html and "GSM-7" in html and "₹0.25" in html
    assert "Refunded" in html and "rejected" in html
    assert "sandbox: number is on the reject list" in html
    assert "Send attempt" in html and ">w1<" in html
    assert "1 Mar 2026, 12:00:05 PM" in html  # failed at, in India time
    ok = plain(view.get(f"/console/messages/{seeded.delivered}").text)
    assert f"sandbox-{seeded.delivered}" in ok and "Debited" in ok
    assert 'class="msg-status st-delivered"' in ok
    queued = plain(view.get(f"/console/messages/{seeded.on_gateway}").text)
    assert "No attempts yet." in queued and "Held" in queued


def test_another_tenants_message_is_not_found(
    runtime: Runtime, op: TestClient, seeded: Seeded
) -> None:
    resp = op.get(f"/console/messages/{seeded.other_tenant_message}")
    assert resp.status_code == 404 and "There is no such message." in resp.text
    assert op.get("/console/messages/99999999").status_code == 404
    dhaka = client_as(runtime, "dhaka-op")
    assert dhaka.get(f"/console/messages/{seeded.delivered}").status_code == 404
    assert dhaka.get(f"/console/messages/{seeded.other_tenant_message}").status_code == 200
    assert seeded.delivered not in message_ids(dhaka.get("/console/messages").text)


# --- credit --------------------------------------------------------------------------------


def test_credit_page_for_a_viewer(runtime: Runtime, seeded: Seeded) -> None:
    view = client_as(runtime, "view")
    html = plain(view.get("/console/credit").text)
    # 1000.00 topped up; 3 SMS debited (0.75), one refunded, one held for the queued one.
    assert "₹999.25" in html  # balance
    assert "₹0.25" in html  # held, and the price per segment
    assert "₹999.00" in html  # available
    assert "opening balance" in html and "setup" in html
    for kind in ("Top-up", "Hold", "Debit", "Release"):
        assert kind in html
    assert 'action="/console/credit/topup"' not in html  # no forms for a viewer
    token = csrf_of(view, "/console/credit")
    resp = view.post("/console/credit/topup", data={"csrf": token, "amount": "5"})
    assert resp.status_code == 403
    resp = view.post(
        "/console/credit/pricing",
        data={"csrf": token, "sms_price": "0", "overdraft": "0", "max_parts": "3"},
    )
    assert resp.status_code == 403
    op = client_as(runtime, "op")
    token = csrf_of(op, "/console/credit")
    assert op.post("/console/credit/topup", data={"csrf": token, "amount": "5"}).status_code == 403
    with runtime.sessions() as s:
        assert credit.totals(s, seeded.tenant_id).balance_minor == 99_925


def test_admin_tops_up_and_sets_prices(runtime: Runtime, seeded: Seeded) -> None:
    boss = client_as(runtime, "boss")
    page = boss.get("/console/credit").text
    assert 'action="/console/credit/topup"' in page and 'value="0.25"' in page
    token = csrf_of(boss, "/console/credit")
    # No CSRF token: refused, nothing changes.
    assert boss.post("/console/credit/topup", data={"amount": "500"}).status_code == 403
    resp = boss.post(
        "/console/credit/topup",
        data={"csrf": token, "amount": "1,500.50", "note": "UPI ref 8812"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/console/credit?saved=topup"
    html = plain(boss.get("/console/credit?saved=topup").text)
    assert "The credit was topped up." in html and "₹2,499.75" in html
    assert "UPI ref 8812" in html and ">boss<" in html
    bad = boss.post("/console/credit/topup", data={"csrf": token, "amount": "12.345"})
    assert bad.status_code == 422 and "too many decimal places" in bad.text
    assert 'value="12.345"' in bad.text  # the form keeps what was typed
    zero = boss.post("/console/credit/topup", data={"csrf": token, "amount": "0"})
    assert zero.status_code == 422 and "more than zero" in zero.text
    resp = boss.post(
        "/console/credit/pricing",
        data={"csrf": token, "sms_price": "0.30", "overdraft": "100", "max_parts": "4"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    with runtime.sessions() as s:
        account = credit.credit_account(s, seeded.tenant_id)
        assert (account.sms_price_minor, account.overdraft_minor, account.max_sms_parts) == (
            30, 10_000, 4,
        )  # fmt: skip
        assert credit.totals(s, seeded.tenant_id).balance_minor == 99_925 + 150_050
    bad = boss.post(
        "/console/credit/pricing",
        data={"csrf": token, "sms_price": "0.30", "overdraft": "0", "max_parts": "0"},
    )
    assert bad.status_code == 422 and "from 1 to 255" in bad.text


def test_credit_page_in_russian(runtime: Runtime, seeded: Seeded) -> None:
    html = plain(client_as(runtime, "ru-admin").get("/console/credit").text)
    assert "999,25 ₹" in html
    assert "Пополнить" in html and "Цена за сегмент SMS" in html


@pytest.mark.parametrize(
    ("typed", "minor"),
    [("500", 50_000), ("1,500.50", 150_050), ("1500,5", 150_050), ("১৫০০", 150_000),
     (" 2 000 ", 200_000), (".5", 50)],
)  # fmt: skip
def test_amounts_as_people_type_them(typed: str, minor: int) -> None:
    assert parse_amount(typed, "INR") == minor


@pytest.mark.parametrize("typed", ["", "abc", "-5", "1.2.3", "5e3", "1" * 20, "₹500"])
def test_amounts_that_are_not(typed: str) -> None:
    with pytest.raises(BadAmount):
        parse_amount(typed, "INR")


# --- compose -------------------------------------------------------------------------------


def compose_form(client: TestClient, **fields: str) -> dict[str, str]:
    page = client.get("/console/compose").text
    csrf, key = CSRF.search(page), KEY.search(page)
    assert csrf and key
    return {"csrf": csrf.group(1), "key": key.group(1), "to": "", "text": "", **fields}


def test_viewer_cannot_compose(runtime: Runtime, seeded: Seeded) -> None:
    view = client_as(runtime, "view")
    assert view.get("/console/compose").status_code == 403
    assert 'href="/console/compose"' not in view.get("/console/messages").text
    token = csrf_of(view, "/console/messages")
    resp = view.post(
        "/console/compose",
        data={"csrf": token, "key": "k" * 24, "to": "9876543210", "text": "hi"},
    )
    assert resp.status_code == 403
    assert count_messages(runtime, seeded.tenant_id) == 5


def test_compose_page_shows_the_estimate(op: TestClient) -> None:
    html = plain(op.get("/console/compose").text)
    assert 'src="/console/static/compose.js"' in html
    assert 'data-before="Aligarh Electricity Office: "' in html
    assert 'id="est-encoding">GSM-7<' in html and 'id="est-segments">1<' in html
    assert "Available credit: ₹999.00" in html
    js = op.get("/console/static/compose.js")
    assert js.status_code == 200 and "too_long" in js.text
    # The endpoint compose.js calls answers the console's session.
    est = op.post("/api/v1/sms/estimate", json={"text": "Aligarh Electricity Office: " + BENGALI})
    assert est.status_code == 200
    assert est.json()["encoding"] == "UCS-2" and est.json()["segments"] == 2


def test_the_estimate_counts_the_template_around_the_text(
    runtime: Runtime, op: TestClient, seeded: Seeded
) -> None:
    with runtime.sessions() as s, s.begin():
        t = get_tenant(s, "aligarh")
        body = "{{ text }} (from {{ org_name }})"
        save_template(
            s, t.id, kind="custom", medium=Medium.sms, language=t.default_language, body=body,
            by="test",
        )  # fmt: skip
    html = op.get("/console/compose").text
    assert 'data-before="" data-after=" (from Aligarh Electricity Office)"' in html
    # 60 Bengali characters fit one part alone, not with the signature.
    text = BENGALI[:60]
    resp = op.post("/console/compose", data=compose_form(op, to="12345", text=text))
    assert 'id="est-segments">2<' in resp.text


def test_compose_sends_one_message_and_a_double_submit_makes_one(
    runtime: Runtime, op: TestClient, seeded: Seeded
) -> None:
    form = compose_form(op, to="98765 43210", text="Line one\r\nline two")
    first = op.post("/console/compose", data=form, follow_redirects=False)
    assert first.status_code == 303
    url = first.headers["location"]
    assert re.fullmatch(r"/console/messages/\d+", url)
    again = op.post("/console/compose", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == url + "?repeat=1"
    assert count_messages(runtime, seeded.tenant_id) == 6
    page = plain(op.get(url + "?repeat=1").text)
    assert "no second message was made" in page
    assert "Aligarh Electricity Office: Line one\nline two" in page
    message_id = int(url.rsplit("/", 1)[1])
    with runtime.sessions() as s:
        m = s.get(Message, message_id)
        assert m is not None
        assert (m.to_address, m.kind, m.status) == ("+919876543210", "custom", MessageStatus.queued)
        assert m.credit_state == CreditState.held and m.cost_minor == 25
        assert m.due_at == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)  # 08:00 in India
        holds = s.scalar(select(func.count()).where(CreditEntry.message_id == message_id))
        assert holds == 1
    # A new form has a new key: the same text again is a second message.
    second = op.post("/console/compose", data=compose_form(op, to="9876543210", text="Hello"))
    assert second.status_code == 200 and count_messages(runtime, seeded.tenant_id) == 7


def test_compose_to_a_consumer(runtime: Runtime, op: TestClient, seeded: Seeded) -> None:
    form = compose_form(op, consumer_id=str(seeded.ramesh), text="नमस्ते")
    resp = op.post("/console/compose", data=form, follow_redirects=False)
    assert resp.status_code == 303
    html = plain(op.get(resp.headers["location"]).text)
    assert "Ramesh Kumar" in html and "+91 98765 43210" in html and "UCS-2" in html
    # Another tenant's consumer is not found, and nothing is written.
    form = compose_form(op, consumer_id=str(seeded.other_tenant_consumer), text="hello")
    resp = op.post("/console/compose", data=form)
    assert resp.status_code == 404 and "There is no such consumer." in resp.text
    assert count_messages(runtime, seeded.tenant_id) == 6


def test_compose_refusals_keep_the_text(runtime: Runtime, op: TestClient, seeded: Seeded) -> None:
    def refused(status: int, **fields: str) -> str:
        form = compose_form(op, **fields)
        resp = op.post("/console/compose", data=form)
        assert resp.status_code == status, resp.text
        html = plain(resp.text)
        assert "The message was not sent." in html
        assert KEY.search(html) and KEY.search(html).group(1) == form["key"]  # type: ignore[union-attr]
        return html

    html = refused(422, to="12345", text=BENGALI)
    assert "12345 is not a valid phone number." in html
    assert f">{BENGALI}</textarea>" in html
    assert 'id="est-encoding">UCS-2<' in html and 'id="est-segments">2<' in html  # server-side
    assert "Give a phone number or a consumer id." in refused(422, text="hello")
    assert "not both" in refused(422, to="9876543210", consumer_id="1", text="hello")
    assert "Write the message." in refused(422, to="9876543210", text="   ")

    boss = client_as(runtime, "boss")
    token = csrf_of(boss, "/console/credit")
    boss.post(
        "/console/credit/pricing",
        data={"csrf": token, "sms_price": "0.25", "overdraft": "0", "max_parts": "2"},
    )
    html = refused(422, to="9876543210", text=BENGALI * 3)
    assert "The message is too long: 4 SMS parts, and at most 2 are allowed." in html
    assert 'class="card estimate is-too-long"' in html
    assert "hidden>The message is too long" not in html  # shown, not hidden

    boss.post(
        "/console/credit/pricing",
        data={"csrf": token, "sms_price": "1000", "overdraft": "0", "max_parts": "10"},
    )
    html = refused(402, to="9876543210", text="hello")
    assert "Not enough messaging credit: this message costs ₹1,000.00" in html
    assert "and ₹999.00 is available." in html
    assert count_messages(runtime, seeded.tenant_id) == 5


def test_compose_refuses_a_post_without_csrf_or_key(
    runtime: Runtime, op: TestClient, seeded: Seeded
) -> None:
    form = compose_form(op, to="9876543210", text="hello")
    resp = op.post("/console/compose", data={**form, "csrf": "forged"})
    assert resp.status_code == 403 and "This form has expired" in resp.text
    resp = op.post("/console/compose", data={**form, "key": ""})
    assert resp.status_code == 403
    assert count_messages(runtime, seeded.tenant_id) == 5


def test_compose_in_bengali(runtime: Runtime, seeded: Seeded) -> None:
    bn = client_as(runtime, "bn-op")
    html = bn.get("/console/compose").text
    assert '<html lang="bn">' in html and "বার্তা পাঠান" in html
    form = compose_form(bn, to="12345", text="hello")
    assert "বৈধ ফোন নম্বর নয়" in bn.post("/console/compose", data=form).text


# --- sandbox -------------------------------------------------------------------------------


def test_sandbox_shows_what_the_pretend_phones_received(runtime: Runtime, seeded: Seeded) -> None:
    view = client_as(runtime, "view")
    html = plain(view.get("/console/sandbox").text)
    ids = message_ids(html)
    assert ids == sorted([seeded.delivered, seeded.failed, seeded.otp, seeded.early], reverse=True)
    assert seeded.on_gateway not in ids and seeded.other_tenant_message not in ids
    assert "Aligarh Electricity Office: Notice seed-delivered" in html
    assert "+91 98765 43210" in html and "1 segment" in html
    with runtime.sessions() as s, s.begin():
        s.execute(update(ChannelAccount).values(type_name="sms_http", config={"url": "http://x"}))
    assert "No sandbox channel is set up." in view.get("/console/sandbox").text


def test_every_page_renders_in_every_language(runtime: Runtime, seeded: Seeded) -> None:
    boss = client_as(runtime, "boss")
    token = csrf_of(boss, "/console")
    words = {"hi": "संदेश", "bn": "বার্তা", "ru": "Сообщения"}
    for lang, word in words.items():
        boss.post("/console/language", data={"csrf": token, "lang": lang, "next": "/console"})
        for path in ["/console/messages", f"/console/messages/{seeded.failed}", "/console/credit",
                     "/console/compose", "/console/sandbox"]:  # fmt: skip
            resp = boss.get(path)
            assert resp.status_code == 200, path
            assert f'<html lang="{lang}">' in resp.text and word in resp.text, (lang, path)
