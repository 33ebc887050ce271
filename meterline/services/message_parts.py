"""Messages sent as several separately acknowledged parts (SMPP): their ids and receipts.

The dispatcher records the provider's id of every part the provider accepted (``record``).
A receipt then names one part; ``roll_up`` keeps that part's status and turns the parts
into one status for the message: delivered only when every part is delivered, failed as
soon as any part fails, nothing new while parts are still on their way. The message is
reported under its own provider id (the first part's), so the rolled-up update goes
through ``status_callbacks.apply_updates`` like any other. Receipts for ids that are not
parts pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from meterline.channels.base import DeliveryStatus, StatusUpdate
from meterline.domain.enums import MessageStatus
from meterline.domain.message_status import moves_forward
from meterline.store.models import Message, MessagePart
from meterline.store.outbox import EVENTS


@dataclass(frozen=True)
class SentParts:
    tenant_id: int
    message_id: int
    channel_account_id: int
    part_ids: tuple[str, ...]


def record(session: Session, sent: Iterable[SentParts], now: datetime) -> int:
    """Store the parts' provider ids (a resend's parts already stored are kept); the count."""
    rows = [
        MessagePart(
            tenant_id=s.tenant_id,
            message_id=s.message_id,
            channel_account_id=s.channel_account_id,
            part_no=number,
            provider_message_id=part_id,
            status=str(MessageStatus.sent),
            updated_at=now,
        )
        for s in sent
        for number, part_id in enumerate(s.part_ids, start=1)
    ]
    if not rows:
        return 0
    known = {
        (m, n)
        for m, n in session.execute(
            select(MessagePart.message_id, MessagePart.part_no).where(
                MessagePart.message_id.in_({r.message_id for r in rows})
            )
        )
    }
    fresh = [r for r in rows if (r.message_id, r.part_no) not in known]
    session.add_all(fresh)
    session.flush()
    return len(fresh)


def rolled_up(statuses: list[MessageStatus], total: int) -> MessageStatus | None:
    """One status for a message from its parts' statuses (``total`` parts expected)."""
    if any(s is MessageStatus.failed for s in statuses):
        return MessageStatus.failed
    done = sum(s in (MessageStatus.delivered, MessageStatus.read) for s in statuses)
    if done >= total:
        return MessageStatus.delivered
    return None


def roll_up(
    session: Session, channel_account_id: int, updates: list[StatusUpdate], now: datetime
) -> list[StatusUpdate]:
    """``updates`` with each part's receipt replaced by its message's rolled-up status
    (or dropped, when the message has nothing new to report yet)."""
    ids = {u.provider_message_id for u in updates}
    if not ids:
        return updates
    parts = {
        p.provider_message_id: p
        for p in session.scalars(
            select(MessagePart)
            .where(
                MessagePart.channel_account_id == channel_account_id,
                MessagePart.provider_message_id.in_(ids),
            )
            .with_for_update()
        )
    }
    if not parts:
        return updates
    out: list[StatusUpdate] = []
    for update in updates:
        part = parts.get(update.provider_message_id)
        if part is None:
            out.append(update)
            continue
        reported = MessageStatus(str(update.status))
        if moves_forward(MessageStatus(part.status), reported):
            part.status = str(reported)
            part.updated_at = now
            if reported is MessageStatus.failed:
                part.error_code = update.error_code
                part.error_text = update.error_text
        session.flush()
        message = session.get(Message, part.message_id)
        if message is None:
            continue
        # The part's own report goes into the message's history whatever it changes.
        session.execute(
            insert(EVENTS),
            [
                {
                    "tenant_id": message.tenant_id,
                    "message_id": message.id,
                    "at": now,
                    "event": "part_status",
                    "status": str(reported),
                    "attempt": message.attempts,
                    "channel_account_id": channel_account_id,
                    "provider_message_id": part.provider_message_id,
                    "error_code": update.error_code,
                    "error_text": f"part {part.part_no}/{message.segments}"
                    + (f": {update.error_text}" if update.error_text else ""),
                }
            ],
        )
        if message.provider_message_id is None:
            continue
        siblings = session.scalars(
            select(MessagePart.status).where(MessagePart.message_id == part.message_id)
        ).all()
        status = rolled_up([MessageStatus(s) for s in siblings], message.segments)
        if status is None:
            continue
        failed = status is MessageStatus.failed
        out.append(
            StatusUpdate(
                message.provider_message_id,
                DeliveryStatus(str(status)),
                at=update.at,
                error_code=update.error_code if failed else None,
                error_text=f"part {part.part_no}/{message.segments}: {update.error_text}"
                if failed
                else None,
                outcome=update.outcome if failed else None,
                unreachable=update.unreachable if failed else False,
            )
        )
    return out


def accepted_parts(session: Session, message_id: int) -> int:
    """How many parts of a message the provider accepted (and so bills)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(MessagePart)
            .where(MessagePart.message_id == message_id)
        )
        or 0
    )


def actual_cost_minor(session: Session, message: Message) -> int:
    """What the message really cost: the accepted parts at the price per part it was held at.

    A message without part rows went out in one piece (its cost as held) or was never
    accepted (nothing).
    """
    parts = accepted_parts(session, message.id)
    if parts == 0 or message.segments <= 0:
        return message.cost_minor if message.provider_message_id is not None else 0
    return message.cost_minor // message.segments * parts
