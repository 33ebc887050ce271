"""Reading messages for the console and the API: lists with filters, one with its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meterline.domain.enums import Medium, MessageStatus
from meterline.store.models import ChannelAccount, Message, MessageEvent


@dataclass(frozen=True)
class MessageFilter:
    status: MessageStatus | None = None
    medium: Medium | None = None
    channel_account_id: int | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    to: str | None = None
    consumer_id: int | None = None


def list_messages(
    session: Session,
    tenant_id: int,
    flt: MessageFilter,
    *,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Message]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    stmt = select(Message).where(Message.tenant_id == tenant_id)
    if flt.status is not None:
        stmt = stmt.where(Message.status == flt.status)
    if flt.medium is not None:
        stmt = stmt.where(Message.medium == flt.medium)
    if flt.channel_account_id is not None:
        stmt = stmt.where(Message.channel_account_id == flt.channel_account_id)
    if flt.kind:
        stmt = stmt.where(Message.kind == flt.kind)
    if flt.since is not None:
        stmt = stmt.where(Message.created_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Message.created_at < flt.until)
    if flt.to:
        stmt = stmt.where(Message.to_address == flt.to)
    if flt.consumer_id is not None:
        stmt = stmt.where(Message.consumer_id == flt.consumer_id)
    if before_id is not None:
        stmt = stmt.where(Message.id < before_id)
    return list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit)))


def get_message(session: Session, tenant_id: int, message_id: int) -> Message | None:
    message = session.get(Message, message_id)
    return message if message is not None and message.tenant_id == tenant_id else None


def message_events(session: Session, message_id: int) -> list[MessageEvent]:
    return list(
        session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
    )


def status_counts(session: Session, tenant_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Message.status, func.count())
        .where(Message.tenant_id == tenant_id)
        .group_by(Message.status)
    )
    return {str(status): int(n) for status, n in rows}


def channel_names(session: Session, tenant_id: int) -> dict[int, str]:
    rows = session.execute(
        select(ChannelAccount.id, ChannelAccount.name).where(ChannelAccount.tenant_id == tenant_id)
    )
    return {int(i): str(n) for i, n in rows}


def message_view(message: Message) -> dict[str, object]:
    """The API's shape of a message."""
    return {
        "id": message.id,
        "idempotency_key": message.idempotency_key,
        "kind": message.kind,
        "status": str(message.status),
        "medium": str(message.medium),
        "channel_account_id": message.channel_account_id,
        "to": message.to_address,
        "consumer_id": message.consumer_id,
        "language": message.language,
        "body": message.body,
        "encoding": message.encoding,
        "segments": message.segments,
        "cost_minor": message.cost_minor,
        "credit_state": str(message.credit_state),
        "priority": message.priority,
        "attempts": message.attempts,
        "provider_message_id": message.provider_message_id,
        "error_code": message.error_code,
        "error_text": message.error_text,
        "queued_at": _iso(message.created_at),
        "due_at": _iso(message.due_at),
        "sending_at": _iso(message.sending_at),
        "sent_at": _iso(message.sent_at),
        "delivered_at": _iso(message.delivered_at),
        "read_at": _iso(message.read_at),
        "failed_at": _iso(message.failed_at),
        # Fallback routing: the plan (steps, media skipped as unreachable), the current
        # step, and when an accepted step moves on without a delivery status.
        "route": message.route,
        "route_step": message.route_step,
        "fallback_at": _iso(message.fallback_at),
    }


def event_view(event: MessageEvent) -> dict[str, object]:
    return {
        "at": _iso(event.at),
        "event": event.event,
        "status": event.status,
        "attempt": event.attempt,
        "channel_account_id": event.channel_account_id,
        "provider_message_id": event.provider_message_id,
        "error_code": event.error_code,
        "error_text": event.error_text,
        "worker": event.worker,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
