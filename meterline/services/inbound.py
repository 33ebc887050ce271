"""Messages recipients send us (WhatsApp replies), applied to their contact points.

A customer's WhatsApp message opens Meta's 24-hour customer-service window, in which we
may answer with free text instead of a paid template, and proves the number is on
WhatsApp. Each one is recorded on every phone contact point of the tenant with that
number: ``details["wa_last_inbound_at"]`` (ISO UTC; the latest wins, so a replayed or
late webhook never moves it back) and ``whatsapp = yes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.channels.base import InboundMessage
from meterline.channels.whatsapp_cloud import LAST_INBOUND
from meterline.domain.enums import ContactKind, Medium, Reachability
from meterline.store.models import ChannelAccount, ContactPoint

log = structlog.get_logger("meterline.inbound")


@dataclass
class InboundReport:
    applied: int = 0  # contact points whose record changed
    unchanged: int = 0  # already as recent (a replay, or an older message late)
    unknown: list[str] = field(default_factory=list)  # senders with no contact point


def _as_utc(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def apply_inbound(
    session: Session, account: ChannelAccount, messages: list[InboundMessage], now: datetime
) -> InboundReport:
    """Record each message's time on the sender's phone contact points (this tenant's only)."""
    report = InboundReport()
    if account.medium != Medium.whatsapp:
        return report  # only WhatsApp has a window to track so far
    latest: dict[str, datetime] = {}
    for message in messages:
        at = (message.at or now).astimezone(UTC)
        if message.sender not in latest or at > latest[message.sender]:
            latest[message.sender] = at
    for sender in sorted(latest):  # a fixed order: concurrent webhooks lock alike
        at = latest[sender]
        points = session.scalars(
            select(ContactPoint)
            .where(
                ContactPoint.tenant_id == account.tenant_id,
                ContactPoint.kind == ContactKind.phone,
                ContactPoint.value == sender,
            )
            .order_by(ContactPoint.id)
            .with_for_update()
        ).all()
        if not points:
            report.unknown.append(sender)
            log.info(
                "inbound message from a number we do not know",
                channel_account_id=account.id,
                sender=sender,
            )
            continue
        for point in points:
            details = dict(point.details or {})
            known = _as_utc(details.get(LAST_INBOUND))
            changed = False
            if known is None or at > known:
                details[LAST_INBOUND] = at.isoformat()
                point.details = details  # a new dict: the JSON column sees the change
                changed = True
            if point.whatsapp != Reachability.yes:
                point.whatsapp = Reachability.yes
                changed = True
            if changed:
                report.applied += 1
            else:
                report.unchanged += 1
    session.flush()
    return report
