"""Scenario 1 end to end, over real HTTP everywhere, on SQLite and PostgreSQL.

An electricity office uploads its master sheet (a real .xlsx: a title row, Hindi headers,
phones typed every which way) through the import API, sets up a WhatsApp Cloud account
(the Graph API stand-in), an HTTP SMS gateway (the gateway stand-in) and Razorpay (its
stand-in), previews a dues reminder run (count, channel mix, cost) and sends it. The real
dispatcher sends: numbers on WhatsApp get one template message with the amount, the due
date and the payment link button and no SMS; numbers not on WhatsApp are accepted by Meta,
which then posts a signed ``failed`` status 131026, and they get one SMS with the link and
are remembered as not on WhatsApp. A schedule step days later sends those straight by SMS.
A consumer pays through the link (Razorpay posts its signed webhook three times at once):
the bill is paid once, one ledger entry, one ``payment_received`` confirmation, and the
bill's reminder still waiting in the queue is cancelled. The report counts it all.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from meterline.domain.enums import BillStatus, CreditState, LedgerKind, Medium, MessageStatus, Role
from meterline.runtime import Runtime
from meterline.services import credit
from meterline.services.dispatch import Dispatcher, DispatchSettings, drain
from meterline.services.security import create_api_key
from meterline.services.tenants import get_tenant
from meterline.store.models import (
    Account,
    Bill,
    ContactPoint,
    LedgerEntry,
    Message,
    Payment,
    PaymentLink,
)
from meterline.web.app import create_app
from tests.support.browser import serving
from tests.support.gateway_standin import GatewayStandin
from tests.support.razorpay_standin import (
    KEY_ID,
    KEY_SECRET,
    WEBHOOK_SECRET,
    RazorpayStandin,
    razorpay_standin,
)
from tests.support.sheets import HINDI_HEADER, write_xlsx
from tests.support.whatsapp_standin import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    Template,
    WhatsAppStandin,
)

SMS_TOKEN = "standin-sms-token"
SMS_CALLBACK_SECRET = "standin-sms-callback-secret"
WA_VERIFY = "standin-verify-token"
PRICE = 25  # paise per SMS segment

ON_WA = {"+919876543210": "AL-1001", "+919876543213": "AL-1004"}
NOT_ON_WA = {"+919876543212": "AL-1003", "+919876543214": "AL-1005"}
PAYER = "+919876543212"  # AL-1003: not on WhatsApp, pays from the SMS's link

TITLE = ["अलीगढ़ विद्युत वितरण खंड — उपभोक्ता सूची, नवंबर 2026"]
ROWS = [
    HINDI_HEADER,
    ["AL-1001", "राम कुमार", 9876543210.0, "1,234.50", "15/10/2026", "फीडर 11kV रामघाट"],
    ["AL-1002", "Sita Devi", "+91 98765-43211", "0", "15.12.2026", "फीडर 11kV रामघाट"],
    ["AL-1003", "মোহাম্মদ করিম", "०९८७६५ ४३२१२", "₹ 2,500", date(2026, 9, 1), "फीडर 11kV क्वार्सी"],
    ["AL-1004", "Иван Петров", "98765 43213", 500, "01/10/2026", "फीडर 11kV क्वार्सी"],
    ["AL-1005", "सुनीता शर्मा", "098765-43214", "1,20,000", "20-10-2026", "फीडर 11kV सासनी गेट"],
    ["AL-1006", "गीता देवी", None, "300", "05/11/2026", "फीडर 11kV सासनी गेट"],
]
# As the WhatsApp template's parameters and the SMS show them, in Hindi.
AMOUNTS = {
    "AL-1001": "₹1,234.50",
    "AL-1003": "₹2,500.00",
    "AL-1004": "₹500.00",
    "AL-1005": "₹1,20,000.00",  # Indian grouping
}
DUE_DATES = {
    "AL-1001": "15 अक्टू॰ 2026",
    "AL-1003": "1 सित॰ 2026",
    "AL-1004": "1 अक्टू॰ 2026",
    "AL-1005": "20 अक्टू॰ 2026",
}


class Clock:
    """The app's and the dispatcher's clock: real time, moved on by whole days."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Office:
    site: str
    http: httpx.Client
    admin: dict[str, str]
    operator: dict[str, str]
    wa: WhatsAppStandin
    sms: GatewayStandin
    rzp: RazorpayStandin
    clock: Clock
    runtime: Runtime
    tenant_id: int
    wa_account: int = 0
    sms_account: int = 0
    gateway: int = 0

    def dispatch(self) -> None:
        drain(
            Dispatcher(
                self.runtime.sessions,
                settings=DispatchSettings(claim_seconds=30, public_url=self.site),
                clock=self.clock,
                rng=random.Random(1),
                worker="scenario1",
            )
        )

    def messages(self, **where: Any) -> list[Message]:
        with self.runtime.sessions() as s:
            stmt = select(Message).order_by(Message.id)
            for name, value in where.items():
                stmt = stmt.where(getattr(Message, name) == value)
            return list(s.scalars(stmt))

    def sms_sent(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.sms.requests("sms")]


@pytest.fixture
def office(runtime: Runtime, tenant: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Office]:
    for name, value in {
        "WA_TOKEN": ACCESS_TOKEN,
        "WA_APP_SECRET": APP_SECRET,
        "WA_VERIFY": WA_VERIFY,
        "SMS_TOKEN": SMS_TOKEN,
        "SMS_CALLBACK_SECRET": SMS_CALLBACK_SECRET,
        "RZP_KEY_SECRET": KEY_SECRET,
        "RZP_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    templates = [
        Template("dues_reminder_v2", "hi", body_params=3, url_button=True),
        Template("dues_reminder_v2", "en_US", body_params=3, url_button=True),
    ]
    clock = Clock()
    app = create_app(runtime)
    app.state.console_clock = clock
    with (
        WhatsAppStandin(templates=templates) as wa,
        GatewayStandin(sms_token=SMS_TOKEN) as sms,
        razorpay_standin() as rzp,
        serving(app) as site,
        httpx.Client(base_url=site, timeout=30, follow_redirects=False) as http,
    ):
        runtime.settings = runtime.settings.model_copy(update={"public_url": site})
        with runtime.sessions() as s, s.begin():
            t = get_tenant(s, "aligarh")
            _, admin_key = create_api_key(s, t, "office-admin", Role.admin)
            _, operator_key = create_api_key(s, t, "billing-clerk", Role.operator)
        wa.not_on_whatsapp.update(number[1:] for number in NOT_ON_WA)
        yield Office(
            site,
            http,
            {"Authorization": f"Bearer {admin_key}"},
            {"Authorization": f"Bearer {operator_key}"},
            wa,
            sms,
            rzp,
            clock,
            runtime,
            tenant.id,
        )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def set_up(office: Office, tmp_path: Path) -> dict[str, Any]:
    """What the office does once: import the sheet, add channels, credit and Razorpay."""
    http, admin = office.http, office.admin
    sheet = write_xlsx(tmp_path / "उपभोक्ता सूची.xlsx", ROWS, title_rows=[TITLE, []])
    with sheet.open("rb") as f:
        report = ok(
            http.post("/api/v1/imports", headers=office.operator, files={"file": (sheet.name, f)}),
            201,
        )
    assert (report["inserted"], report["rejected"]) == (6, 0), report["errors"]
    wa = ok(
        http.post(
            "/api/v1/channels",
            headers=admin,
            json={
                "name": "whatsapp",
                "type": "whatsapp_cloud",
                "config": {
                    "graph_url": office.wa.graph_url,
                    "phone_number_id": PHONE_NUMBER_ID,
                    "access_token": "env:WA_TOKEN",
                    "app_secret": "env:WA_APP_SECRET",
                    "verify_token": "env:WA_VERIFY",
                    "country": "IN",
                    "currency": "INR",
                    "timezone": "Asia/Kolkata",
                    "languages": {"en": "en_US"},
                    "templates": {
                        "dues_reminder": {
                            "name": "dues_reminder_v2",
                            "body": ["account", "amount", "due_date"],
                            "url_button": {
                                "variable": "pay_url",
                                "strip_prefix": f"{office.site}/p/",
                            },
                        }
                    },
                },
            },
        ),
        201,
    )
    assert wa["medium"] == "whatsapp"
    assert wa["callback_url"] == f"{office.site}/api/v1/callbacks/{wa['id']}"
    office.wa_account = wa["id"]
    office.wa.callback_url = wa["callback_url"]
    # Meta's subscription handshake on the callback URL.
    handshake = http.get(
        f"/api/v1/callbacks/{wa['id']}",
        params={"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "8641"},
    )
    assert (handshake.status_code, handshake.text) == (200, "8641")
    sms = ok(
        http.post(
            "/api/v1/channels",
            headers=admin,
            json={
                "name": "sms-gateway",
                "type": "sms_http",
                "config": {
                    "url": office.sms.sms_url,
                    "auth_header": "Authorization",
                    "auth_token": "env:SMS_TOKEN",
                    "callback_secret": "env:SMS_CALLBACK_SECRET",
                },
            },
        ),
        201,
    )
    assert sms["medium"] == "sms"
    office.sms_account = sms["id"]
    ok(http.put("/api/v1/credit/pricing", headers=admin, json={"sms_price": "0.25"}))
    ok(http.post("/api/v1/credit/topups", headers=admin, json={"amount": "100.00"}), 201)
    # Reminders at any hour of the test run (the office's quiet hours are another test's).
    ok(http.put("/api/v1/quiet-hours", headers=admin, json={"start": "00:00", "end": "00:00"}))
    gateway = ok(
        http.post(
            "/api/v1/payment-gateways",
            headers=admin,
            json={
                "name": "razorpay",
                "type": "razorpay",
                "config": {
                    "key_id": KEY_ID,
                    "key_secret": "env:RZP_KEY_SECRET",
                    "webhook_secret": "env:RZP_WEBHOOK_SECRET",
                    "base_url": office.rzp.url,
                },
            },
        ),
        201,
    )
    office.gateway = gateway["id"]
    return report


def reminder_of(messages: list[Message], number: str) -> Message:
    (found,) = [m for m in messages if m.kind == "dues_reminder" and m.to_address == number]
    return found


def link_code(body: str, site: str) -> str:
    found = re.findall(re.escape(site) + r"/p/(\w+)", body)
    assert len(found) == 1, body
    return str(found[0])


def test_from_the_office_sheet_to_a_paid_bill(office: Office, tmp_path: Path) -> None:
    http, site = office.http, office.site
    set_up(office, tmp_path)

    # -- the first run: preview, then send -------------------------------------------------
    preview = ok(http.post("/api/v1/reminders/preview", headers=office.operator, json={}))
    # AL-1002 owes nothing; four phones never tried on WhatsApp; AL-1006 has no phone.
    assert preview["count"] == 5
    assert preview["amount_minor"] == 1234_50 + 2500_00 + 500_00 + 120000_00 + 300_00
    assert preview["channel_mix"] == {"inapp": 1, "whatsapp_unknown": 4}
    assert preview["sms_cost_minor"] == 0  # WhatsApp first: nothing held for SMS yet
    worst = preview["sms_cost_if_all_fall_back_minor"]  # Hindi: UCS-2, 2-3 segments each
    assert worst % PRICE == 0 and 4 * 2 * PRICE <= worst <= 4 * 3 * PRICE, preview
    run1 = ok(http.post("/api/v1/reminders/runs", headers=office.operator, json={}), 201)
    assert (run1["selected"], run1["queued"], run1["refused"]) == (5, 5, 0)

    office.dispatch()
    # Meta accepted all four templates; nothing went by SMS yet.
    sends = office.wa.sends()
    assert sorted(s["to"] for s in sends) == sorted(n[1:] for n in {**ON_WA, **NOT_ON_WA})
    assert office.sms_sent() == []
    queued = office.messages(kind="dues_reminder")
    for number, account in {**ON_WA, **NOT_ON_WA}.items():
        m = reminder_of(queued, number)
        assert (m.medium, m.status) == (Medium.whatsapp, MessageStatus.sent), number
        code = link_code(str((m.data or {})["pay_url"]), site)
        (payload,) = [s for s in sends if s["to"] == number[1:]]
        assert payload == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": number[1:],
            "type": "template",
            "template": {
                "name": "dues_reminder_v2",
                "language": {"code": "hi"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": account},
                            {"type": "text", "text": AMOUNTS[account]},
                            {"type": "text", "text": DUE_DATES[account]},
                        ],
                    },
                    {
                        "type": "button",
                        "sub_type": "url",
                        "index": "0",
                        "parameters": [{"type": "text", "text": code}],
                    },
                ],
            },
        }

    # Meta's statuses arrive, signed, out of order and twice: read/delivered for the
    # WhatsApp numbers, failed 131026 for the others, which fall back to SMS at once.
    answers = office.wa.flush_webhooks(order="reversed", duplicate=True)
    assert {a.status_code for a in answers} == {200}
    office.dispatch()
    sms = office.sms_sent()
    assert sorted(s["to"] for s in sms) == sorted(NOT_ON_WA)  # one SMS each, no more
    after = office.messages(kind="dues_reminder")
    for number, account in NOT_ON_WA.items():
        m = reminder_of(after, number)
        assert (m.medium, m.status) == (Medium.sms, MessageStatus.sent)
        assert m.channel_account_id == office.sms_account
        assert m.cost_minor == PRICE * m.segments and m.credit_state is CreditState.debited
        (payload,) = [s for s in sms if s["to"] == number]
        assert payload == {
            "to": number,
            "text": m.body,
            "reference": f"ml-{office.tenant_id}-{m.id}",
        }
        assert AMOUNTS[account] in m.body and f"{site}/p/" in m.body
        assert link_code(m.body, site) == link_code(str((m.data or {})["pay_url"]), site)
    for number in ON_WA:
        m = reminder_of(after, number)
        assert (m.medium, m.status) == (Medium.whatsapp, MessageStatus.read)
        assert m.cost_minor == 0
    (inbox,) = [m for m in after if m.to_address is None]
    assert (inbox.medium, inbox.status) == (Medium.inapp, MessageStatus.delivered)
    # The gateway's delivery reports come back (its own secret in the header).
    for r in office.sms.requests("sms"):
        answer = office.sms.send_status(
            f"{site}/api/v1/callbacks/{office.sms_account}",
            r.message_id,
            "DELIVRD",
            secret=SMS_CALLBACK_SECRET,
        )
        assert ok(answer)["applied"] == 1

    # Reachability is remembered and shown.
    with office.runtime.sessions() as s:
        reach = dict(
            s.execute(
                select(ContactPoint.value, ContactPoint.whatsapp).where(
                    ContactPoint.tenant_id == office.tenant_id
                )
            ).all()
        )
        payer_consumer = s.scalar(
            select(Account.consumer_id).where(Account.number == NOT_ON_WA[PAYER])
        )
    assert {n: str(reach[n]) for n in {**ON_WA, **NOT_ON_WA}} == {
        **dict.fromkeys(ON_WA, "yes"),
        **dict.fromkeys(NOT_ON_WA, "no"),
    }
    contacts = ok(http.get(f"/api/v1/consumers/{payer_consumer}/contacts", headers=office.operator))
    assert "no" in str(contacts["contacts"][0]["reachability"]).lower()

    # -- days later, the schedule's step: WhatsApp where it works, SMS straight away ----------
    office.clock.offset = timedelta(days=4)
    ok(http.put("/api/v1/reminders/schedule", headers=office.operator, json={"steps": [-7, 0, 3]}))
    preview2 = ok(http.post("/api/v1/reminders/preview", headers=office.operator, json={}))
    assert preview2["channel_mix"] == {"inapp": 1, "sms": 2, "whatsapp": 2}
    # The same texts (the same links) as the SMS that went out: the same cost.
    assert preview2["sms_cost_minor"] == sum(reminder_of(after, n).cost_minor for n in NOT_ON_WA)
    step = ok(http.post("/api/v1/reminders/schedule/run", headers=office.operator))
    ((run2),) = step["runs"]
    assert (run2["source"], run2["step_days"], run2["queued"]) == ("schedule", 3, 5)
    again = ok(http.post("/api/v1/reminders/schedule/run", headers=office.operator))
    assert again["runs"] == []  # the same step never twice
    second = [m for m in office.messages(kind="dues_reminder") if m.id not in {x.id for x in after}]
    for number in NOT_ON_WA:
        m = reminder_of(second, number)
        assert (m.medium, m.status) == (Medium.sms, MessageStatus.queued)
        assert m.channel_account_id == office.sms_account
    for number in ON_WA:
        assert reminder_of(second, number).medium is Medium.whatsapp

    # -- a consumer pays, before the queued reminder goes out ------------------------------
    payer_sms = reminder_of(after, PAYER)
    code = link_code(payer_sms.body, site)
    page = http.get(f"/p/{code}")
    assert page.status_code == 200 and "মোহাম্মদ করিম" in page.text
    go = http.post(f"/p/{code}/pay")
    assert go.status_code == 303
    (plink_id,) = office.rzp.links
    assert go.headers["location"] == office.rzp.links[plink_id]["short_url"]
    with office.runtime.sessions() as s:
        expires = s.scalars(select(PaymentLink.expires_at).where(PaymentLink.code == code)).one()
    assert office.rzp.requests == [
        (
            "POST",
            "/v1/payment_links",
            {
                "amount": 2500_00,
                "currency": "INR",
                "accept_partial": False,
                "reference_id": code,
                "description": "Account AL-1003, bill 2026-09",
                "customer": {"name": "মোহাম্মদ করিম", "contact": PAYER},
                "notify": {"sms": False, "email": False},
                "reminder_enable": False,
                "callback_url": f"{site}/p/{code}/return",
                "callback_method": "get",
                "expire_by": int(expires.timestamp()),
            },
        )
    ]
    _, deliveries = office.rzp.pay(
        plink_id, f"{site}/api/v1/payments/webhooks/{office.gateway}", times=3
    )
    assert sorted(ok(a)["recorded"] for a in deliveries) == [0, 0, 1]
    with office.runtime.sessions() as s:
        account = s.scalars(select(Account).where(Account.number == NOT_ON_WA[PAYER])).one()
        assert (account.dues_minor, account.balance_minor) == (0, 0)
        bill = s.scalars(select(Bill).where(Bill.account_id == account.id)).one()
        assert bill.status is BillStatus.paid
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        ledger = s.scalars(select(LedgerEntry)).all()
        assert [(e.kind, e.amount_minor) for e in ledger] == [(LedgerKind.payment, 2500_00)]
        assert s.scalar(select(PaymentLink.paid_at).where(PaymentLink.code == code)) is not None
    (confirm,) = office.messages(kind="payment_received")
    assert (confirm.to_address, confirm.status) == (PAYER, MessageStatus.queued)
    cancelled = reminder_of(second, PAYER)
    cancelled = office.messages(id=cancelled.id)[0]
    assert (cancelled.status, cancelled.error_code) == (MessageStatus.failed, "cancelled")
    assert cancelled.credit_state is CreditState.refunded

    # -- the rest goes out: no reminder to the payer, only the confirmation -------------------
    before = len(office.sms_sent())
    office.dispatch()
    office.wa.flush_webhooks()
    office.dispatch()
    new_sms = office.sms_sent()[before:]
    assert sorted(s["to"] for s in new_sms) == sorted(NOT_ON_WA)  # the other one, and the payer's
    (receipt,) = [s for s in new_sms if s["to"] == PAYER]
    confirm = office.messages(id=confirm.id)[0]
    assert receipt == {
        "to": PAYER,
        "text": confirm.body,
        "reference": f"ml-{office.tenant_id}-{confirm.id}",
    }
    # The bill is settled: nothing owed and no credit left over (not ₹2,500 "balance").
    assert "₹2,500.00 भुगतान प्राप्त" in confirm.body and "शेष ₹0.00" in confirm.body
    # The WhatsApp numbers had their second template; no SMS to them ever.
    assert len(office.wa.sends()) == 4 + 2
    assert not [s for s in office.sms_sent() if s["to"] in ON_WA]

    # -- the report ----------------------------------------------------------------------
    rows = ok(http.get("/api/v1/reminders/report", headers=office.operator))["rows"]
    report = {row["key"]: row for row in rows}
    first, later = report[str(run1["id"])], report[str(run2["id"])]
    picked = ("reminders", "sent", "delivered", "fell_back_to_sms", "clicked", "paid")
    assert {k: first[k] for k in picked} == {
        "reminders": 5,
        "sent": 5,
        "delivered": 5,
        "fell_back_to_sms": 2,
        "clicked": 1,
        "paid": 1,
    }
    assert first["paid_amount_minor"] == 2500_00
    assert first["cost_minor"] == sum(reminder_of(after, n).cost_minor for n in NOT_ON_WA)
    assert 0 < first["cost_minor"] < worst
    assert later["cancelled"] == 1 and later["fell_back_to_sms"] == 0
    with office.runtime.sessions() as s:
        totals = credit.totals(s, office.tenant_id)
        spent = s.scalar(
            select(func.coalesce(func.sum(Message.cost_minor), 0)).where(
                Message.credit_state == CreditState.debited
            )
        )
    assert totals.balance_minor == 100_00 - spent and totals.held_minor == 0
    # Every attempt of the payer's first reminder is on its page: WhatsApp accepted, Meta's
    # 131026 (and its repeat), the number remembered, the move to SMS, the SMS delivered.
    page = ok(http.get(f"/api/v1/messages/{payer_sms.id}", headers=office.operator))
    wa_id, sms_id = office.wa_account, office.sms_account
    assert [(e["event"], e["status"], e["channel_account_id"]) for e in page["events"]] == [
        ("attempt", "sent", wa_id),
        ("status", "failed", wa_id),
        ("unreachable", None, wa_id),
        ("fallback", "queued", sms_id),
        ("status_earlier_step", "failed", wa_id),
        ("attempt", "sent", sms_id),
        ("status", "delivered", sms_id),
    ]
