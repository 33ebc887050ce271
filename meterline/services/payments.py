"""Payment links and payments: a signed short link for a bill, its pay page, the hand-over
to the tenant's gateway, and recording what the gateway reports, once.

A bill is marked paid only from a verified webhook or a server-side status check, never
from the browser coming back. Each gateway payment is one row, unique on (gateway,
payment id), written with INSERT ... ON CONFLICT DO NOTHING: the same event delivered three
times at once credits once. The ledger entry (via `record_transaction`, external reference
``<gateway type>:<payment id>``), the bill's status, the confirmation to the consumer
(``payment_received``) and the cancellation of the bill's queued reminders commit in the
caller's one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from meterline.domain import payment_links as links
from meterline.domain.enums import BillStatus, CreditState, LedgerKind, MessageStatus
from meterline.payments.base import (
    BadWebhook,
    CallbackRequest,
    CheckoutRequest,
    ForgedWebhook,
    Gateway,
    GatewayError,
    PaymentEvent,
)
from meterline.payments.registry import GATEWAY_TYPES, GatewayConfigError, build_gateway
from meterline.services import credit
from meterline.services.errors import Conflict, NotFound, ServiceError
from meterline.services.transactions import record_transaction
from meterline.store.models import (
    Account,
    Bill,
    Consumer,
    ContactPoint,
    Message,
    Payment,
    PaymentGateway,
    PaymentLink,
    Tenant,
)
from meterline.store.upsert import insert_or_nothing

log = structlog.get_logger("meterline.payments")

DEFAULT_TTL = timedelta(days=30)
# A reminder reuses a bill's live link only if it stays valid this long after sending.
REUSE_MARGIN = timedelta(days=3)
CANCELLED_CODE = "cancelled"


class LinkRefused(ServiceError):
    """A payment link that cannot be used: `status` is the HTTP status, `reason` a key
    (unknown, expired, tampered, cancelled) the pay page translates."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class PaymentRefused(ServiceError):
    """A gateway's report that is not recorded (unknown link, wrong amount ...): `status`
    is the HTTP status the webhook answers."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- gateway accounts ----------------------------------------------------------------------


def add_gateway(
    session: Session,
    tenant_id: int,
    *,
    name: str,
    type_name: str,
    config: dict[str, Any],
    is_default: bool = True,
) -> PaymentGateway:
    if type_name not in GATEWAY_TYPES:
        raise ServiceError(
            f"unknown gateway type {type_name!r}; known: {', '.join(sorted(GATEWAY_TYPES))}"
        )
    try:
        build_gateway(type_name, config)  # checks the settings and that env: secrets exist
    except GatewayConfigError as exc:
        raise ServiceError(f"gateway {name!r}: {exc}") from None
    exists = session.scalar(
        select(PaymentGateway.id).where(
            PaymentGateway.tenant_id == tenant_id, PaymentGateway.name == name
        )
    )
    if exists is not None:
        raise Conflict(f"payment gateway {name!r} already exists")
    if is_default:
        session.execute(
            update(PaymentGateway)
            .where(PaymentGateway.tenant_id == tenant_id)
            .values(is_default=False)
        )
    row = PaymentGateway(
        tenant_id=tenant_id, name=name, type_name=type_name, config=config, is_default=is_default
    )
    session.add(row)
    session.flush()
    return row


def list_gateways(session: Session, tenant_id: int) -> list[PaymentGateway]:
    return list(
        session.scalars(
            select(PaymentGateway)
            .where(PaymentGateway.tenant_id == tenant_id)
            .order_by(PaymentGateway.name)
        )
    )


def gateway_view(row: PaymentGateway) -> dict[str, Any]:
    """What the API shows: never the settings' values (they hold secrets)."""
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type_name,
        "is_default": row.is_default,
        "settings": sorted((row.config or {}).keys()),
    }


def default_gateway(session: Session, tenant_id: int) -> PaymentGateway | None:
    return session.scalar(
        select(PaymentGateway).where(
            PaymentGateway.tenant_id == tenant_id, PaymentGateway.is_default.is_(True)
        )
    )


def gateway_for(row: PaymentGateway, http: httpx.Client | None = None) -> Gateway:
    try:
        return build_gateway(row.type_name, dict(row.config or {}), http)
    except GatewayConfigError as exc:
        raise ServiceError(f"payment gateway {row.name!r}: {exc}") from None


# --- links ---------------------------------------------------------------------------------


def link_key(app_secret: str) -> bytes:
    try:
        return links.derive_key(app_secret)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None


def link_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/p/{code}"


def _fields(link: PaymentLink) -> links.LinkFields:
    return links.LinkFields(
        link.tenant_id,
        link.code,
        link.account_id,
        link.bill_id,
        link.amount_minor,
        link.currency,
        link.expires_at,
    )


def create_link(
    session: Session,
    tenant: Tenant,
    bill_id: int,
    *,
    now: datetime,
    key: bytes,
    ttl: timedelta = DEFAULT_TTL,
    reuse: bool = True,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> PaymentLink:
    """A link to pay bill `bill_id` (of `tenant`) its amount; with `reuse`, the bill's
    live link for the same amount if it stays valid long enough."""
    bill = session.scalar(select(Bill).where(Bill.id == bill_id, Bill.tenant_id == tenant.id))
    if bill is None:
        raise NotFound(f"no bill {bill_id}")
    if bill.status is not BillStatus.open:
        raise Conflict(f"bill {bill_id} is {bill.status.value}: there is nothing to pay")
    if bill.amount_minor <= 0:
        raise ServiceError(f"bill {bill_id} has no amount to pay")
    if ttl <= timedelta(minutes=20):
        raise ServiceError("a payment link must stay valid longer than 20 minutes")
    if reuse:
        live = session.scalar(
            select(PaymentLink)
            .where(
                PaymentLink.tenant_id == tenant.id,
                PaymentLink.bill_id == bill.id,
                PaymentLink.amount_minor == bill.amount_minor,
                PaymentLink.expires_at > now + min(REUSE_MARGIN, ttl),
                PaymentLink.paid_at.is_(None),
            )
            .order_by(PaymentLink.expires_at.desc())
            .limit(1)
        )
        if live is not None and links.verify(key, _fields(live), live.signature):
            return live
    gateway = default_gateway(session, tenant.id)
    link = PaymentLink(
        tenant_id=tenant.id,
        code=links.new_code(random_bytes),
        account_id=bill.account_id,
        bill_id=bill.id,
        amount_minor=bill.amount_minor,
        currency=tenant.currency,
        expires_at=(now + ttl).replace(microsecond=0),
        signature="",
        gateway_id=gateway.id if gateway else None,
        clicks=0,
        created_at=now,
    )
    link.signature = links.sign(key, _fields(link))
    session.add(link)
    session.flush()
    return link


@dataclass(frozen=True)
class PayPage:
    """What the pay page shows."""

    code: str
    tenant: Tenant
    consumer_name: str
    consumer_language: str
    account_number: str
    period: str
    amount_minor: int
    currency: str
    due_date: date | None
    expires_at: datetime
    paid: bool
    gateway_type: str | None
    clicks: int


def _load(session: Session, code: str) -> PaymentLink:
    if not links.is_code(code):
        raise LinkRefused(f"{code!r} is not a payment link", status=404, reason="unknown")
    link = session.scalar(select(PaymentLink).where(PaymentLink.code == code))
    if link is None:
        raise LinkRefused(f"no payment link {code!r}", status=404, reason="unknown")
    return link


def verified_link(
    session: Session, code: str, *, now: datetime, key: bytes, tenant_id: int | None = None
) -> PaymentLink:
    """The link `code` if its signature holds (and it is `tenant_id`'s, when given);
    expiry is checked by the caller (a paid link may still be shown after it expires)."""
    link = _load(session, code)
    if tenant_id is not None and link.tenant_id != tenant_id:
        raise LinkRefused(f"no payment link {code!r}", status=404, reason="unknown")
    if not links.verify(key, _fields(link), link.signature):
        raise LinkRefused(
            f"payment link {code!r} does not match its signature (altered): refused",
            status=403,
            reason="tampered",
        )
    return link


def _usable(session: Session, link: PaymentLink, now: datetime) -> tuple[Bill, bool]:
    bill = session.get(Bill, link.bill_id)
    assert bill is not None
    paid = link.paid_at is not None or bill.status is BillStatus.paid
    if not paid:
        if bill.status is BillStatus.cancelled:
            raise LinkRefused(
                f"the bill of payment link {link.code!r} was cancelled",
                status=410,
                reason="cancelled",
            )
        if link.expires_at <= now:
            raise LinkRefused(f"payment link {link.code!r} expired", status=410, reason="expired")
    return bill, paid


def open_link(
    session: Session, code: str, *, now: datetime, key: bytes, count_click: bool = True
) -> PayPage:
    """The pay page for `code`, the click recorded (in the caller's transaction)."""
    link = verified_link(session, code, now=now, key=key)
    bill, paid = _usable(session, link, now)
    if count_click:
        session.execute(
            update(PaymentLink)
            .where(PaymentLink.id == link.id)
            .values(
                clicks=PaymentLink.clicks + 1,
                last_clicked_at=now,
                first_clicked_at=func.coalesce(PaymentLink.first_clicked_at, now),
            )
        )
        session.refresh(link)
    row = session.execute(
        select(Account.number, Consumer.name, Consumer.preferred_language)
        .join(Consumer, Consumer.id == Account.consumer_id)
        .where(Account.id == link.account_id)
    ).one()
    tenant = session.get(Tenant, link.tenant_id)
    assert tenant is not None
    gateway = (
        session.get(PaymentGateway, link.gateway_id)
        if link.gateway_id
        else default_gateway(session, link.tenant_id)  # set up after the link was made
    )
    return PayPage(
        code=link.code,
        tenant=tenant,
        consumer_name=row.name,
        consumer_language=row.preferred_language,
        account_number=row.number,
        period=bill.period,
        amount_minor=link.amount_minor,
        currency=link.currency,
        due_date=bill.due_date,
        expires_at=link.expires_at,
        paid=paid,
        gateway_type=gateway.type_name if gateway else None,
        clicks=link.clicks,
    )


def start_checkout(
    session: Session,
    code: str,
    *,
    now: datetime,
    key: bytes,
    site_url: str,
    http: httpx.Client | None,
) -> str:
    """Where to send the consumer's browser to pay: the gateway's checkout for the link
    (created once, then reused)."""
    link = verified_link(session, code, now=now, key=key)
    _, paid = _usable(session, link, now)
    if paid:
        raise LinkRefused(f"payment link {code!r} is already paid", status=409, reason="paid")
    if link.gateway_id is None:
        row = default_gateway(session, link.tenant_id)
        if row is None:
            raise ServiceError("this utility has not set up online payment yet")
        link.gateway_id = row.id
    row = session.get(PaymentGateway, link.gateway_id)
    assert row is not None
    if link.provider_url:
        return link.provider_url
    consumer = session.execute(
        select(Consumer.name, Consumer.id)
        .join(Account, Account.consumer_id == Consumer.id)
        .where(Account.id == link.account_id)
    ).one()
    phone = session.scalar(
        select(ContactPoint.value)
        .where(ContactPoint.consumer_id == consumer.id, ContactPoint.kind == "phone")
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.id)
        .limit(1)
    )
    bill = session.get(Bill, link.bill_id)
    account = session.get(Account, link.account_id)
    assert bill is not None and account is not None
    gateway = gateway_for(row, http)
    try:
        checkout = gateway.create_checkout(
            CheckoutRequest(
                reference=link.code,
                amount_minor=link.amount_minor,
                currency=link.currency,
                description=f"Account {account.number}, bill {bill.period}",
                customer_name=consumer.name,
                customer_phone=phone,
                return_url=f"{link_url(site_url, link.code)}/return",
                site_url=site_url,
                expires_at=link.expires_at,
            )
        )
    except GatewayError as exc:
        raise ServiceError(f"the payment gateway did not open a checkout: {exc.message}") from None
    link.provider_ref, link.provider_url = checkout.provider_ref, checkout.url
    session.flush()
    return checkout.url


# --- recording payments --------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    payment_id: int
    created: bool  # False: this gateway payment was recorded before (a repeated delivery)
    link_code: str
    bill_id: int
    amount_minor: int
    ledger_entry_id: int | None
    confirmation_message_id: int | None
    cancelled_reminders: int


@dataclass
class WebhookReport:
    recorded: list[Recorded] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": sum(1 for r in self.recorded if r.created),
            "duplicates": sum(1 for r in self.recorded if not r.created),
            "payments": [
                {
                    "payment_id": r.payment_id,
                    "link": r.link_code,
                    "bill_id": r.bill_id,
                    "amount_minor": r.amount_minor,
                    "created": r.created,
                }
                for r in self.recorded
            ],
        }


def _link_for_event(session: Session, gateway: PaymentGateway, event: PaymentEvent) -> PaymentLink:
    link = None
    if event.reference and links.is_code(event.reference):
        link = session.scalar(
            select(PaymentLink).where(
                PaymentLink.code == event.reference, PaymentLink.tenant_id == gateway.tenant_id
            )
        )
    if link is None and event.provider_ref:
        link = session.scalar(
            select(PaymentLink).where(
                PaymentLink.gateway_id == gateway.id, PaymentLink.provider_ref == event.provider_ref
            )
        )
    if link is None:
        # Another tenant's link is as unknown to this gateway account as a made-up one.
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: no payment link {event.reference!r}"
            f" (checkout {event.provider_ref!r}) for this gateway's tenant; nothing recorded",
            status=404,
        )
    if link.provider_ref and event.provider_ref and link.provider_ref != event.provider_ref:
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: checkout {event.provider_ref!r} is not the"
            f" one opened for link {link.code!r}; nothing recorded",
            status=409,
        )
    return link


def record_payment(
    session: Session,
    gateway: PaymentGateway,
    event: PaymentEvent,
    *,
    source: str,
    now: datetime,
    key: bytes,
) -> Recorded:
    """Record one captured payment in the caller's transaction (which must roll back if
    this raises)."""
    link = _link_for_event(session, gateway, event)
    if not links.verify(key, _fields(link), link.signature):
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: link {link.code!r} was altered; nothing"
            " recorded",
            status=409,
        )
    if (event.amount_minor, event.currency.upper()) != (link.amount_minor, link.currency):
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: amount {event.amount_minor} {event.currency}"
            f" is not the link's {link.amount_minor} {link.currency} (minor units); nothing"
            " recorded",
            status=409,
        )
    new_id = session.execute(
        insert_or_nothing(session, Payment)
        .values(
            tenant_id=link.tenant_id,
            gateway_id=gateway.id,
            provider_payment_id=event.provider_payment_id,
            link_id=link.id,
            bill_id=link.bill_id,
            account_id=link.account_id,
            amount_minor=event.amount_minor,
            currency=link.currency,
            source=source,
            created_at=now,
        )
        .returning(Payment.id)
    ).scalar_one_or_none()
    if new_id is None:  # delivered before (or at the same time, and that one committed)
        old = session.scalar(
            select(Payment).where(
                Payment.gateway_id == gateway.id,
                Payment.provider_payment_id == event.provider_payment_id,
            )
        )
        assert old is not None
        if old.link_id != link.id or old.amount_minor != event.amount_minor:
            raise PaymentRefused(
                f"payment {event.provider_payment_id} was recorded before for another link or"
                " amount; nothing recorded",
                status=409,
            )
        return Recorded(
            old.id, False, link.code, old.bill_id, old.amount_minor, old.ledger_entry_id, None, 0
        )
    bill = session.get(Bill, link.bill_id)
    assert bill is not None
    if bill.status is not BillStatus.open:
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: bill {bill.period} is already"
            f" {bill.status.value}; nothing recorded (refund it at the gateway or record it"
            " by hand)",
            status=409,
        )
    tenant = session.get(Tenant, link.tenant_id)
    account = session.get(Account, link.account_id)
    assert tenant is not None and account is not None
    result = record_transaction(
        session,
        tenant,
        account_number=account.number,
        kind=LedgerKind.payment,
        amount_minor=event.amount_minor,
        reference=f"{gateway.type_name}:{event.provider_payment_id}",
        now=now,
        note=f"bill {bill.period}, payment link {link.code}",
    )
    if not result.created:
        raise PaymentRefused(
            f"payment {event.provider_payment_id}: its ledger reference was used before;"
            " nothing recorded",
            status=409,
        )
    bill.status = BillStatus.paid
    bill.updated_at = now
    link.paid_at = now
    session.execute(
        update(Payment).where(Payment.id == new_id).values(ledger_entry_id=result.entry_id)
    )
    cancelled = cancel_bill_reminders(session, tenant.id, bill.id, now=now)
    return Recorded(
        new_id,
        True,
        link.code,
        bill.id,
        event.amount_minor,
        result.entry_id,
        result.message.message_id if result.message else None,
        cancelled,
    )


def cancel_bill_reminders(session: Session, tenant_id: int, bill_id: int, *, now: datetime) -> int:
    """The bill's reminders still waiting to be sent end as failed ("cancelled": the bill
    was paid) and give back their credit hold. One a worker already holds goes on."""
    rows = session.execute(
        update(Message)
        .where(
            Message.tenant_id == tenant_id,
            Message.bill_id == bill_id,
            Message.status == MessageStatus.queued,
        )
        .values(
            status=MessageStatus.failed,
            due_at=None,
            failed_at=now,
            updated_at=now,
            error_code=CANCELLED_CODE,
            error_text="bill paid: reminder cancelled before sending",
        )
        .returning(Message.id, Message.credit_state, Message.cost_minor)
    ).all()
    held = [(mid, cost) for mid, state, cost in rows if state is CreditState.held]
    if held:
        session.execute(
            update(Message)
            .where(Message.id.in_([mid for mid, _ in held]))
            .values(credit_state=CreditState.refunded)
        )
        credit.settle(
            session,
            tenant_id,
            debit_minor=0,
            debit_messages=0,
            release_minor=sum(cost for _, cost in held),
            release_messages=len(held),
        )
    return len(rows)


def handle_webhook(
    session: Session, gateway_id: int, request: CallbackRequest, *, now: datetime, key: bytes
) -> WebhookReport:
    """A gateway's webhook: signature checked over the raw body, each captured payment
    recorded once. Raises PaymentRefused (with the HTTP status to answer)."""
    row = session.get(PaymentGateway, gateway_id)
    if row is None:
        raise PaymentRefused(f"no payment gateway {gateway_id}", status=404)
    gateway = gateway_for(row)
    try:
        events = gateway.parse_webhook(request)
    except ForgedWebhook as exc:
        log.warning("payment webhook forged", gateway_id=gateway_id, reason=str(exc))
        raise PaymentRefused(f"forged webhook: {exc}", status=403) from None
    except BadWebhook as exc:
        log.warning("payment webhook unreadable", gateway_id=gateway_id, reason=str(exc))
        raise PaymentRefused(f"bad webhook: {exc}", status=400) from None
    report = WebhookReport()
    for event in events:
        try:
            recorded = record_payment(session, row, event, source="webhook", now=now, key=key)
        except PaymentRefused as exc:
            # Said once here for the operator; the gateway gets the same text and retries.
            log.warning(
                "payment webhook refused",
                gateway_id=gateway_id,
                status=exc.status,
                reason=exc.message,
            )
            raise
        report.recorded.append(recorded)
    return report


def check_status(
    session: Session,
    code: str,
    *,
    now: datetime,
    key: bytes,
    http: httpx.Client | None,
    tenant_id: int | None = None,
) -> WebhookReport:
    """Ask the gateway, server to server, what was paid on the link's checkout, and record
    it (what the browser's return triggers; the return's query string is never trusted)."""
    link = verified_link(session, code, now=now, key=key, tenant_id=tenant_id)
    report = WebhookReport()
    if link.gateway_id is None or link.provider_ref is None:
        return report  # no checkout was opened: nothing can have been paid
    row = session.get(PaymentGateway, link.gateway_id)
    assert row is not None
    try:
        events = gateway_for(row, http).fetch_status(link.provider_ref)
    except GatewayError as exc:
        raise ServiceError(f"the payment gateway did not answer: {exc.message}") from None
    for event in events:
        report.recorded.append(
            record_payment(session, row, event, source="status_check", now=now, key=key)
        )
    return report


def link_view(link: PaymentLink, public_url: str) -> dict[str, Any]:
    return {
        "code": link.code,
        "url": link_url(public_url, link.code),
        "bill_id": link.bill_id,
        "account_id": link.account_id,
        "amount_minor": link.amount_minor,
        "currency": link.currency,
        "expires_at": link.expires_at.isoformat(),
        "clicks": link.clicks,
        "first_clicked_at": link.first_clicked_at.isoformat() if link.first_clicked_at else None,
        "last_clicked_at": link.last_clicked_at.isoformat() if link.last_clicked_at else None,
        "paid_at": link.paid_at.isoformat() if link.paid_at else None,
        "checkout": link.provider_ref,
    }
