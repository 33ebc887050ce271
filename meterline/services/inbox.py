"""A consumer's in-app inbox: every message to a known consumer, whatever carried it.

The message row is the inbox entry (written in the same transaction as the message), so
the inbox always has a copy even when the SMS failed; ``inbox_read_at`` is read/unread.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from meterline.services.errors import NotFound
from meterline.store.models import Consumer, Message


def _consumer(session: Session, tenant_id: int, consumer_id: int) -> Consumer:
    consumer = session.get(Consumer, consumer_id)
    if consumer is None or consumer.tenant_id != tenant_id:
        raise NotFound(f"no consumer {consumer_id}")
    return consumer


def inbox(
    session: Session,
    tenant_id: int,
    consumer_id: int,
    *,
    unread_only: bool = False,
    limit: int = 50,
) -> tuple[list[Message], int]:
    """The newest messages and the number still unread."""
    _consumer(session, tenant_id, consumer_id)
    mine = (Message.tenant_id == tenant_id, Message.consumer_id == consumer_id)
    stmt = select(Message).where(*mine)
    if unread_only:
        stmt = stmt.where(Message.inbox_read_at.is_(None))
    rows = list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit)))
    unread = session.scalar(
        select(func.count()).select_from(Message).where(*mine, Message.inbox_read_at.is_(None))
    )
    return rows, int(unread or 0)


def mark_read(
    session: Session, tenant_id: int, consumer_id: int, message_id: int, now: datetime
) -> datetime:
    """Mark one message read (the first time counts; marking again changes nothing)."""
    _consumer(session, tenant_id, consumer_id)
    message = session.get(Message, message_id)
    if message is None or message.tenant_id != tenant_id or message.consumer_id != consumer_id:
        raise NotFound(f"no message {message_id} in this consumer's inbox")
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.inbox_read_at.is_(None))
        .values(inbox_read_at=now)
    )
    session.refresh(message)
    assert message.inbox_read_at is not None
    return message.inbox_read_at
