"""A small prepaid fleet for the smart-meter event tests: an Indian utility with Hindi and
English consumers, their accounts (sanctioned loads), meters, phones and a sandbox SMS
channel with credit; plus another tenant for the isolation checks."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.domain.enums import Billing, Role, Service
from meterline.services import credit
from meterline.services.channel_accounts import add_channel_account
from meterline.services.security import create_api_key
from meterline.services.tenants import create_tenant
from meterline.store.models import Account, Consumer, ContactPoint, Meter, MeterState


@dataclass
class Fleet:
    tenant_id: int
    other_tenant_id: int
    keys: dict[str, str]  # role name -> API key; "other" = the other tenant's operator


def add_meter(
    s: Session,
    tenant_id: int,
    *,
    serial: str,
    account: str,
    name: str,
    language: str,
    phone: str | None,
    kind: Service = Service.electricity,
    sanctioned_kw: str | None = "5",
) -> Meter:
    consumer = Consumer(tenant_id=tenant_id, name=name, preferred_language=language)
    s.add(consumer)
    s.flush()
    if phone:
        s.add(
            ContactPoint(
                tenant_id=tenant_id,
                consumer_id=consumer.id,
                kind="phone",
                value=phone,
                is_primary=True,
            )
        )
    acct = Account(
        tenant_id=tenant_id,
        consumer_id=consumer.id,
        number=account,
        service=kind,
        billing=Billing.prepaid,
        sanctioned_load_kw=Decimal(sanctioned_kw) if sanctioned_kw else None,
    )
    s.add(acct)
    s.flush()
    meter = Meter(tenant_id=tenant_id, account_id=acct.id, serial=serial, kind=kind)
    s.add(meter)
    s.flush()
    return meter


def make_fleet(s: Session) -> Fleet:
    t = create_tenant(
        s, slug="jaipur", name="JVVNL", country="IN", currency="INR", timezone="Asia/Kolkata"
    )
    add_channel_account(s, t.id, name="sandbox", type_name="sandbox", config={})
    credit.set_pricing(s, t.id, sms_price_minor=20)
    credit.top_up(s, t.id, 1000_00, by="test")
    add_meter(
        s, t.id, serial="SN-1", account="AC-1", name="Ramesh", language="hi", phone="+919812345678"
    )
    add_meter(
        s, t.id, serial="SN-2", account="AC-2", name="Anita", language="en", phone="+919812345679"
    )
    add_meter(
        s,
        t.id,
        serial="W-1",
        account="AC-3",
        name="Suresh",
        language="hi",
        phone="+919812345670",
        kind=Service.water,
        sanctioned_kw=None,
    )
    keys = {}
    for role in (Role.viewer, Role.operator, Role.admin):
        _, keys[role.value] = create_api_key(s, t, f"meters-{role.value}", role)
    other = create_tenant(
        s, slug="dhaka", name="DESCO", country="BD", currency="BDT", timezone="Asia/Dhaka"
    )
    add_meter(
        s,
        other.id,
        serial="SN-1",
        account="B-1",
        name="Karim",
        language="bn",
        phone="+8801712345678",
    )
    _, keys["other"] = create_api_key(s, other, "meters", Role.operator)
    return Fleet(t.id, other.id, keys)


def balances_by_serial(s: Session, serial_like: str) -> dict[str, int | None]:
    """The stored balance of each meter whose serial matches `serial_like` (SQL LIKE)."""
    rows = s.execute(
        select(Meter.serial, MeterState.balance_minor)
        .join(MeterState, MeterState.meter_id == Meter.id)
        .where(Meter.serial.like(serial_like))
    ).all()
    return {serial: balance for serial, balance in rows}
