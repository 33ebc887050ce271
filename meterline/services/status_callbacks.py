"""Providers' status reports (delivered, read, failed) applied to their messages.

Reports arrive late, twice and out of order; a message's status only moves forward
(`domain.message_status`), and every report is kept in the message's history whether
or not it changed anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from meterline.channels.base import CallbackRequest, DeliveryStatus, StatusUpdate
from meterline.domain.enums import Medium, MessageStatus
from meterline.domain.routing import Move, Position, on_report, route_steps
from meterline.services import fallback, message_parts
from meterline.services.channel_accounts import channel_for
from meterline.services.inbound import apply_inbound
from meterline.store.models import ChannelAccount, Message, MessageEvent
from meterline.store.outbox import EVENTS

log = structlog.get_logger("meterline.callbacks")

TIME_COLUMN = {
    MessageStatus.sent: "sent_at",
    MessageStatus.delivered: "delivered_at",
    MessageStatus.read: "read_at",
    MessageStatus.failed: "failed_at",
}


@dataclass
class CallbackReport:
    applied: int = 0
    ignored: int = 0  # late or duplicate: kept in history, status unchanged
    unknown: list[str] = field(default_factory=list)  # provider ids we have no message for
    inbound: int = 0  # contact points a recipient's own message updated (WhatsApp replies)


def handle_callback(
    session: Session, account: ChannelAccount, request: CallbackRequest, now: datetime
) -> CallbackReport:
    """Verify and apply one callback (raises ForgedCallback / BadCallback from the adapter)."""
    channel = channel_for(account, None)
    updates = channel.parse_callback(request)
    inbound = channel.parse_inbound(request)
    report = apply_updates(session, account, updates, now)
    if inbound:
        report.inbound = apply_inbound(session, account, inbound, now).applied
    return report


def apply_updates(
    session: Session,
    account: ChannelAccount,
    updates: list[StatusUpdate],
    now: datetime,
    *,
    log_unknown: bool = True,  # False: the caller counts them (pushed_status holds them)
) -> CallbackReport:
    report = CallbackReport()
    updates = message_parts.roll_up(session, account.id, updates, now)  # SMPP parts
    for update in updates:
        message = session.scalars(
            select(Message)
            .where(
                Message.channel_account_id == account.id,
                Message.provider_message_id == update.provider_message_id,
            )
            .with_for_update()
        ).first()
        if message is None:
            message = _earlier_step(session, account, update.provider_message_id)
            if message is not None:
                # About a step the message has moved on from: history and what it says
                # about the address, never the message's status.
                report.ignored += 1
                _about_earlier_step(session, account, message, update, now)
                continue
            report.unknown.append(update.provider_message_id)
            if not log_unknown:
                continue
            log.warning(
                "status for an unknown provider message",
                channel_account_id=account.id,
                provider_message_id=update.provider_message_id,
            )
            continue
        reported = MessageStatus(str(update.status))
        medium = Medium(account.medium)
        address = message.to_address
        steps = max(1, len(route_steps(message.route)))
        move, _ = on_report(
            Position(message.route_step, message.status),
            message.route_step,
            reported,
            steps=steps,
        )
        changed = move is not Move.ignore
        if changed:
            message.status = reported
            setattr(message, TIME_COLUMN[reported], update.at or now)
            if reported is not MessageStatus.sent:
                message.fallback_at = None  # a status came: no timeout fallback
            if reported is MessageStatus.failed:
                message.error_code = update.error_code
                message.error_text = update.error_text
            report.applied += 1
        else:
            report.ignored += 1
        session.execute(
            insert(EVENTS),
            [
                {
                    "tenant_id": message.tenant_id,
                    "message_id": message.id,
                    "at": now,
                    "event": "status" if changed else "status_ignored",
                    "status": str(reported),
                    "attempt": message.attempts,
                    "channel_account_id": account.id,
                    "provider_message_id": update.provider_message_id,
                    "error_code": update.error_code,
                    "error_text": update.error_text,
                }
            ],
        )
        if reported in (MessageStatus.delivered, MessageStatus.read):
            fallback.remember_reachable(session, message.tenant_id, medium, address)
        if update.unreachable:
            fallback.note_unreachable(session, message, medium, address, now)
        if move is Move.fall_back:
            fallback.move_on(
                session,
                message,
                now=now,
                code=update.error_code,
                text=update.error_text,
                trigger="status",
            )
    session.flush()
    return report


def _earlier_step(session: Session, account: ChannelAccount, provider_id: str) -> Message | None:
    """The message an earlier step of which the provider sent under `provider_id`."""
    message_id = session.scalar(
        select(MessageEvent.message_id)
        .where(
            MessageEvent.channel_account_id == account.id,
            MessageEvent.provider_message_id == provider_id,
            MessageEvent.tenant_id == account.tenant_id,
        )
        .limit(1)
    )
    if message_id is None:
        return None
    return session.scalars(
        select(Message).where(Message.id == message_id).with_for_update()
    ).one_or_none()


def _about_earlier_step(
    session: Session,
    account: ChannelAccount,
    message: Message,
    update: StatusUpdate,
    now: datetime,
) -> None:
    medium = Medium(account.medium)
    session.execute(
        insert(EVENTS),
        [
            {
                "tenant_id": message.tenant_id,
                "message_id": message.id,
                "at": now,
                "event": "status_earlier_step",
                "status": str(update.status),
                "attempt": None,
                "channel_account_id": account.id,
                "provider_message_id": update.provider_message_id,
                "error_code": update.error_code,
                "error_text": update.error_text,
            }
        ],
    )
    if update.status in (DeliveryStatus.delivered, DeliveryStatus.read):
        # The address is the route step's sent on this channel account.
        for step in route_steps(message.route):
            if step.channel_account_id == account.id:
                fallback.remember_reachable(session, message.tenant_id, medium, step.to)
    elif update.unreachable:
        for step in route_steps(message.route):
            if step.channel_account_id == account.id:
                fallback.note_unreachable(session, message, medium, step.to, now)
