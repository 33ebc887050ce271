"""The outbox's database side: claiming due messages and recording what became of them.

A claim sets ``status = sending``, names the worker and moves ``due_at`` to the claim's
expiry. A worker that dies holding a claim simply stops; when ``due_at`` passes, any
worker claims the message again (same row, same reference, so a provider that dedupes
on the reference still sends it once). On PostgreSQL the candidate rows are locked with
``FOR UPDATE SKIP LOCKED``, so any number of workers claim disjoint sets without waiting
on each other; SQLite has one writer at a time, which gives the same guarantee.

Every result is written only if the worker still holds the claim (``claimed_by`` and
``status = sending``), so a worker whose claim expired cannot overwrite the work of the
worker that took over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from meterline.domain.enums import MessageStatus
from meterline.store import outbox_bulk
from meterline.store.models import ChannelAccount, Message, MessageEvent

MESSAGES = cast(Table, Message.__table__)
EVENTS = cast(Table, MessageEvent.__table__)
m = MESSAGES.c


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    idempotency_key: str
    kind: str
    priority: int
    promotional: bool
    channel_account_id: int
    to_address: str
    language: str
    body: str
    encoding: str | None
    segments: int
    cost_minor: int
    credit_state: str
    attempts: int  # including this one
    # For the adapter (OutboundMessage.extra) and fallback routing (domain.routing).
    consumer_id: int | None = None
    data: dict[str, Any] | None = None
    route: dict[str, Any] | None = None
    route_step: int = 0


CLAIM_COLUMNS = (
    m.id,
    m.tenant_id,
    m.idempotency_key,
    m.kind,
    m.priority,
    m.promotional,
    m.channel_account_id,
    m.to_address,
    m.language,
    m.body,
    m.encoding,
    m.segments,
    m.cost_minor,
    m.credit_state,
    m.attempts,
    m.consumer_id,
    m.data,
    m.route,
    m.route_step,
)


def take_tokens(session: Session, account: ChannelAccount, now: datetime, wanted: int) -> int:
    """Take up to `wanted` sends from the account's token bucket (shared by all workers).

    The bucket refills at ``rate_per_second`` and holds at most one second's worth, so
    a burst never exceeds the provider's rate.
    """
    rate = account.rate_per_second
    capacity = max(1.0, rate)
    elapsed = (now - account.tokens_at).total_seconds() if account.tokens_at else capacity
    tokens = min(capacity, account.tokens + max(0.0, elapsed) * rate)
    taken = min(wanted, int(tokens))
    account.tokens = tokens - taken
    account.tokens_at = now
    return taken


def give_back_tokens(account: ChannelAccount, unused: int) -> None:
    if unused > 0:
        account.tokens = account.tokens + unused


def lock_account(session: Session, account_id: int) -> ChannelAccount | None:
    stmt = select(ChannelAccount).where(ChannelAccount.id == account_id)
    if session.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE: every transaction inserting a message holds KEY SHARE on its
        # channel account (the foreign key); a plain FOR UPDATE would wait for all of them.
        stmt = stmt.with_for_update(key_share=True)
    return session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()


def claim(
    session: Session,
    *,
    channel_account_id: int,
    worker: str,
    now: datetime,
    limit: int,
    claim_seconds: float,
) -> list[Claimed]:
    """Claim up to `limit` due messages of one channel account, most urgent first."""
    if limit <= 0:
        return []
    candidates = (
        select(m.id)
        .where(
            m.channel_account_id == channel_account_id,
            m.due_at.is_not(None),
            m.due_at <= now,
        )
        .order_by(m.priority.desc(), m.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(MESSAGES)
        .where(m.id.in_(candidates.scalar_subquery()))
        .values(
            status=MessageStatus.sending,
            claimed_by=worker,
            due_at=now + timedelta(seconds=claim_seconds),
            attempts=m.attempts + 1,
            sending_at=now,
            updated_at=now,
        )
        .returning(*CLAIM_COLUMNS)
    )
    rows = session.execute(stmt).all()
    return [Claimed(*row) for row in rows]


@dataclass
class Outcome:
    """What to write for one claimed message after its attempt."""

    message: Claimed
    status: MessageStatus  # queued (retry later), sent, delivered, failed
    due_at: datetime | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    credit_state: str | None = None  # new credit state, if it changes
    event: str = "attempt"
    attempts_delta: int = 0  # -1 when the attempt never reached the provider (paused)
    # An accepted step of a route with a next step: when to move on without a status.
    fallback_at: datetime | None = None
    # The step failed and the route goes on: written as queued here, then moved to the
    # next step (services.fallback) in the same transaction.
    fall_back: bool = False


_RECORD = (
    update(MESSAGES)
    .where(
        and_(
            m.id == bindparam("_id"),
            m.claimed_by == bindparam("_worker"),
            m.status == MessageStatus.sending,
        )
    )
    .values(
        status=bindparam("_status"),
        due_at=bindparam("_due_at"),
        provider_message_id=bindparam("_pid"),
        error_code=bindparam("_code"),
        error_text=bindparam("_text"),
        credit_state=bindparam("_credit"),
        attempts=m.attempts + bindparam("_attempts_delta"),
        sent_at=bindparam("_sent_at"),
        delivered_at=bindparam("_delivered_at"),
        failed_at=bindparam("_failed_at"),
        fallback_at=bindparam("_fallback_at"),
        updated_at=bindparam("_now"),
    )
)


def record(
    session: Session, *, worker: str, now: datetime, outcomes: Sequence[Outcome]
) -> set[int]:
    """Write the outcomes still covered by this worker's claim; returns their ids."""
    if not outcomes:
        return set()
    bulk = outbox_bulk.supported(session)
    timed = [o for o in outcomes if not bulk or o.due_at is not None or o.fallback_at is not None]
    mine = _record_timed(session, worker, now, timed) if timed else set()
    if len(timed) < len(outcomes):  # the rest in one statement (store.outbox_bulk)
        rows = []
        for o in outcomes:
            if o.due_at is not None or o.fallback_at is not None:
                continue
            s = o.status
            rows.append(
                (
                    o.message.id,
                    str(s),
                    o.provider_message_id,
                    o.error_code,
                    o.error_text[:1000] if o.error_text else None,
                    str(o.credit_state or o.message.credit_state),
                    o.attempts_delta,
                    s in (MessageStatus.sent, MessageStatus.delivered),
                    s is MessageStatus.delivered,
                    s is MessageStatus.failed,
                )
            )
        mine |= outbox_bulk.update(session, worker=worker, now=now, rows=rows)
    written = [o for o in outcomes if o.message.id in mine]
    if bulk:
        outbox_bulk.insert_events(
            session,
            worker=worker,
            now=now,
            rows=[
                (
                    o.message.tenant_id,
                    o.message.id,
                    o.event,
                    str(o.status),
                    o.message.attempts,
                    o.message.channel_account_id,
                    o.provider_message_id,
                    o.error_code,
                    o.error_text[:1000] if o.error_text else None,
                )
                for o in written
            ],
        )
    elif written:
        events = [
            {
                "tenant_id": o.message.tenant_id,
                "message_id": o.message.id,
                "at": now,
                "event": o.event,
                "status": str(o.status),
                "attempt": o.message.attempts,
                "channel_account_id": o.message.channel_account_id,
                "provider_message_id": o.provider_message_id,
                "error_code": o.error_code,
                "error_text": o.error_text[:1000] if o.error_text else None,
                "worker": worker,
            }
            for o in written
        ]
        session.execute(insert(EVENTS), events)
    return mine


def _record_timed(
    session: Session, worker: str, now: datetime, outcomes: Sequence[Outcome]
) -> set[int]:
    """Outcomes with times of their own (a retry's due_at, a fallback timer): one
    parameter set each."""
    params: list[dict[str, Any]] = []
    for o in outcomes:
        s = o.status
        params.append(
            {
                "_id": o.message.id,
                "_worker": worker,
                "_status": s,
                "_due_at": o.due_at,
                "_pid": o.provider_message_id,
                "_code": o.error_code,
                "_text": o.error_text[:1000] if o.error_text else None,
                "_credit": o.credit_state or o.message.credit_state,
                "_attempts_delta": o.attempts_delta,
                "_sent_at": now if s in (MessageStatus.sent, MessageStatus.delivered) else None,
                "_delivered_at": now if s is MessageStatus.delivered else None,
                "_failed_at": now if s is MessageStatus.failed else None,
                "_fallback_at": o.fallback_at,
                "_now": now,
            }
        )
    written = session.execute(_RECORD, params)
    # Which rows this worker really wrote: the status it wrote and still its name on it.
    # Each id matches at most one row, so when the driver counts as many rows as outcomes
    # (the summed count of the executemany) every claim was still held, and when it counts
    # none, none was: no query needed (the query cannot tell a row written now from one
    # this worker wrote before).
    ids = [o.message.id for o in outcomes]
    rowcount = getattr(written, "rowcount", -1)
    if session.get_bind().dialect.supports_sane_multi_rowcount and rowcount in (0, len(ids)):
        return set(ids) if rowcount else set()
    return set(
        session.scalars(
            select(m.id).where(
                m.id.in_(ids), m.claimed_by == worker, m.status != MessageStatus.sending
            )
        )
    )


def due_accounts(session: Session, now: datetime) -> list[int]:
    """Channel accounts (not paused) that have at least one message due now."""
    has_due = (
        select(m.id)
        .where(
            m.channel_account_id == ChannelAccount.id,
            m.due_at.is_not(None),
            m.due_at <= now,
        )
        .limit(1)
        .exists()
    )
    return list(
        session.scalars(
            select(ChannelAccount.id).where(ChannelAccount.disabled_reason.is_(None), has_due)
        )
    )
