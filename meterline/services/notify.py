"""The notify use case: a notification becomes a message row in the caller's transaction.

This is the transactional outbox. The caller's business change (a deposit, an alert, a
reminder run) and its messages commit together or not at all; dispatch workers pick the
rows up afterwards. ``(tenant, idempotency_key)`` is unique in the database, so calling
notify twice with one key (a retried API call, a re-run campaign) makes one message,
forever, and holds its credit once.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from meterline.domain import sms as sms_rules
from meterline.domain.cells import CellError, parse_phones
from meterline.domain.enums import ContactKind, CreditState, Medium, MessageStatus, Reachability
from meterline.domain.notification_kinds import KindSpec, UnknownKind, kind_spec
from meterline.domain.quiet_hours import Window, earliest_send
from meterline.domain.routing import (
    Address,
    ContactInfo,
    Plan,
    Route,
    RouteStep,
    addresses,
    default_route,
    plan,
)
from meterline.domain.templates import LocaleContext, MissingData, Renderer, TemplateRefused
from meterline.services import credit
from meterline.services.channel_accounts import default_account
from meterline.services.errors import NotFound, ServiceError
from meterline.services.message_templates import TemplateBook
from meterline.services.routes import tenant_routes
from meterline.store.ledger_writes import MessageRow
from meterline.store.models import (
    Account,
    Consumer,
    ContactPoint,
    CreditAccount,
    Message,
    Tenant,
)
from meterline.store.upsert import insert_or_nothing

BULK_CHUNK = 5000
# Compiled templates are cached per source text; one renderer serves every call.
SHARED_RENDERER = Renderer()


@dataclass(frozen=True)
class Notification:
    """What to say (kind + data), to whom (a consumer or a raw phone), and its key."""

    kind: str
    data: Mapping[str, Any]
    idempotency_key: str
    consumer_id: int | None = None
    phone: str | None = None
    account_id: int | None = None
    priority: int | None = None  # default: the kind's
    language: str | None = None  # default: the consumer's, else the tenant's
    promotional: bool = False
    # None: route by kind (the tenant's route for the kind, else the default: see
    # domain.routing), falling back along it; a medium: that medium alone.
    medium: Medium | None = None
    bill_id: int | None = None  # a dues reminder's bill: its payment cancels the message


@dataclass(frozen=True)
class Queued:
    message_id: int
    created: bool  # False: the key was seen before and this is that message
    status: MessageStatus
    medium: Medium
    segments: int
    encoding: str | None
    cost_minor: int
    due_at: datetime | None

    @classmethod
    def of(cls, message: Message | MessageRow, *, created: bool) -> Queued:
        return cls(
            message_id=message.id,
            created=created,
            status=message.status,
            medium=message.medium,
            segments=message.segments,
            encoding=message.encoding,
            cost_minor=message.cost_minor,
            due_at=message.due_at,
        )


@dataclass
class BulkResult:
    batch_id: str
    queued: int = 0
    duplicates: int = 0
    segments: int = 0
    cost_minor: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)


class NotifyRefused(ServiceError):
    """This notification cannot become a message (names the key and the reason)."""


def locale_context(tenant: Tenant, language: str) -> LocaleContext:
    return LocaleContext(
        language=language,
        country=tenant.country,
        currency=tenant.currency,
        timezone=tenant.timezone,
    )


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _data_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, default=_json_default, ensure_ascii=False)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data as stored with the message (re-rendering on fallback needs it)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime | date):
            out[key] = value.isoformat()
        elif isinstance(value, Decimal):
            out[key] = str(value)
        else:
            out[key] = value
    return out


class Composer:
    """Everything notify needs that is the same for many messages of one tenant: its
    windows, templates, SMS pricing and default channel accounts, looked up once."""

    def __init__(self, session: Session, tenant: Tenant, renderer: Renderer | None = None):
        self.session = session
        self.tenant = tenant
        self.renderer = renderer or SHARED_RENDERER
        self.templates = TemplateBook(session, tenant.id)
        self.quiet = Window.parse(tenant.quiet_start, tenant.quiet_end)
        self.promo_quiet = Window.parse(tenant.promo_quiet_start, tenant.promo_quiet_end)
        # Read only (a tenant without a credit row has no credit: price 0, default parts),
        # so a Composer can be prepared in a read-only session before a write begins.
        account = session.get(CreditAccount, tenant.id)
        self.sms_price = account.sms_price_minor if account else 0
        self.max_parts = account.max_sms_parts if account else sms_rules.DEFAULT_MAX_PARTS
        self._channel_ids: dict[Medium, int | None] = {}
        self._routes = tenant_routes(session, tenant.id)
        self._effective: dict[tuple[str, Medium | None], tuple[Route, Medium | None]] = {}
        self._contexts: dict[str, LocaleContext] = {}
        self._specs: dict[str, KindSpec] = {}
        self._send_times: dict[tuple[datetime, bool, bool], datetime] = {}
        self._languages = frozenset(tenant.language_list)
        # Plain copies: ORM attribute access costs more than the rest of a row in bulk.
        self._tenant_id = tenant.id
        self._org_name = tenant.name
        self._default_language = tenant.default_language
        self._region = tenant.phone_region

    def spec(self, kind: str) -> KindSpec:
        found = self._specs.get(kind)
        if found is None:
            try:
                found = self._specs[kind] = kind_spec(kind)
            except UnknownKind as exc:
                raise NotifyRefused(str(exc)) from None
        return found

    def send_time(self, now: datetime, urgent: bool, promotional: bool) -> datetime:
        key = (now, urgent, promotional)
        found = self._send_times.get(key)
        if found is None:
            found = earliest_send(
                now,
                self.tenant.timezone,
                urgent=urgent,
                promotional=promotional,
                quiet=self.quiet,
                promo_quiet=self.promo_quiet,
            )
            if len(self._send_times) > 64:
                self._send_times.clear()
            self._send_times[key] = found
        return found

    def channel_account_id(self, medium: Medium) -> int | None:
        if medium not in self._channel_ids:
            account = default_account(self.session, self.tenant.id, medium)
            self._channel_ids[medium] = account.id if account else None
        return self._channel_ids[medium]

    def route(self, kind: str, medium: Medium | None) -> Route:
        """The route a notification of `kind` takes (one step for an explicit medium)."""
        if medium is not None:
            return (RouteStep(medium),)
        return self._routes.get(kind) or default_route(kind)

    def accounts(self) -> dict[Medium, int]:
        """The tenant's default channel account per medium (looked up once each)."""
        out: dict[Medium, int] = {}
        for medium in Medium:
            if medium is not Medium.inapp:
                found = self.channel_account_id(medium)
                if found is not None:
                    out[medium] = found
        return out

    def effective_route(self, kind: str, medium: Medium | None) -> tuple[Route, Medium | None]:
        """The route's steps that the tenant has a channel for (inapp needs none), and
        the first medium left out for want of a channel account (for the refusal)."""
        key = (kind, medium)
        found = self._effective.get(key)
        if found is None:
            accounts = self.accounts()
            route = self.route(kind, medium)
            kept = tuple(s for s in route if s.medium is Medium.inapp or s.medium in accounts)
            missing = [s.medium for s in route if s not in kept]
            first_missing = (
                Medium.sms if Medium.sms in missing else (missing[0] if missing else None)
            )
            found = self._effective[key] = (kept, first_missing)
        return found

    def wants_contacts(self, kinds: Iterable[tuple[str, Medium | None]]) -> bool:
        """Whether planning needs consumers' Telegram chats and push subscriptions."""
        return any(
            s.medium in (Medium.telegram, Medium.webpush)
            for k in set(kinds)
            for s in self.effective_route(*k)[0]
        )

    def plan(self, n: Notification, recipient: Recipient) -> Plan:
        """Where this notification goes first and what it falls back to (raises
        NotifyRefused when there is nowhere at all and no inbox)."""
        route, missing = self.effective_route(n.kind, n.medium)
        consumer = recipient.consumer_id is not None
        found = plan(route, recipient.reach(), self.accounts(), consumer=consumer)
        if found.steps:
            return found
        if missing is not None and _has_address(recipient, missing):
            raise NotifyRefused(
                f"{n.idempotency_key}: no {missing} channel account is set up for this"
                " tenant (add one with `meterline channel add`)"
            )
        if not consumer:
            raise NotifyRefused(f"{n.idempotency_key}: no phone number to send to")
        return found  # no step: the inbox copy alone

    def context(self, language: str) -> LocaleContext:
        found = self._contexts.get(language)
        if found is None:
            found = self._contexts[language] = locale_context(self.tenant, language)
        return found

    def phone(self, raw: str, key: str) -> str:
        """One mobile number as E.164, read as the importer reads a sheet's phone cell."""
        try:
            numbers = parse_phones(raw, self._region)
        except CellError as exc:
            raise NotifyRefused(
                f"{key}: phone number {raw!r} is not a valid number ({exc})"
            ) from None
        if len(numbers) != 1:
            raise NotifyRefused(f"{key}: give one phone number, not {raw!r}")
        return numbers[0]

    def language(self, wanted: str | None) -> str:
        if wanted and wanted in self._languages:
            return wanted
        return self._default_language

    def row(
        self,
        n: Notification,
        *,
        now: datetime,
        batch_id: str,
        recipient: Recipient,
        exact_parts: bool,
    ) -> dict[str, Any]:
        """The message row for one notification (raises NotifyRefused with the reason)."""
        spec = self.spec(n.kind)
        language = self.language(n.language or recipient.language)
        route, _ = self.effective_route(n.kind, n.medium)
        if len(route) == 1 and route[0].medium is Medium.sms and recipient.phone is not None:
            # The common case without the general machinery: SMS to the phone on file.
            medium, route_json = Medium.sms, None
            address: str | None = recipient.phone
            first_channel = self.channel_account_id(Medium.sms)
        else:
            found = self.plan(n, recipient)
            first = found.steps[0] if found.steps else None
            # No usable step: the inbox copy is all we can reach (a consumer without a phone).
            medium = first.medium if first is not None else Medium.inapp
            address = first.to if first is not None else None
            first_channel = first.channel_account_id if first is not None else None
            route_json = found.route_json()
        data = {"org_name": self._org_name, **n.data}
        if recipient.name and "consumer_name" not in data:
            data["consumer_name"] = recipient.name
        source = self.templates.source(n.kind, medium, language)
        try:
            body = self.renderer.render(n.kind, source, data, self.context(language))
        except (MissingData, TemplateRefused) as exc:
            raise NotifyRefused(f"{n.idempotency_key}: {exc}") from None
        encoding: str | None = None
        segments = 1
        cost = 0
        channel_id: int | None = None
        status = MessageStatus.queued
        due_at: datetime | None = self.send_time(now, spec.urgent, n.promotional)
        credit_state = CreditState.free
        if medium is Medium.inapp:
            # The row is the inbox entry: written is delivered.
            status, due_at = MessageStatus.delivered, None
        else:
            channel_id = first_channel
            if medium is Medium.sms:
                try:
                    if exact_parts:
                        estimate = sms_rules.estimate(body, self.max_parts)
                        enc, segments = estimate.encoding, estimate.segments
                    else:
                        enc, segments = sms_rules.segment_count(body)
                        if segments > self.max_parts:
                            raise sms_rules.SmsTooLong(segments, self.max_parts)
                except sms_rules.SmsTooLong as exc:
                    raise NotifyRefused(f"{n.idempotency_key}: {exc}") from None
                encoding = str(enc)
                cost = segments * self.sms_price
                if cost:
                    credit_state = CreditState.held
        return {
            "tenant_id": self._tenant_id,
            "idempotency_key": n.idempotency_key,
            "batch_id": batch_id,
            "kind": n.kind,
            "priority": n.priority if n.priority is not None else spec.priority,
            "promotional": n.promotional,
            "consumer_id": recipient.consumer_id,
            "account_id": n.account_id,
            "medium": medium,
            "channel_account_id": channel_id,
            "to_address": address if medium is not Medium.inapp else None,
            "language": language,
            "body": body,
            "data": n.data,  # as given: made JSON-safe by whoever writes it
            "encoding": encoding,
            "segments": segments,
            "cost_minor": cost,
            "credit_state": credit_state,
            "status": status,
            "attempts": 0,
            "due_at": due_at,
            "created_at": now,
            "updated_at": now,
            "delivered_at": now if status is MessageStatus.delivered else None,
            "route": route_json,
            "route_step": 0,
            "bill_id": n.bill_id,
        }


class Recipient(NamedTuple):
    """Who a notification goes to (a tuple: bulk notify makes one per consumer)."""

    consumer_id: int | None
    phone: str | None
    language: str | None
    name: str | None
    phone_id: int | None = None  # the phone's contact point
    whatsapp: Reachability = Reachability.unknown
    others: tuple[ContactInfo, ...] = ()  # Telegram chats, push subscriptions (when routed)

    def reach(self) -> dict[Medium, Address]:
        contacts = list(self.others)
        if self.phone is not None:
            contacts.append(
                ContactInfo(self.phone_id, "phone", self.phone, self.whatsapp, is_primary=True)
            )
        return addresses(contacts)

    def with_others(self, others: tuple[ContactInfo, ...]) -> Recipient:
        return Recipient(
            self.consumer_id,
            self.phone,
            self.language,
            self.name,
            self.phone_id,
            self.whatsapp,
            others,
        )


def _has_address(recipient: Recipient, medium: Medium) -> bool:
    if medium in (Medium.sms, Medium.whatsapp):
        return recipient.phone is not None
    return medium in recipient.reach()


def _recipient(session: Session, composer: Composer, n: Notification) -> Recipient:
    if n.phone is not None:
        return Recipient(n.consumer_id, composer.phone(n.phone, n.idempotency_key), None, None)
    if n.consumer_id is None:
        raise NotifyRefused(f"{n.idempotency_key}: give a consumer or a phone number")
    found = _consumers(session, composer.tenant.id, {n.consumer_id}).get(n.consumer_id)
    if found is None:
        raise NotFound(f"{n.idempotency_key}: no consumer {n.consumer_id}")
    if composer.wants_contacts([(n.kind, n.medium)]):
        others = _other_contacts(session, composer.tenant.id, {n.consumer_id})
        found = found.with_others(others.get(n.consumer_id, ()))
    return found


def _consumers(session: Session, tenant_id: int, ids: set[int]) -> dict[int, Recipient]:
    """The tenant's consumers among `ids`, each with their first phone (primary first)
    and its WhatsApp reachability, in one query."""
    first_phone = (
        select(ContactPoint.id)
        .where(ContactPoint.consumer_id == Consumer.id, ContactPoint.kind == ContactKind.phone)
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.id)
        .limit(1)
        .correlate(Consumer)
        .scalar_subquery()
    )
    phone = aliased(ContactPoint)
    rows = session.execute(
        select(
            Consumer.id,
            Consumer.name,
            Consumer.preferred_language,
            phone.value,
            phone.id,
            phone.whatsapp,
        )
        .outerjoin(phone, phone.id == first_phone)
        .where(Consumer.tenant_id == tenant_id, Consumer.id.in_(ids))
    )
    return {
        cid: Recipient(cid, number, language, name, phone_id, whatsapp or Reachability.unknown)
        for cid, name, language, number, phone_id, whatsapp in rows
    }


def _other_contacts(
    session: Session, tenant_id: int, ids: set[int]
) -> dict[int, tuple[ContactInfo, ...]]:
    """The consumers' Telegram chats and push subscriptions, primary first."""
    rows = session.execute(
        select(
            ContactPoint.consumer_id,
            ContactPoint.id,
            ContactPoint.kind,
            ContactPoint.value,
            ContactPoint.details,
            ContactPoint.is_primary,
        )
        .where(
            ContactPoint.tenant_id == tenant_id,
            ContactPoint.consumer_id.in_(ids),
            ContactPoint.kind.in_([ContactKind.telegram, ContactKind.webpush]),
        )
        .order_by(ContactPoint.is_primary.desc(), ContactPoint.id)
    )
    out: dict[int, list[ContactInfo]] = {}
    for cid, contact_id, kind, value, details, primary in rows:
        out.setdefault(cid, []).append(
            ContactInfo(contact_id, str(kind), value, details=details, is_primary=primary)
        )
    return {cid: tuple(found) for cid, found in out.items()}


def notify(
    session: Session,
    tenant: Tenant,
    notification: Notification,
    *,
    now: datetime,
    composer: Composer | None = None,
    account_checked: bool = False,
) -> Queued:
    """Queue one message in the caller's transaction (which the caller commits).

    Raises NotifyRefused (bad data, unknown kind, no channel, too long) or
    credit.InsufficientCredit; either way nothing is written. `account_checked`: the
    caller has already loaded the account within this tenant.
    """
    composer = composer or Composer(session, tenant)
    if notification.account_id is not None and not account_checked:
        _check_account(session, tenant, notification.account_id)
    recipient = _recipient(session, composer, notification)
    batch_id = uuid.uuid4().hex
    row = composer.row(
        notification, now=now, batch_id=batch_id, recipient=recipient, exact_parts=True
    )
    row["data"] = _jsonable(row["data"])
    new_id = session.execute(
        insert_or_nothing(session, Message).values(row).returning(Message.id)
    ).scalar_one_or_none()
    if new_id is None:  # the key was used before: that message, unchanged
        message = session.scalars(
            select(Message).where(
                Message.tenant_id == tenant.id,
                Message.idempotency_key == notification.idempotency_key,
            )
        ).one()
        return Queued.of(message, created=False)
    if row["cost_minor"]:
        credit.hold(
            session,
            tenant,
            row["cost_minor"],
            messages=1,
            message_id=new_id,
            note=f"{row['kind']} to {row['to_address']}",
        )
    return Queued(
        message_id=new_id,
        created=True,
        status=row["status"],
        medium=row["medium"],
        segments=row["segments"],
        encoding=row["encoding"],
        cost_minor=row["cost_minor"],
        due_at=row["due_at"],
    )


def _check_account(session: Session, tenant: Tenant, account_id: int) -> None:
    owner = session.scalar(select(Account.tenant_id).where(Account.id == account_id))
    if owner != tenant.id:
        raise NotFound(f"no account {account_id}")


def notify_many(
    session: Session,
    tenant: Tenant,
    notifications: Iterable[Notification],
    *,
    now: datetime,
    note: str | None = None,
) -> BulkResult:
    """Queue many messages in the caller's transaction with one credit hold for them all.

    A notification that cannot become a message (bad number, missing data) is listed in
    ``refused`` with its reason and the rest go ahead; if the credit cannot cover all of
    them, InsufficientCredit is raised and the caller's transaction must roll back, so a
    run is never half-sent for lack of credit. Consumers are looked up per chunk.
    """
    composer = Composer(session, tenant)
    result = BulkResult(batch_id=uuid.uuid4().hex)
    writer = _BulkWriter(session)
    chunk: list[Notification] = []
    offered = [0]  # rows handed to the database; those not queued were duplicates

    def flush_chunk() -> None:
        recipients = _recipients_for(session, composer, chunk, result)
        rows = []
        for n in chunk:
            recipient = recipients.get(n.idempotency_key)
            if recipient is None:
                continue
            try:
                rows.append(
                    composer.row(
                        n, now=now, batch_id=result.batch_id, recipient=recipient, exact_parts=False
                    )
                )
            except NotifyRefused as exc:
                result.refused.append({"key": n.idempotency_key, "reason": exc.message})
        if rows:
            inserted = writer.insert(rows)
            if inserted == len(rows):
                result.queued += inserted
                result.cost_minor += sum(r["cost_minor"] for r in rows)
                result.segments += sum(r["segments"] for r in rows)
            else:
                _count_inserted(session, tenant.id, result, [r["idempotency_key"] for r in rows])
            offered[0] += len(rows)
        chunk.clear()

    for n in notifications:
        chunk.append(n)
        if len(chunk) >= BULK_CHUNK:
            flush_chunk()
    if chunk:
        flush_chunk()
    result.duplicates = offered[0] - result.queued
    if result.cost_minor:
        credit.hold(
            session,
            tenant,
            result.cost_minor,
            messages=result.queued,
            note=note or f"bulk {result.batch_id}",
        )
    return result


def _count_inserted(session: Session, tenant_id: int, result: BulkResult, keys: list[str]) -> None:
    """Some keys of a chunk were already used: count only the rows this call wrote."""
    count, cost, segments = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Message.cost_minor), 0),
            func.coalesce(func.sum(Message.segments), 0),
        ).where(
            Message.tenant_id == tenant_id,
            Message.idempotency_key.in_(keys),
            Message.batch_id == result.batch_id,
        )
    ).one()
    result.queued += int(count)
    result.cost_minor += int(cost)
    result.segments += int(segments)


class _BulkWriter:
    """INSERT ... ON CONFLICT DO NOTHING of message rows at the driver level.

    SQLAlchemy's per-row, per-column bind processing costs more than the insert itself at
    a million rows; here only the columns that need a processor get one, and it runs once
    per distinct value (a bulk call's timestamps and enums are a handful of values).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self._plan: tuple[str, Any, list[tuple[int, Any, bool]]] | None = None
        self._cache: dict[tuple[int, Any], Any] = {}

    def _prepare(self, columns: list[str]) -> tuple[str, Any, list[tuple[int, Any, bool]]]:
        table = Message.__table__
        mark = "?" if self.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO messages ({', '.join(columns)}) VALUES"
            f" ({', '.join([mark] * len(columns))}) ON CONFLICT DO NOTHING"
        )
        procs: list[tuple[int, Callable[[Any], Any], bool]] = []
        for i, name in enumerate(columns):
            column_type = table.c[name].type
            proc = column_type._cached_bind_processor(self.dialect)
            if name in ("data", "route"):
                # One json.dumps per row, dates and Decimals as text, no second pass.
                procs.append((i, _data_json, False))
            elif proc is not None:
                procs.append((i, proc, True))
        return sql, operator.itemgetter(*columns), procs

    def insert(self, rows: list[dict[str, Any]]) -> int | None:
        """Insert what is new; answers how many rows were written when the driver says
        (None when it cannot tell, and the caller counts)."""
        if self._plan is None:
            self._plan = self._prepare(list(rows[0]))
        sql, getter, procs = self._plan
        cache = self._cache
        params = []
        for row in rows:
            values = list(getter(row))
            for i, proc, cacheable in procs:
                v = values[i]
                if v is None:
                    continue
                if not cacheable:
                    values[i] = proc(v)
                    continue
                found = cache.get((i, v))
                if found is None:
                    found = cache[(i, v)] = proc(v)
                values[i] = found
            params.append(tuple(values))
        if len(cache) > 10_000:
            cache.clear()
        cursor = self.session.connection().exec_driver_sql(sql, params)
        count = cursor.rowcount
        return count if 0 <= count <= len(rows) else None


def _recipients_for(
    session: Session, composer: Composer, chunk: list[Notification], result: BulkResult
) -> dict[str, Recipient]:
    """Recipients of a chunk, its consumers looked up in one query."""
    out: dict[str, Recipient] = {}
    consumer_ids = {n.consumer_id for n in chunk if n.phone is None and n.consumer_id is not None}
    consumers = _consumers(session, composer.tenant.id, consumer_ids) if consumer_ids else {}
    if consumers and composer.wants_contacts((n.kind, n.medium) for n in chunk):
        others = _other_contacts(session, composer.tenant.id, set(consumers))
        consumers = {cid: r.with_others(others.get(cid, ())) for cid, r in consumers.items()}
    for n in chunk:
        try:
            if n.phone is not None:
                out[n.idempotency_key] = Recipient(
                    n.consumer_id, composer.phone(n.phone, n.idempotency_key), None, None
                )
            elif n.consumer_id in consumers:
                out[n.idempotency_key] = consumers[n.consumer_id]
            else:
                raise NotifyRefused(f"{n.idempotency_key}: no consumer {n.consumer_id}")
        except NotifyRefused as exc:
            result.refused.append({"key": n.idempotency_key, "reason": exc.message})
    return out
