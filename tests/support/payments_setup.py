"""A tenant with defaulters, an SMS channel, credit and payment gateways, for the payments
and reminders tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from meterline.domain.enums import Billing, BillStatus, ContactKind, Reachability, Role, Service
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.security import create_api_key, create_operator
from meterline.services.tenants import create_tenant
from meterline.store.models import Account, Area, Bill, Consumer, ContactPoint, Tenant

SANDBOX_SECRET = "sandbox-webhook-secret"


@dataclass
class Utility:
    tenant_id: int
    operator_key: str
    viewer_key: str
    admin_key: str
    other_key: str
    other_tenant_id: int
    bills: dict[str, int]  # account number -> open bill id
    accounts: dict[str, int]


def make_utility(session: Session, *, due: date = date(2026, 11, 10)) -> Utility:
    t = create_tenant(
        session,
        slug="aligarh",
        name="Aligarh Electricity Office",
        country="IN",
        currency="INR",
        timezone="Asia/Kolkata",
        languages=["hi", "en", "bn", "ru"],
    )
    north = Area(tenant_id=t.id, level="division", name="North", path="Aligarh / North")
    south = Area(tenant_id=t.id, level="division", name="South", path="Aligarh / South")
    session.add_all([north, south])
    session.flush()
    people = [
        # number, name, language, phone, whatsapp, dues, area
        ("AL-001", "राम कुमार", "hi", "+919876500001", Reachability.yes, 1250_50, north),
        ("AL-002", "Sita Devi", "en", "+919876500002", Reachability.no, 800_00, north),
        ("AL-003", "Анна Иванова", "ru", "+919876500003", Reachability.unknown, 3000_00, south),
        ("AL-004", "রহিম উদ্দিন", "bn", None, Reachability.unknown, 450_00, south),
    ]
    bills, accounts = {}, {}
    for number, name, lang, phone, wa, dues, area in people:
        c = Consumer(tenant_id=t.id, name=name, preferred_language=lang)
        session.add(c)
        session.flush()
        if phone:
            session.add(
                ContactPoint(
                    tenant_id=t.id,
                    consumer_id=c.id,
                    kind=ContactKind.phone,
                    value=phone,
                    is_primary=True,
                    whatsapp=wa,
                )
            )
        a = Account(
            tenant_id=t.id,
            consumer_id=c.id,
            number=number,
            service=Service.electricity,
            billing=Billing.postpaid,
            area_id=area.id,
            dues_minor=dues,
            due_date=due,
            balance_minor=0,
        )
        session.add(a)
        session.flush()
        b = Bill(
            tenant_id=t.id,
            account_id=a.id,
            period=due.strftime("%Y-%m"),
            amount_minor=dues,
            due_date=due,
            status=BillStatus.open,
        )
        session.add(b)
        session.flush()
        bills[number], accounts[number] = b.id, a.id
    add_channel_account(session, t.id, name="sms", type_name="sandbox", config={})
    credit.set_pricing(session, t.id, sms_price_minor=25)
    credit.top_up(session, t.id, 1000_00, by="test")
    _, op_key = create_api_key(session, t, "billing", Role.operator)
    _, viewer_key = create_api_key(session, t, "reader", Role.viewer)
    _, admin_key = create_api_key(session, t, "admin", Role.admin)
    create_operator(session, t, "asha", "asha-password", Role.operator, language="en")
    other = create_tenant(
        session, slug="other", name="Other", country="IN", currency="INR", timezone="Asia/Kolkata"
    )
    _, other_key = create_api_key(session, other, "x", Role.operator)
    return Utility(t.id, op_key, viewer_key, admin_key, other_key, other.id, bills, accounts)


def tenant_of(session: Session, utility: Utility) -> Tenant:
    t = session.get(Tenant, utility.tenant_id)
    assert t is not None
    return t
