"""Ingesting smart-meter events: parse, apply the rules, persist state, queue alerts.

One batch is one transaction: the meters' states are loaded in one query (locked on
PostgreSQL, so two workers on one stream cannot lose an update), the rules run in
memory (`meterline.domain.meter_rules`), and states, usage aggregates, alert episodes
and their messages (through `notify`, the transactional outbox) are written together.
HTTP (`POST /api/v1/events`), files (`meterline events load`) and MQTT all come here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from meterline.domain.meter_events import (
    EventType,
    LineError,
    MeterEvent,
    ParsedBatch,
    parse_batch,
    unit_fits,
)
from meterline.domain.meter_rules import (
    Alert,
    AlertSettings,
    MeterContext,
    MeterState,
    Outcome,
    Verdict,
    apply_event,
)
from meterline.services.errors import NotFound, ServiceError
from meterline.services.notify import Composer, Notification, notify, notify_many
from meterline.services.tenants import currency_exponent
from meterline.store import models as m
from meterline.store.meter_state import (
    STREAM_COLUMNS,
    ensure_and_load,
    save_states,
    upsert_usage,
)

__all__ = [
    "MAX_BATCH",
    "BatchTooLarge",
    "IngestReport",
    "alert_settings",
    "ingest_events",
    "ingest_in_session",
]

MAX_BATCH = 10_000
MAX_LISTED_ERRORS = 1000  # per report; the batch row keeps the first 100
ALERTS = cast(Table, m.MeterAlert.__table__)
UNKNOWN = cast(Table, m.MeterUnknownSerial.__table__)


@dataclass
class IngestReport:
    """What became of a batch. ``accepted`` events were stored (``older`` ones included:
    out of order, they change no state and alert no one but still count in the usage
    aggregates); ``duplicates`` were already known (same stream, same time); ``rejected``
    ones are listed in ``errors`` with their line; events for serials the tenant has no
    meter for are counted in ``unknown_meters`` (serials in ``unknown_serials``)."""

    accepted: int = 0
    duplicates: int = 0
    older: int = 0  # of the accepted: out of order, a newer value was known (no alerts)
    rejected: int = 0
    unknown_meters: int = 0
    alerts: int = 0  # episodes opened or closed
    messages: int = 0  # messages queued for consumers
    errors: list[dict[str, Any]] = field(default_factory=list)
    unknown_serials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "older": self.older,
            "rejected": self.rejected,
            "unknown_meters": self.unknown_meters,
            "unknown_serials": self.unknown_serials,
            "alerts": self.alerts,
            "messages": self.messages,
            "errors": self.errors,
        }

    def add(self, other: IngestReport) -> None:
        """Fold another batch's report into this one (file loads in chunks)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.older += other.older
        self.rejected += other.rejected
        self.unknown_meters += other.unknown_meters
        self.alerts += other.alerts
        self.messages += other.messages
        self.errors.extend(other.errors)
        self.unknown_serials.extend(
            s for s in other.unknown_serials if s not in self.unknown_serials
        )


class BatchTooLarge(ServiceError):
    pass


def ingest_events(
    runtime_or_sessions: Any,
    tenant: str | int,
    items: Iterable[bytes | str | Mapping[str, Any]],
    *,
    source: str,
    now: datetime | None = None,
) -> IngestReport:
    """Ingest one batch of events for `tenant` (its slug or id) in one transaction.

    `runtime_or_sessions`: a `Runtime` or a write `sessionmaker`. `items`: each one event,
    as a dict, or its JSON text (str or bytes: an NDJSON line, an MQTT payload); a text
    holding a JSON array counts as its elements (see `meter_events.decode_items` for the
    line numbers). `source` names the path ("http", "mqtt", "file:<name>") and is kept
    with the batch's counts (`meter_event_batches`) and its unknown serials.
    `now` defaults to the clock; the future-time and stale checks use it.

    Malformed events are listed in the report and the rest go through. Raises `NotFound`
    for an unknown tenant and `BatchTooLarge` above `MAX_BATCH` parsed items (callers
    with bigger inputs cut them into batches). Thread-safe; call it from several workers.
    """
    sessions: sessionmaker[Session] = getattr(runtime_or_sessions, "sessions", runtime_or_sessions)
    readers: sessionmaker[Session] = getattr(runtime_or_sessions, "read_sessions", sessions)
    moment = now or datetime.now(UTC)
    with readers() as session:
        t = _tenant(session, tenant)
        settings, tenant_id = alert_settings(session, t), t.id
    # Parsed before the write transaction: on SQLite other writers wait for that lock.
    parsed = parse_batch(items, now=moment, max_skew=settings.max_skew)
    with sessions() as session, session.begin():
        found = session.get(m.Tenant, tenant_id)
        if found is None:  # deleted in between
            raise NotFound(f"no tenant {tenant!r}")
        return _ingest_parsed(session, found, settings, parsed, source=source, now=moment)


def _tenant(session: Session, tenant: str | int) -> m.Tenant:
    if isinstance(tenant, int):
        found = session.get(m.Tenant, tenant)
    else:
        found = session.scalar(select(m.Tenant).where(m.Tenant.slug == tenant))
    if found is None:
        raise NotFound(f"no tenant {tenant!r}")
    return found


def alert_settings(session: Session, tenant: m.Tenant) -> AlertSettings:
    """The tenant's rule settings, defaults filled in (100 major units of its currency)."""
    row = session.get(m.MeterAlertSettings, tenant.id)
    unit = 10 ** currency_exponent(tenant.currency)
    if row is None:
        return AlertSettings(low_balance_minor=100 * unit)
    levels = tuple(int(p) for p in row.percent_levels.split(",") if p.strip())
    return AlertSettings(
        low_balance_minor=row.low_balance_minor
        if row.low_balance_minor is not None
        else 100 * unit,
        percent_levels=levels,
        hysteresis_minor=row.hysteresis_minor,
        overload_intervals=row.overload_intervals,
        stale_after=timedelta(seconds=row.stale_after_s),
        silent_after=timedelta(seconds=row.silent_after_s),
        max_skew=timedelta(seconds=row.max_skew_s),
        grace_text=dict(row.grace_text or {}),
        mandatory=frozenset(k for k in row.mandatory_kinds.split(",") if k),
    )


# Each stream's bit in `_Meter.touched`.
_STREAM_BIT = {kind: 1 << i for i, kind in enumerate(EventType)}
_USAGE_TYPES = frozenset({EventType.reading, EventType.demand})


class _Meter(msgspec.Struct, gc=False):
    """One meter of the batch. A struct with ``gc=False`` (like `MeterState`): a batch
    holds one per meter, and it never refers back to anything that refers to it."""

    id: int
    serial: str
    kind: str
    account_id: int | None
    account_number: str | None
    consumer_id: int | None
    ctx: MeterContext
    state: MeterState
    touched: int = 0  # the streams whose state changed (bits of _STREAM_BIT)
    rank: int = -1  # order of its first event in the batch (its events apply in that order)


def ingest_in_session(
    session: Session,
    tenant: str | int | m.Tenant,
    items: Iterable[bytes | str | Mapping[str, Any]],
    *,
    source: str,
    now: datetime,
) -> IngestReport:
    """`ingest_events` inside the caller's transaction."""
    t = tenant if isinstance(tenant, m.Tenant) else _tenant(session, tenant)
    settings = alert_settings(session, t)
    parsed = parse_batch(items, now=now, max_skew=settings.max_skew)
    return _ingest_parsed(session, t, settings, parsed, source=source, now=now)


def _ingest_parsed(
    session: Session,
    t: m.Tenant,
    settings: AlertSettings,
    parsed: ParsedBatch,
    *,
    source: str,
    now: datetime,
) -> IngestReport:
    total = len(parsed.events) + len(parsed.errors)
    if total > MAX_BATCH:
        raise BatchTooLarge(
            f"{total} events in one batch; at most {MAX_BATCH} (send several requests)"
        )
    report = IngestReport()
    errors: list[LineError] = list(parsed.errors)
    meters = _load_meters(session, t.id, {e.meter for _, e in parsed.events})
    unknown: dict[str, int] = {}
    seen: set[tuple[Any, ...]] = set()
    queue: list[tuple[_Meter, MeterEvent]] = []
    ranked = duplicates = 0
    for line, event in parsed.events:
        meter = meters.get(event.meter)
        if meter is None:
            unknown[event.meter] = unknown.get(event.meter, 0) + 1
            continue
        if event.type is EventType.reading and not unit_fits(event.unit or "", meter.kind):
            errors.append(
                LineError(
                    line,
                    f"unit: {event.unit} does not fit {meter.kind} meter {meter.serial}",
                    event.meter,
                )
            )
            continue
        identity = (event.meter, event.id) if event.id is not None else event.identity
        if identity in seen:
            duplicates += 1
            continue
        seen.add(identity)
        if meter.rank < 0:
            meter.rank = ranked
            ranked += 1
        queue.append((meter, event))
    # Meter by meter (in the order of their first events), each meter's events in time
    # order (ties as they came: the sort is stable).
    queue.sort(key=_meter_then_time)
    zone = ZoneInfo(t.timezone)
    usage = _Usage(zone)
    alerts: list[tuple[_Meter, Alert]] = []
    accepted = older = 0
    duplicate, out_of_order = Verdict.duplicate, Verdict.older
    for meter, event in queue:
        outcome: Outcome = apply_event(meter.state, event, meter.ctx, settings, now=now)
        verdict = outcome.verdict
        if verdict is duplicate:
            duplicates += 1
            continue
        accepted += 1
        if verdict is out_of_order:
            older += 1  # changes no state: nothing to write for it
        else:
            meter.touched |= _STREAM_BIT[event.type]
        if event.type in _USAGE_TYPES or outcome.recharge is not None:
            usage.add(meter.id, event, outcome)
        if outcome.alerts:
            alerts.extend((meter, alert) for alert in outcome.alerts)
    report.accepted, report.duplicates, report.older = accepted, duplicates, older
    _save_states(session, [mt for mt in meters.values() if mt.touched], now)
    usage.save(session, t.id)
    if alerts:
        _raise_alerts(session, t, settings, alerts, now, report)
    if unknown:
        _count_unknown(session, t.id, unknown, source, now)
        report.unknown_meters = sum(unknown.values())
        report.unknown_serials = sorted(unknown)[:100]
    errors.sort(key=lambda e: e.line)
    report.rejected = len(errors)
    report.errors = [e.as_dict() for e in errors[:MAX_LISTED_ERRORS]]
    session.execute(
        insert(m.MeterEventBatch).values(
            tenant_id=t.id,
            source=source[:100],
            received_at=now,
            accepted=report.accepted,
            duplicates=report.duplicates,
            rejected=report.rejected,
            unknown=report.unknown_meters,
            alerts=report.alerts,
            errors=report.errors[:100] or None,
        )
    )
    return report


def _meter_then_time(item: tuple[_Meter, MeterEvent]) -> tuple[int, datetime]:
    return item[0].rank, item[1].at


def _insert(session: Session, table: Any) -> Any:
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _load_meters(session: Session, tenant_id: int, serials: set[str]) -> dict[str, _Meter]:
    """The batch's meters with their accounts and states, in one query (locked on
    PostgreSQL; see `store.meter_state.ensure_and_load`)."""
    if not serials:
        return {}
    out: dict[str, _Meter] = {}
    contexts: dict[tuple[Any, Any], MeterContext] = {}  # a fleet has few distinct ones
    for mid, serial, kind, account_id, number, consumer_id, kw, low, state in ensure_and_load(
        session, tenant_id, sorted(serials)
    ):
        ctx = contexts.get((kw, low))
        if ctx is None:
            ctx = contexts[(kw, low)] = MeterContext(sanctioned_kw=kw, low_balance_minor=low)
        # The state tuple is in MeterState's field order (store.meter_state.STATE_COLUMNS).
        out[serial] = _Meter(
            mid, serial, kind, account_id, number, consumer_id, ctx, MeterState(*state)
        )
    return out


def _save_states(session: Session, meters: list[_Meter], now: datetime) -> None:
    """Write back the streams each meter's events changed (one statement per combination
    of streams: a batch mostly has a handful)."""
    groups: dict[int, list[_Meter]] = defaultdict(list)
    for meter in meters:
        groups[meter.touched].append(meter)
    for touched, members in groups.items():
        kinds = sorted(kind for kind, bit in _STREAM_BIT.items() if touched & bit)
        columns = [name for kind in kinds for name in STREAM_COLUMNS[kind]]
        columns.append("last_seen")  # so at least two: attrgetter answers a tuple
        values_of = attrgetter(*columns)  # one C call per state instead of a getattr each
        save_states(session, columns, [(mt.id, values_of(mt.state)) for mt in members], now)


class _Usage:
    """The batch's contribution to each (meter, day) aggregate (months are folded from
    days when read)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        # (meter id, day) -> [reading_min, reading_max, unit, max_demand_kw, recharges,
        #                     recharged_minor]
        self.rows: dict[tuple[int, date], list[Any]] = {}
        self.days: dict[datetime, date] = {}  # local day per event time (shared by many)

    def add(self, meter_id: int, event: MeterEvent, outcome: Outcome) -> None:
        """Fold in an accepted reading, demand or recharge."""
        day = self.days.get(event.at)
        if day is None:
            day = self.days[event.at] = event.at.astimezone(self.zone).date()
        key = (meter_id, day)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [None, None, None, None, 0, 0]
        kind = event.type
        if kind is EventType.reading:
            v = event.value
            assert v is not None
            row[0] = v if row[0] is None else min(row[0], v)
            row[1] = v if row[1] is None else max(row[1], v)
            row[2] = event.unit
        elif kind is EventType.demand:
            kw = event.kw
            row[3] = kw if row[3] is None else max(row[3], kw)
        if outcome.recharge is not None:
            row[4] += 1
            row[5] += outcome.recharge.amount_minor

    def save(self, session: Session, tenant_id: int) -> None:
        upsert_usage(
            session,
            [(meter_id, "day", day, tenant_id, *row) for (meter_id, day), row in self.rows.items()],
        )


def _count_unknown(
    session: Session, tenant_id: int, unknown: dict[str, int], source: str, now: datetime
) -> None:
    stmt = _insert(session, UNKNOWN)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "serial"],
        set_={
            "events": UNKNOWN.c.events + stmt.excluded.events,
            "last_seen": stmt.excluded.last_seen,
            "last_source": stmt.excluded.last_source,
        },
    )
    session.execute(
        stmt,
        [
            {
                "tenant_id": tenant_id,
                "serial": serial,
                "events": count,
                "first_seen": now,
                "last_seen": now,
                "last_source": source[:100],
            }
            for serial, count in sorted(unknown.items())
        ],
    )


# --- alerts and their messages -----------------------------------------------------------


def _raise_alerts(
    session: Session,
    tenant: m.Tenant,
    settings: AlertSettings,
    alerts: list[tuple[_Meter, Alert]],
    now: datetime,
    report: IngestReport,
) -> None:
    """Open or close each episode's row and queue its message (same transaction).

    The batch's messages are queued together (`_queue_messages`: one `notify_many`),
    then the episode rows are written in the alerts' order."""
    consumer_ids = {meter.consumer_id for meter, _ in alerts if meter.consumer_id is not None}
    opted_out: set[tuple[int, str]] = set()
    languages: dict[int, str] = {}
    if consumer_ids:
        opted_out = set(
            session.execute(
                select(m.AlertOptOut.consumer_id, m.AlertOptOut.kind).where(
                    m.AlertOptOut.tenant_id == tenant.id,
                    m.AlertOptOut.consumer_id.in_(consumer_ids),
                )
            ).all()
        )
        languages = dict(
            session.execute(
                select(m.Consumer.id, m.Consumer.preferred_language).where(
                    m.Consumer.id.in_(consumer_ids)
                )
            ).all()
        )
    composer = Composer(session, tenant)
    notes: list[str | None] = []
    wanted: list[Notification] = []
    for meter, alert in alerts:
        found = _notification(composer, settings, meter, alert, opted_out, languages)
        if isinstance(found, Notification):
            wanted.append(found)
            notes.append(None)
        else:
            notes.append(found)
    queued = _queue_messages(session, tenant, composer, wanted, now) if wanted else {}
    closes: list[dict[str, Any]] = []  # episode rows to close, in the alerts' order
    opens: list[dict[str, Any]] = []  # and to open
    steps: list[tuple[bool, dict[str, Any]]] = []  # both, interleaved as the alerts came
    for (meter, alert), note in zip(alerts, notes, strict=True):
        report.alerts += 1
        message_id: int | None = None
        if note is None and alert.kind is not None:
            message_id, note = queued[f"meter:{meter.id}:{alert.episode_key}"]
            if message_id is not None:
                report.messages += 1
        # Opening an episode first closes one left open (its end was never seen).
        close = {
            "m_id": meter.id,
            "subj": alert.subject,
            "c_at": alert.at,
            "c_msg": None if alert.opening else message_id,
        }
        closes.append(close)
        steps.append((False, close))
        if alert.opening:
            row = {
                "tenant_id": tenant.id,
                "meter_id": meter.id,
                "account_id": meter.account_id,
                "kind": alert.alert_kind,
                "subject": alert.subject,
                "episode_key": alert.episode_key,
                "opened_at": alert.at,
                "details": _jsonable(alert.data),
                "message_id": message_id,
                "note": note,
                "created_at": now,
            }
            opens.append(row)
            steps.append((True, row))
    conn = session.connection()
    close_stmt = _CLOSE_OPEN
    open_stmt = _insert(session, ALERTS).on_conflict_do_nothing()
    if len({(c["m_id"], c["subj"]) for c in closes}) == len(closes):
        # Each episode subject once: the closes touch no row the openings add, so all
        # closes in one executemany, then all openings in another.
        conn.execute(close_stmt, closes)
        if opens:
            conn.execute(open_stmt, opens)
        return
    for opening, params in steps:  # a subject twice (opened and closed): in order
        conn.execute(open_stmt if opening else close_stmt, [params])


# Close a meter's open episode of one subject (executemany parameters by these names).
_CLOSE_OPEN = (
    update(ALERTS)
    .where(
        and_(
            ALERTS.c.meter_id == bindparam("m_id"),
            ALERTS.c.subject == bindparam("subj"),
            ALERTS.c.closed_at.is_(None),
        )
    )
    .values(closed_at=bindparam("c_at"), close_message_id=bindparam("c_msg"))
)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        elif value is not None:
            out[key] = value
    return out


def _notification(
    composer: Composer,
    settings: AlertSettings,
    meter: _Meter,
    alert: Alert,
    opted_out: set[tuple[int, str]],
    languages: dict[int, str],
) -> Notification | str | None:
    """The alert's message to queue, or why there is none (None: an episode that ends
    without a message)."""
    kind = alert.kind
    if kind is None:
        return None
    if not alert.notify:
        return "stale event: nobody alerted"
    if meter.consumer_id is None or meter.account_number is None:
        return "meter has no account with a consumer"
    mandatory = kind in settings.mandatory or (
        kind in ("overload_normal", "tamper_restored") and kind.split("_")[0] in settings.mandatory
    )
    if not mandatory and (meter.consumer_id, kind) in opted_out:
        return f"consumer opted out of {kind}"
    data: dict[str, Any] = {"account": meter.account_number, "at": alert.at}
    payload = alert.data
    if kind == "low_balance":
        data.update(balance=payload["balance"], threshold=payload["threshold"])
    elif kind == "zero_balance":
        data["balance"] = payload["balance"]
        language = composer.language(languages.get(meter.consumer_id))
        grace = settings.grace_text.get(language) or settings.grace_text.get("en")
        if grace:
            data["grace"] = grace
    elif kind in ("overload", "overload_normal"):
        data.update(load_kw=payload["load_kw"], sanctioned_kw=payload["sanctioned_kw"])
    else:  # tamper, tamper_restored
        data.update(meter=meter.serial, code=payload["code"])
    return Notification(
        kind=kind,
        data=data,
        idempotency_key=f"meter:{meter.id}:{alert.episode_key}",
        consumer_id=meter.consumer_id,
        account_id=meter.account_id,
    )


def _queue_messages(
    session: Session,
    tenant: m.Tenant,
    composer: Composer,
    wanted: list[Notification],
    now: datetime,
) -> dict[str, tuple[int | None, str | None]]:
    """Queue the batch's messages; idempotency key -> (message id, None) or (None, why not).

    One `notify_many` (one recipient query, one insert, one credit hold) in a savepoint;
    a key used before answers with its first message, as `notify` would. If the credit
    cannot cover them all, each goes through `notify` on its own instead, so those the
    credit covers are still sent and the others name the reason.
    """
    try:
        with session.begin_nested():
            result = notify_many(
                session, tenant, wanted, now=now, note=f"meter alerts ({len(wanted)})"
            )
    except ServiceError:  # InsufficientCredit: message by message, to say which
        return {n.idempotency_key: _notify_one(session, tenant, composer, n, now) for n in wanted}
    out: dict[str, tuple[int | None, str | None]] = {
        r["key"]: (None, str(r["reason"])[:500]) for r in result.refused
    }
    keys = [n.idempotency_key for n in wanted if n.idempotency_key not in out]
    if keys:
        found = session.execute(
            select(m.Message.idempotency_key, m.Message.id).where(
                m.Message.tenant_id == tenant.id, m.Message.idempotency_key.in_(keys)
            )
        )
        out.update((key, (message_id, None)) for key, message_id in found)
    return out


def _notify_one(
    session: Session, tenant: m.Tenant, composer: Composer, n: Notification, now: datetime
) -> tuple[int | None, str | None]:
    try:
        with session.begin_nested():
            queued = notify(session, tenant, n, now=now, composer=composer, account_checked=True)
    except ServiceError as exc:  # NotifyRefused, InsufficientCredit, NotFound
        return None, exc.message[:500]
    return queued.message_id, None
