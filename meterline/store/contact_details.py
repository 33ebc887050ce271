"""The contact point behind each claimed message: its ``details`` for the adapter.

A Web Push message needs its subscription's keys, which live on the consumer's
``webpush`` contact point (``value`` = the endpoint the message is addressed to).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from meterline.domain.enums import ContactKind
from meterline.store.models import ContactPoint, Message


def details_by_message(
    session: Session, message_ids: Iterable[int], kind: ContactKind
) -> dict[int, dict[str, Any]]:
    """Message id -> its recipient contact's details, for contacts of ``kind``."""
    ids = list(message_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Message.id, ContactPoint.details)
        .join(
            ContactPoint,
            and_(
                ContactPoint.consumer_id == Message.consumer_id,
                ContactPoint.kind == kind,
                ContactPoint.value == Message.to_address,
            ),
        )
        .where(Message.id.in_(ids))
    )
    return {message_id: dict(details or {}) for message_id, details in rows}
