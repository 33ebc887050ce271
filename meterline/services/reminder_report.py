"""What reminder runs achieved, per run and per day: sent, delivered, read, failed, fell
back to SMS, cancelled (paid first), clicked, paid (count and amount) and cost.

Counted from the run's items (one per reminded bill) and their message, payment link and
payments: a payment counts for a reminder when it is for the reminded bill and came after
the reminder was queued. "Fell back to SMS" counts messages with a ``fallback`` event (the
routing work records one per channel change); "cost" is what the messages cost, holds
given back for cancelled or refused messages excluded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from meterline.domain.enums import CreditState, MessageStatus
from meterline.services.fallback import FALLBACK_EVENT
from meterline.services.payments import CANCELLED_CODE
from meterline.store.models import (
    Message,
    MessageEvent,
    Payment,
    PaymentLink,
    ReminderItem,
    ReminderRun,
)


@dataclass
class ReportRow:
    key: str  # the run id, or the day (ISO date in the tenant's time zone)
    reminders: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    cancelled: int = 0
    fell_back_to_sms: int = 0
    clicked: int = 0
    paid: int = 0
    paid_amount_minor: int = 0
    cost_minor: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SENT = {MessageStatus.sent, MessageStatus.delivered, MessageStatus.read}
_DELIVERED = {MessageStatus.delivered, MessageStatus.read}


def _items(session: Session, tenant_id: int, run_ids: list[int] | None, since: Any = None) -> Any:
    paid = (
        select(func.count(Payment.id), func.coalesce(func.sum(Payment.amount_minor), 0))
        .where(
            Payment.tenant_id == tenant_id,
            Payment.bill_id == ReminderItem.bill_id,
            Payment.created_at >= ReminderItem.created_at,
        )
        .correlate(ReminderItem)
    )
    fell_back = exists().where(
        MessageEvent.message_id == ReminderItem.message_id, MessageEvent.event == FALLBACK_EVENT
    )
    stmt = (
        select(
            ReminderItem.run_id,
            ReminderItem.created_at,
            Message.status,
            Message.read_at,
            Message.error_code,
            Message.cost_minor,
            Message.credit_state,
            PaymentLink.clicks,
            paid.with_only_columns(func.count(Payment.id)).scalar_subquery(),
            paid.with_only_columns(
                func.coalesce(func.sum(Payment.amount_minor), 0)
            ).scalar_subquery(),
            fell_back,
            ReminderItem.bill_id,
        )
        .outerjoin(Message, Message.id == ReminderItem.message_id)
        .outerjoin(PaymentLink, PaymentLink.id == ReminderItem.link_id)
        .where(ReminderItem.tenant_id == tenant_id)
    )
    if run_ids is not None:
        stmt = stmt.where(ReminderItem.run_id.in_(run_ids))
    if since is not None:
        stmt = stmt.where(ReminderItem.created_at >= since)
    return session.execute(stmt)


def _aggregate(rows: Iterable[Any], key_of: Callable[[Any], Hashable]) -> dict[Hashable, ReportRow]:
    out: dict[Hashable, ReportRow] = {}
    # A bill reminded twice under one key (a run and a schedule step the same day) was
    # still paid once: its payment counts once per key.
    paid_bills: set[tuple[Hashable, int]] = set()
    for row in rows:
        (_run, _at, status, read_at, error, cost, credit, clicks, n_paid, paid_amount, fb) = row[
            :11
        ]
        bill_id = row[11]
        key = key_of(row)
        r = out.setdefault(key, ReportRow(str(key)))
        r.reminders += 1
        if status in _SENT:
            r.sent += 1
        if status in _DELIVERED:
            r.delivered += 1
        if status is MessageStatus.read or read_at is not None:
            r.read += 1
        if status is MessageStatus.failed:
            if error == CANCELLED_CODE:
                r.cancelled += 1
            else:
                r.failed += 1
        if fb:
            r.fell_back_to_sms += 1
        if clicks:
            r.clicked += 1
        if n_paid and (key, bill_id) not in paid_bills:
            paid_bills.add((key, bill_id))
            r.paid += 1
            r.paid_amount_minor += int(paid_amount)
        if cost and credit is not CreditState.refunded:
            r.cost_minor += int(cost)
    return out


def by_run(session: Session, tenant_id: int, run_ids: list[int]) -> list[ReportRow]:
    """One row per run in `run_ids` (a run with no items has zeros)."""
    found = _aggregate(_items(session, tenant_id, run_ids), lambda row: row[0])
    return [found.get(run_id, ReportRow(str(run_id))) for run_id in run_ids]


def by_day(
    session: Session, tenant_id: int, timezone: str, *, since: date | None = None
) -> list[ReportRow]:
    """One row per day (in the tenant's time zone) on which reminders were queued."""
    tz = ZoneInfo(timezone)
    rows = _items(session, tenant_id, None)
    found = _aggregate(rows, lambda row: row[1].astimezone(tz).date().isoformat())
    days = sorted(found, key=str, reverse=True)
    out = [found[d] for d in days]
    if since is not None:
        out = [r for r in out if r.key >= since.isoformat()]
    return out


def to_csv(rows: list[ReportRow], key_name: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = [f.name for f in fields(ReportRow)]
    writer.writerow([key_name, *names[1:]])
    for r in rows:
        writer.writerow([getattr(r, n) for n in names])
    return buf.getvalue()


def runs_with_report(
    session: Session, tenant_id: int, limit: int = 50
) -> list[tuple[ReminderRun, ReportRow]]:
    runs = list(
        session.scalars(
            select(ReminderRun)
            .where(ReminderRun.tenant_id == tenant_id)
            .order_by(ReminderRun.created_at.desc(), ReminderRun.id.desc())
            .limit(limit)
        )
    )
    rows = by_run(session, tenant_id, [r.id for r in runs])
    return list(zip(runs, rows, strict=True))
