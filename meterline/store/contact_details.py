"""The recipient contact point's ``details`` for messages a worker is about to send.

Adapters get them in ``OutboundMessage.extra["details"]`` (a push subscription's keys, the
time of the customer's last WhatsApp message ...). One query per claimed batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meterline.domain.enums import ContactKind, Medium
from meterline.store.models import ContactPoint
from meterline.store.outbox import Claimed

KIND_OF_MEDIUM = {
    Medium.sms: ContactKind.phone,
    Medium.whatsapp: ContactKind.phone,
    Medium.telegram: ContactKind.telegram,
    Medium.webpush: ContactKind.webpush,
}


def contact_details(
    session: Session, medium: Medium, claimed: Sequence[Claimed]
) -> dict[int, dict[str, Any]]:
    """Message id -> its recipient's contact details (the consumer's own contact point
    with that address first, else any of the tenant's with it); absent when none."""
    kind = KIND_OF_MEDIUM.get(medium)
    if kind is None or not claimed:
        return {}
    tenant_ids = {c.tenant_id for c in claimed}
    values = {c.to_address for c in claimed if c.to_address}
    if not values:
        return {}
    rows = session.execute(
        select(
            ContactPoint.tenant_id,
            ContactPoint.consumer_id,
            ContactPoint.value,
            ContactPoint.details,
        ).where(
            ContactPoint.tenant_id.in_(tenant_ids),
            ContactPoint.kind == kind,
            ContactPoint.value.in_(values),
            ContactPoint.details.is_not(None),
        )
    ).all()
    if not rows:
        return {}
    exact: dict[tuple[int, int, str], dict[str, Any]] = {}
    anyone: dict[tuple[int, str], dict[str, Any]] = {}
    for tenant_id, consumer_id, value, details in rows:
        if not details:
            continue
        exact[(tenant_id, consumer_id, value)] = details
        anyone.setdefault((tenant_id, value), details)
    out: dict[int, dict[str, Any]] = {}
    for c in claimed:
        found = None
        if c.consumer_id is not None:
            found = exact.get((c.tenant_id, c.consumer_id, c.to_address))
        found = found or anyone.get((c.tenant_id, c.to_address))
        if found:
            out[c.id] = found
    return out
