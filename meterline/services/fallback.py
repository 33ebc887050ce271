"""Fallback: moving a message on to the next step of its plan, and remembering reachability.

A message that cannot go on its current medium (the provider says the number is not on
WhatsApp, a give-up error, a failed status, no delivery status in time) moves to the
next step of the plan stored on its row (`domain.routing`): the SAME row gets the new
medium, channel account and address, its body re-rendered from the stored data with that
medium's template in the recipient's language, its SMS segments and cost recomputed and
held on the credit, and goes back to ``queued`` (the one transition back, recorded as a
``fallback`` event). One notification ends as one delivered message, never two copies.

What providers say about an address is remembered on the contact point, so the next
message skips a medium known not to work: not on WhatsApp (`ContactPoint.whatsapp = no`),
a Telegram chat that blocked the bot (``details["blocked_at"]``), a push subscription
that is gone (deleted). A WhatsApp delivered or read status marks the number ``yes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from meterline.domain import sms as sms_rules
from meterline.domain.enums import ContactKind, CreditState, Medium, MessageStatus, Reachability
from meterline.domain.routing import PlanStep, route_steps
from meterline.domain.templates import MissingData, TemplateRefused
from meterline.services import credit
from meterline.store.models import ChannelAccount, Consumer, ContactPoint, Message, Tenant
from meterline.store.outbox import EVENTS

log = structlog.get_logger("meterline.fallback")

# The message event a move to the next step records (reports count fallbacks by it).
FALLBACK_EVENT = "fallback"


class _Unusable(Exception):
    """This step cannot carry the message (its reason is shown in the history)."""


@dataclass(frozen=True)
class Moved:
    moved: bool  # False: no usable next step, the message failed
    from_medium: Medium
    to_medium: Medium | None = None


class Composers:
    """One notify Composer per tenant for a batch of fallbacks (templates, prices, quiet
    hours looked up once)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_tenant: dict[int, Any] = {}

    def get(self, tenant: Tenant) -> Any:
        from meterline.services.notify import Composer  # notify imports this module's peers

        found = self._by_tenant.get(tenant.id)
        if found is None:
            found = self._by_tenant[tenant.id] = Composer(self.session, tenant)
        return found


def _event(
    session: Session,
    message: Message,
    now: datetime,
    event: str,
    *,
    status: str | None,
    code: str | None = None,
    text: str | None = None,
    worker: str | None = None,
    channel_account_id: int | None = None,
) -> None:
    session.execute(
        insert(EVENTS),
        [
            {
                "tenant_id": message.tenant_id,
                "message_id": message.id,
                "at": now,
                "event": event,
                "status": status,
                "attempt": message.attempts,
                "channel_account_id": channel_account_id or message.channel_account_id,
                "provider_message_id": None,
                "error_code": code,
                "error_text": text[:1000] if text else None,
                "worker": worker,
            }
        ],
    )


def next_steps(message: Message) -> list[PlanStep]:
    """The steps after the message's current one."""
    return route_steps(message.route)[message.route_step + 1 :]


def has_next(message: Message) -> bool:
    return bool(next_steps(message))


def _prepare(
    session: Session, tenant: Tenant, message: Message, step: PlanStep, composer: Any
) -> dict[str, Any]:
    """The row's new values for `step` (raises _Unusable naming why it cannot be used)."""
    if step.medium is Medium.inapp:
        return {"medium": Medium.inapp, "channel_account_id": None, "to_address": None}
    account = session.get(ChannelAccount, step.channel_account_id)
    if account is None or account.tenant_id != tenant.id or account.medium != step.medium:
        raise _Unusable(f"{step.medium}: its channel account is gone")
    data: dict[str, Any] = {"org_name": tenant.name, **(message.data or {})}
    if message.consumer_id is not None and "consumer_name" not in data:
        name = session.scalar(select(Consumer.name).where(Consumer.id == message.consumer_id))
        if name:
            data["consumer_name"] = name
    source = composer.templates.source(message.kind, step.medium, message.language)
    try:
        body = composer.renderer.render(
            message.kind, source, data, composer.context(message.language)
        )
    except (MissingData, TemplateRefused) as exc:
        raise _Unusable(f"{step.medium}: {exc}") from None
    encoding: str | None = None
    segments, cost = 1, 0
    if step.medium is Medium.sms:
        try:
            estimate = sms_rules.estimate(body, composer.max_parts)
        except sms_rules.SmsTooLong as exc:
            raise _Unusable(f"sms: {exc}") from None
        encoding, segments = str(estimate.encoding), estimate.segments
        cost = segments * composer.sms_price
    return {
        "medium": step.medium,
        "channel_account_id": account.id,
        "to_address": step.to,
        "body": body,
        "encoding": encoding,
        "segments": segments,
        "cost_minor": cost,
    }


def move_on(
    session: Session,
    message: Message,
    *,
    now: datetime,
    code: str | None,
    text: str | None,
    trigger: str,
    worker: str | None = None,
    composers: Composers | None = None,
) -> Moved:
    """Move `message` (a row the caller has locked) to its next usable step, queued; or,
    when no step is left, fail it (as the last step's failure would) with its credit
    released. `trigger` says why (``send``, ``status``, ``timeout``) for the history."""
    composers = composers or Composers(session)
    tenant = session.get(Tenant, message.tenant_id)
    assert tenant is not None
    composer = composers.get(tenant)
    from_medium = Medium(message.medium)
    steps = route_steps(message.route)
    held = message.cost_minor if message.credit_state == CreditState.held else 0
    spent = message.cost_minor if message.credit_state == CreditState.debited else 0
    reason = text or code or trigger
    index = message.route_step + 1
    passed_over: list[str] = []
    while index < len(steps):
        step = steps[index]
        try:
            values = _prepare(session, tenant, message, step, composer)
        except _Unusable as exc:
            passed_over.append(str(exc))
            index += 1
            continue
        if held:
            credit.settle(
                session,
                tenant.id,
                debit_minor=0,
                debit_messages=0,
                release_minor=held,
                release_messages=1,
                message_id=message.id,
            )
        cost = values.get("cost_minor", 0)
        if cost:
            try:
                credit.hold(
                    session,
                    tenant,
                    cost,
                    messages=1,
                    message_id=message.id,
                    note=f"{message.kind} fell back to {step.medium}: {step.to}",
                )
            except credit.InsufficientCredit as exc:
                _fail(
                    session,
                    message,
                    now,
                    "no_credit",
                    f"could not fall back from {from_medium} to {step.medium}: {exc.message}",
                    worker,
                    release=0,
                )
                return Moved(False, from_medium)
        route = dict(message.route or {})
        route["spent_minor"] = int(route.get("spent_minor", 0)) + spent
        spec_urgent, promotional = composer.spec(message.kind).urgent, message.promotional
        inapp = step.medium is Medium.inapp
        message.route = route
        message.route_step = index
        message.medium = values["medium"]
        message.channel_account_id = values["channel_account_id"]
        message.to_address = values["to_address"]
        if not inapp:
            message.body = values["body"]
            message.encoding = values["encoding"]
            message.segments = values["segments"]
        message.cost_minor = cost
        message.credit_state = CreditState.held if cost else CreditState.free
        message.status = MessageStatus.delivered if inapp else MessageStatus.queued
        message.due_at = None if inapp else composer.send_time(now, spec_urgent, promotional)
        message.claimed_by = None
        message.attempts = 0
        message.provider_message_id = None
        message.sending_at = None
        message.sent_at = now if inapp else None
        message.delivered_at = now if inapp else None
        message.failed_at = None
        message.fallback_at = None
        message.error_code = code
        message.error_text = (reason or "")[:1000] or None
        message.updated_at = now
        note = f"{from_medium} -> {step.medium} ({trigger}): {reason}"
        if passed_over:
            note += f"; passed over {'; '.join(passed_over)}"
        _event(
            session,
            message,
            now,
            FALLBACK_EVENT,
            status=str(message.status),
            code=code,
            text=note,
            worker=worker,
        )
        session.flush()
        return Moved(True, from_medium, step.medium)
    why = f"{from_medium} failed ({trigger}): {reason}"
    if passed_over:
        why += f"; no step left to fall back to ({'; '.join(passed_over)})"
    _fail(session, message, now, code, why, worker, release=held)
    return Moved(False, from_medium)


def _fail(
    session: Session,
    message: Message,
    now: datetime,
    code: str | None,
    text: str,
    worker: str | None,
    *,
    release: int,
) -> None:
    if release:
        credit.settle(
            session,
            message.tenant_id,
            debit_minor=0,
            debit_messages=0,
            release_minor=release,
            release_messages=1,
            message_id=message.id,
        )
        message.credit_state = CreditState.refunded
    message.status = MessageStatus.failed
    message.failed_at = now
    message.due_at = None
    message.fallback_at = None
    message.claimed_by = None
    message.error_code = code
    message.error_text = text[:1000]
    message.updated_at = now
    _event(session, message, now, "failed", status="failed", code=code, text=text, worker=worker)
    session.flush()


# --- reachability -------------------------------------------------------------------


_KIND_OF_MEDIUM: Mapping[Medium, ContactKind] = {
    Medium.sms: ContactKind.phone,
    Medium.whatsapp: ContactKind.phone,
    Medium.telegram: ContactKind.telegram,
    Medium.webpush: ContactKind.webpush,
}


def remember_unreachable(
    session: Session, tenant_id: int, medium: Medium, address: str | None, now: datetime
) -> str | None:
    """Record on the tenant's contact points that `address` cannot be reached on
    `medium`; answers what was newly remembered (for the history), or None when it was
    known already (a provider repeating itself) or there is no such contact."""
    if not address:
        return None
    if medium is Medium.whatsapp:
        changed = session.execute(
            update(ContactPoint)
            .where(
                ContactPoint.tenant_id == tenant_id,
                ContactPoint.kind == ContactKind.phone,
                ContactPoint.value == address,
                ContactPoint.whatsapp != Reachability.no,
            )
            .values(whatsapp=Reachability.no)
        )
        if not _rowcount(changed):
            return None
        return f"{address} is not on WhatsApp: the next messages skip WhatsApp"
    if medium is Medium.telegram:
        rows = session.scalars(
            select(ContactPoint).where(
                ContactPoint.tenant_id == tenant_id,
                ContactPoint.kind == ContactKind.telegram,
                ContactPoint.value == address,
            )
        ).all()
        fresh = [row for row in rows if not (row.details or {}).get("blocked_at")]
        for row in fresh:
            row.details = {**(row.details or {}), "blocked_at": now.isoformat()}
        if not fresh:
            return None
        return f"Telegram chat {address} blocked the bot: it is not messaged again"
    if medium is Medium.webpush:
        gone = session.execute(
            delete(ContactPoint).where(
                ContactPoint.tenant_id == tenant_id,
                ContactPoint.kind == ContactKind.webpush,
                ContactPoint.value == address,
            )
        )
        return "the push subscription is gone: removed" if _rowcount(gone) else None
    return None


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def remember_reachable(
    session: Session, tenant_id: int, medium: Medium, address: str | None
) -> None:
    """A delivered or read WhatsApp message proves the number is on WhatsApp."""
    if medium is not Medium.whatsapp or not address:
        return
    session.execute(
        update(ContactPoint)
        .where(
            ContactPoint.tenant_id == tenant_id,
            ContactPoint.kind == ContactKind.phone,
            ContactPoint.value == address,
            ContactPoint.whatsapp != Reachability.yes,
        )
        .values(whatsapp=Reachability.yes)
    )


def note_unreachable(
    session: Session, message: Message, medium: Medium, address: str | None, now: datetime
) -> None:
    """Remember an unreachable address and say so in the message's history."""
    said = remember_unreachable(session, message.tenant_id, medium, address, now)
    if said:
        _event(session, message, now, "unreachable", status=None, code=str(medium), text=said)
